package enroll

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// Removed, its directory not synced: RevokeInvite says so and still
// takes the claims away, and returns what the invitation held.
func TestRevokeInviteNotSynced(t *testing.T) {
	h := newHome(t)
	h.invite(t, "laptop", "127.0.0.1:1")
	dir := InvitesDir(h.dir)
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(string) error { return errors.New("the disk is gone") }
	inv, err := RevokeInvite(dir, "laptop")
	if inv == nil || inv.Name != "laptop" || err == nil || !strings.Contains(err.Error(), "the disk is gone") || !strings.Contains(err.Error(), "removed") {
		t.Fatalf("RevokeInvite with a failed sync: %+v, %v; want the invitation and the sync's error", inv, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "laptop.json")); !os.IsNotExist(err) {
		t.Errorf("the pending invitation is still there: %v", err)
	}
}
