package cli

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
)

// TestStoreRevokeUnsyncedSaysNothingRevoked: on a --store, a command
// that fails writes nothing back; a revocation whose directory (in the
// store's copy) could not be synced fails the command (exit 1), so the
// store is left as it was, and no key is said revoked (found by review:
// "Revoked" was printed).
func TestStoreRevokeUnsyncedSaysNothingRevoked(t *testing.T) {
	for _, mirrored := range []bool{false, true} {
		dir := t.TempDir()
		h0 := filepath.Join(dir, "seed")
		mkHome(t, h0)
		old := filepath.Join(dir, "old.json")
		writePublicKey(t, old, nil)
		if _, stderr, code := runKeytool(t, "", "-H", h0, "revoke", old); code != 0 {
			t.Fatal(stderr)
		}
		st := storeOf(t, h0, StoreRevoked)
		u := memStoreURL(t, st)
		h := filepath.Join(dir, "home")
		if mirrored {
			mkHome(t, h)
		}
		pub := filepath.Join(dir, "new.json")
		k := writePublicKey(t, pub, nil)
		prev := atomicfile.SyncDir
		atomicfile.SyncDir = func(d string) error {
			if filepath.Base(d) == "revoked_keys.d" {
				return errors.New("the disk is gone")
			}
			return prev(d)
		}
		before := st.revision
		stdout, stderr, code := runKeytool(t, "", "-H", h, "revoke", "--store", u, pub)
		atomicfile.SyncDir = prev
		if code != 1 || st.revision != before || strings.Contains(stdout, "Revoked "+k.Fingerprint()) || !strings.Contains(stderr, "nothing was written to the store") {
			t.Errorf("mirrored=%v: exit %d, store revision %d -> %d\nstdout:\n%s\nstderr:\n%s\nwant exit 1, the store as it was, no key said revoked", mirrored, code, before, st.revision, stdout, stderr)
		}
	}
}
