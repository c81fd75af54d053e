package enroll

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
)

// RevokeInvite syncs the invitations directory once the pending
// invitation is gone, before it returns: else a power loss seconds later
// could bring it back, and its token would work again.
func TestRevokeInviteIsDurable(t *testing.T) {
	h := newHome(t)
	h.invite(t, "laptop", "127.0.0.1:1")
	dir := InvitesDir(h.dir)
	pending := filepath.Join(dir, "laptop.json")
	var synced []string
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(d string) error {
		synced = append(synced, d)
		if _, err := os.Lstat(pending); err == nil {
			t.Errorf("%s synced while %s is still there", d, pending)
		}
		return old(d)
	}
	if _, err := RevokeInvite(dir, "laptop"); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(synced, dir) {
		t.Errorf("synced %v, want %s", synced, dir)
	}
}
