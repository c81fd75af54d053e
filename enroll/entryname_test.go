package enroll

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestEntryNameIsTheInvitations: the name a client's key is authorized
// under is the invitation's, not another spelling of it that opens the
// same file. On a file system that ignores case (macOS's default, NTFS,
// an ext4 directory with casefold) or Unicode normalization (APFS),
// "LAPTOP.json" opens laptop.json: the handler read the invitation under
// the name the request sent and added the key under that name, so the
// token's holder chose how its entry is spelt — a name the administrator
// never invited, which NewInvite's check of names taken never saw. A hard
// link stands for such a file system here: another name, the same file.
func TestEntryNameIsTheInvitations(t *testing.T) {
	f := newFailure(t, serverConfig{})
	dir := InvitesDir(f.srvHome.dir)
	if err := os.Link(filepath.Join(dir, "laptop.json"), filepath.Join(dir, "LAPTOP.json")); err != nil {
		t.Fatal(err)
	}
	other := f.tok
	other.Name = "LAPTOP"
	_, err := f.cli.join(t, other)
	var re *RefusedError
	if !errors.As(err, &re) || re.Reason != ReasonUnknown {
		t.Errorf("the token's secret under another spelling of its name: %v; want %s", err, ReasonUnknown)
	}
	for _, e := range f.srvHome.clients(t).Entries() {
		if e.Name != "laptop" {
			t.Errorf("authorized as %q, a name never invited", e.Name)
		}
	}
	if res, err := newHome(t).join(t, f.tok); err != nil || res.Name != "laptop" {
		t.Fatalf("the token under its own name: %v, %+v", err, res)
	}
}
