package authkeys

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestEntryMadeDuringReload: a handshake makes a key's Entry (item.entry)
// while the loader replaces the key's file and compares the old file's
// items with the new one's (and builds the revocation set, and the
// index), and while an admin lookup by fingerprint (FindKeys, keydir.Loader.Find)
// reads them: nothing may copy an item Decide writes into, which the
// race detector checks (go test -race). Each reload changes the file, so
// that the items whose Entries were just made are the old ones at the
// next.
func TestEntryMadeDuringReload(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	path := filepath.Join(opts.Dirs[0], "alice.json")
	alice := key(t, 1)
	keydirtest.Write(t, path, keydirtest.JWK(t, keydirtest.WithAttrs(alice, "comment", "v0")))
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "old.json"), keydirtest.JWK(t, key(t, 2)))
	fp, err := jwk.ParseFingerprint(alice.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	s := Load(opts)
	defer s.Close()
	var stop atomic.Bool
	done := make(chan int)
	go func() {
		n := 0
		for !stop.Load() {
			if d := s.Decide(alice.SPKIHash(), netip.Addr{}); d.Verdict == Authorized {
				n++
			}
		}
		done <- n
	}()
	for i := range 50 {
		keydirtest.Write(t, path, keydirtest.JWK(t, keydirtest.WithAttrs(alice, "comment", fmt.Sprintf("v%d", i+1))))
		s.Loader().Reload(path)
		if found := s.FindKeys(fp, false); len(found) != 1 {
			t.Fatalf("FindKeys: %d entries, want 1", len(found))
		}
	}
	stop.Store(true)
	if n := <-done; n == 0 {
		t.Fatal("alice was never authorized")
	}
}
