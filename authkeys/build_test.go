package authkeys

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestIncrementalBuild changes a few files at a time — keys that appear
// in several files, multi-key files, files moved between the authorized
// and revoked directories, the whole directory emptied — and after every
// reload checks that the store, whose indexes are edited in place, agrees
// exactly with a full rebuild of the same files: the same entry wins for
// every key (the first file in order), the same lists.
func TestIncrementalBuild(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	auth, revd := opts.Dirs[0], opts.RevokedDirs[0]
	for _, d := range []string{auth, revd} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pool := make([]*jwk.Key, 250)
	for i := range pool {
		pool[i] = key(t, 100+i)
	}
	// Enough files that most reloads take the incremental path.
	for i := range 300 {
		keydirtest.Write(t, filepath.Join(auth, fmt.Sprintf("base%03d.json", i)), keydirtest.JWK(t, key(t, 1000+i)))
	}
	s, err := Load(opts)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for step := range 400 {
		var changed []string
		for range 1 + rng.IntN(3) {
			dir := auth
			if rng.IntN(6) == 0 {
				dir = revd
			}
			path := filepath.Join(dir, fmt.Sprintf("f%02d.json", rng.IntN(25)))
			changed = append(changed, path)
			switch rng.IntN(3) {
			case 0:
				os.Remove(path)
			default:
				var keys []*jwk.Key
				for range 1 + rng.IntN(3) {
					if k := pool[rng.IntN(len(pool))]; !slices.Contains(keys, k) {
						keys = append(keys, k)
					}
				}
				keydirtest.Replace(t, path, keydirtest.JWK(t, keys...))
			}
		}
		if step%50 == 49 {
			s.Reload() // a full rescan now and then
		} else {
			s.l.Reload(changed...)
		}
		sn := s.snap.Load()
		if sn.keys.slots != nil && len(sn.files.Files) > 0 {
			ref := &snapshot{files: sn.files}
			s.rebuild(ref)
			if !sameIndex(sn.keys, ref.keys) || !sameIndex(sn.revoked, ref.revoked) {
				t.Fatalf("step %d: the edited index differs from a rebuild", step)
			}
			if !slices.Equal(s.list(sn, false), s.list(ref, false)) || !slices.Equal(s.list(sn, true), s.list(ref, true)) {
				t.Fatalf("step %d: the lists differ from a rebuild", step)
			}
			if len(s.Entries()) < 300 {
				t.Fatalf("step %d: %d entries, the 300 base files hold more", step, len(s.Entries()))
			}
		}
		if p := s.Problems(); len(p) > 0 {
			t.Fatalf("step %d: %v", step, p)
		}
	}
	// A fresh store reading the final files agrees too.
	fresh, _ := Load(opts)
	for _, k := range append(pool, key(t, 1000)) {
		a, errA := s.LookupKey(k, netip.Addr{})
		b, errB := fresh.LookupKey(k, netip.Addr{})
		if (a == nil) != (b == nil) || a != nil && a.File != b.File || fmt.Sprint(errA) != fmt.Sprint(errB) {
			t.Fatalf("%s: store says %v %v, a fresh load %v %v", k.Fingerprint(), a, errA, b, errB)
		}
	}
	// Both paths were taken, or the test proves little.
	if s.updates < 100 || s.rebuilds < 10 {
		t.Fatalf("%d reloads edited the index, %d rebuilt it: want both paths well exercised", s.updates, s.rebuilds)
	}
	t.Logf("%d reloads edited the index, %d rebuilt it", s.updates, s.rebuilds)
}

// sameIndex reports whether two indexes hold the same entry for every key.
func sameIndex(a, b index) bool {
	if a.n != b.n {
		return false
	}
	for _, e := range a.slots {
		if e != nil && b.get(&e.SPKIHash) != e {
			return false
		}
	}
	return true
}
