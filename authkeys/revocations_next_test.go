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

// The revocation set a reload keeps where no revocation changed
// (keydir.NextRevocations) is the one a pass over every revocation
// makes, after every reload of a random run of changes to revocation
// files (added, removed, rewritten in place, renamed over) and to
// authorized ones (which keep it).
func TestNextRevocationsIsTheWholePass(t *testing.T) {
	opts := fillHome(t, 20)
	r := opts.RevokedDirs[0]
	if err := os.MkdirAll(r, 0o700); err != nil {
		t.Fatal(err)
	}
	s := Load(opts)
	rng := rand.New(rand.NewPCG(1, 2))
	kept := 0
	for step := range 300 {
		name := fmt.Sprintf("r%d.json", rng.IntN(12))
		path := filepath.Join(r, name)
		k := key(t, 100+rng.IntN(16))
		switch rng.IntN(5) {
		case 0:
			keydirtest.Write(t, path, keydirtest.JWK(t, k))
		case 1:
			os.Remove(path)
		case 2:
			if _, err := os.Stat(path); err == nil {
				keydirtest.WriteInPlace(t, path, keydirtest.JWK(t, k))
			}
		case 3:
			keydirtest.Write(t, filepath.Join(opts.Dirs[0], fmt.Sprintf("k%d.json", rng.IntN(20))), keydirtest.JWK(t, key(t, 200+step)))
		case 4:
			tmp := filepath.Join(r, ".tmp")
			keydirtest.Write(t, tmp, keydirtest.JWK(t, k))
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}
		prev := s.snap.Load().revoked
		s.Loader().Reload()
		sn := s.snap.Load()
		if sn.revoked == prev {
			kept++
		}
		whole := keydir.NewRevocations(sn.files, func(src int) bool { return s.rev[src] }, entrySPKI)
		if got, want := revokedNames(sn.revoked), revokedNames(whole); !slices.Equal(got, want) {
			t.Fatalf("step %d: the set kept revokes %v, a whole pass %v", step, got, want)
		}
	}
	if kept == 0 {
		t.Error("no reload kept the revocation set: the test does not reach it")
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
