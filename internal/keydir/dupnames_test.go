package keydir

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestNarrowedNamesGivenTwice: a loader narrowed to names some of which
// come twice (Extend adds the files the admin index finds to those it
// had) reads each changed file once: two reads of one file, the second's
// previous state the first, ran at the same time (a data race under
// -race, found by review) — here with more than 64 changed files, which
// the loader reads in parallel.
func TestNarrowedNamesGivenTwice(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	var names []string
	for i := range 200 {
		n := fmt.Sprintf("k%03d.json", i)
		names = append(names, n)
		keydirtest.Write(t, filepath.Join(dir, n), keydirtest.JWK(t, key(t, i%5)))
	}
	l := newLoader(Source{Path: dir, Dir: true})
	l.Reload()
	for i, n := range names {
		keydirtest.Write(t, filepath.Join(dir, n), keydirtest.JWK(t, key(t, (i+1)%5)))
	}
	var twice []string
	for _, n := range names {
		twice = append(twice, n, n)
	}
	l.mu.Lock()
	l.narrow = map[int][]string{0: twice}
	l.mu.Unlock()
	s := l.Reload()
	if len(s.Files()) != 200 {
		t.Fatalf("%d files, want 200", len(s.Files()))
	}
}
