package authkeys

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// The revocation set a publication keeps where no revocation changed
// (keydir.NextRevocations) is the one a pass over every revocation
// makes, after each of 400 random changes — to revocation files (added,
// removed, rewritten in place, renamed over) and to authorized ones,
// which keep it — each reloaded by its path, as a watch's event is
// (updateNames' editor keeps the rows of what it did not touch; a
// Reload of everything makes every list anew, and never lets a set be
// kept: found by review). 1,100 revocations spanned three chunks of rows
// when chunks were of 512; one since (4,096): keydir's own tests edit
// lists of several (TestChunked, TestIncrementalMatchesColdLoad).
func TestNextRevocationsIsTheWholePass(t *testing.T) {
	opts := fillHome(t, 20)
	r := opts.RevokedDirs[0]
	if err := os.MkdirAll(r, 0o700); err != nil {
		t.Fatal(err)
	}
	const nrev = 1100
	for i := range nrev {
		keydirtest.Write(t, filepath.Join(r, fmt.Sprintf("r%04d.json", i)), keydirtest.JWK(t, key(t, 1000+i%40)))
	}
	s := Load(opts)
	rng := rand.New(rand.NewPCG(3, 4))
	keptNonEmpty, published := 0, 0
	for step := range 400 {
		name := fmt.Sprintf("r%04d.json", rng.IntN(nrev))
		path := filepath.Join(r, name)
		k := key(t, 100+rng.IntN(200))
		changed := path
		switch rng.IntN(6) {
		case 0:
			keydirtest.Write(t, path, keydirtest.JWK(t, k))
		case 1:
			os.Remove(path)
		case 2:
			if _, err := os.Stat(path); err == nil {
				keydirtest.WriteInPlace(t, path, keydirtest.JWK(t, k))
			}
		case 3, 5:
			changed = filepath.Join(opts.Dirs[0], fmt.Sprintf("k%d.json", rng.IntN(20)))
			keydirtest.Write(t, changed, keydirtest.JWK(t, key(t, 200+step)))
		case 4:
			tmp := filepath.Join(r, ".tmp")
			keydirtest.Write(t, tmp, keydirtest.JWK(t, k))
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}
		prevSn := s.snap.Load()
		s.Loader().Reload(changed)
		sn := s.snap.Load()
		if sn == prevSn {
			continue
		}
		published++
		if sn.revoked == prevSn.revoked && len(sn.revoked.Found()) > 0 {
			keptNonEmpty++
		}
		whole := keydir.NewRevocations(sn.files, func(src int) bool { return s.rev[src] }, entrySPKI)
		if got, want := revokedNames(sn.revoked), revokedNames(whole); !slices.Equal(got, want) {
			t.Fatalf("step %d: the set kept revokes %d entries, a whole pass %d", step, len(got), len(want))
		}
		if sn.revoked.Err() != whole.Err() {
			t.Fatalf("step %d: err %v, whole pass %v", step, sn.revoked.Err(), whole.Err())
		}
	}
	if keptNonEmpty == 0 {
		t.Error("no publication kept a non-empty set")
	}
}

// revokedNames are the revoked keys' fingerprints, each with the file of
// its entry, in file order.
func revokedNames(r *keydir.Revocations[item]) []string {
	var out []string
	for _, f := range r.Found() {
		out = append(out, fmt.Sprintf("%x %s", f.Item.sum[:4], f.File.Path()))
	}
	return out
}
