package keydir

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// BenchmarkFinder finds 100 keys by thumbprint — a form the entries do
// not hold, so every file is read again — in a store of 1,000 files of a
// key each: with one Finder for all of them (finder), and with
// Loader.Find of each in turn (each), which reads every file for each,
// as a removal of many fingerprints did before session 54 (whose cache of
// reads still left each fingerprint a walk of every file's keys).
// docs/benchmarks.md, "Many of one thing".
//
//	go test ./internal/keydir -run '^$' -bench Finder
func BenchmarkFinder(b *testing.B) {
	home := b.TempDir()
	dir := filepath.Join(home, "authorized_keys.d")
	var fps []jwk.Fingerprint
	for i := range 1000 {
		k := key(b, i)
		keydirtest.Write(b, filepath.Join(dir, fmt.Sprintf("k%04d.jwk", i)), keydirtest.JWK(b, k))
		if i%10 == 0 {
			fp, err := jwk.ParseFingerprint(k.Thumbprint())
			if err != nil {
				b.Fatal(err)
			}
			fps = append(fps, fp)
		}
	}
	l := newSPKILoader(home, Source{Path: dir, Dir: true})
	snap := l.Reload()
	spki := spkiOf
	all := func(int) bool { return true }
	check := func(found []Found[[32]byte], err error) {
		if err != nil || len(found) != 1 {
			b.Fatalf("%d found, %v; want 1", len(found), err)
		}
	}
	b.Run("finder", func(b *testing.B) {
		for b.Loop() {
			f := l.NewFinder(fps, spki, all)
			for _, fp := range fps {
				check(f.Find(snap, fp))
			}
		}
	})
	b.Run("each", func(b *testing.B) {
		for b.Loop() {
			for _, fp := range fps {
				check(l.Find(snap, fp, spki, all))
			}
		}
	})
}
