package authkeys

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestUpdateAfterEveryFileRemoved: a store emptied of its keys (a file
// with a problem stays) counts a reload's keys from the snapshot, as a
// cold load does (update, prev.keys.n == 0); given keys again, few (an
// update) and many (a rebuild), by a reload of their names and by a full
// one, and emptied again, it decides every key as it is.
func TestUpdateAfterEveryFileRemoved(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	opts.Rescan = -1
	d := opts.Dirs[0]
	for i := range 10 {
		keydirtest.Write(t, filepath.Join(d, fmt.Sprintf("k%03d.json", i)), keydirtest.JWK(t, key(t, i)))
	}
	keydirtest.Write(t, filepath.Join(d, "bad.json"), []byte("{"))
	s := Load(opts)
	defer s.Close()
	check := func(what string, in map[int]bool) {
		t.Helper()
		for i := range 300 {
			d := s.Decide(key(t, i).SPKIHash(), netip.Addr{})
			if (d.Verdict == Authorized) != in[i] {
				t.Errorf("%s: key %d: %v, want authorized %v", what, i, d.Verdict, in[i])
			}
		}
		n := 0
		for range s.All() {
			n++
		}
		if n != len(in) {
			t.Errorf("%s: %d entries, want %d", what, n, len(in))
		}
	}
	in := map[int]bool{}
	for i := range 10 {
		in[i] = true
	}
	check("first", in)
	for i := range 10 {
		os.Remove(filepath.Join(d, fmt.Sprintf("k%03d.json", i)))
	}
	s.Reload()
	check("all removed", map[int]bool{})
	for _, tc := range []struct {
		n      int
		byName bool
	}{{3, true}, {3, false}, {100, true}, {100, false}, {64, true}, {65, false}} {
		var paths []string
		in := map[int]bool{}
		for i := range tc.n {
			p := filepath.Join(d, fmt.Sprintf("n%03d.json", i))
			keydirtest.Write(t, p, keydirtest.JWK(t, key(t, 100+i)))
			paths = append(paths, p)
			in[100+i] = true
		}
		if tc.byName {
			s.Loader().Reload(paths...)
		} else {
			s.Reload()
		}
		check(fmt.Sprintf("%d back (by name %v)", tc.n, tc.byName), in)
		for _, p := range paths {
			os.Remove(p)
		}
		if tc.byName {
			s.Loader().Reload(paths...)
		} else {
			s.Reload()
		}
		check(fmt.Sprintf("%d gone (by name %v)", tc.n, tc.byName), map[int]bool{})
	}
}
