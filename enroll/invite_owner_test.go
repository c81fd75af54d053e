package enroll

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// otherUID owns what another user of the machine would have written.
const otherUID = 4242

// needChown skips a test that gives files away to another user, which
// only root may do.
func needChown(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another uid (chown) needs root; run as root to test ownership checks")
	}
}

// An invitations directory, its used/ subdirectory or an invitation file
// owned by another user is refused, whatever its mode: that user could
// write an invitation with a secret of their choosing and enroll their
// own key. The enrollment is refused (internal for a directory; for an
// invitation file, unknown_invitation, as a name never made: the
// server's log says why), listing reports it, and nothing is written.
func TestInvitationsOwnedByAnotherUser(t *testing.T) {
	needChown(t)
	for _, tc := range []struct {
		name  string
		owned func(dir string) string // gives a path away; returns it
	}{
		{"invites.d", func(dir string) string { return dir }},
		{"used", func(dir string) string { return filepath.Join(dir, usedDir) }},
		{"invitation file", func(dir string) string { return filepath.Join(dir, "laptop.json") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFailure(t, serverConfig{})
			dir := InvitesDir(f.srvHome.dir)
			owned := tc.owned(dir)
			if err := os.Chown(owned, otherUID, otherUID); err != nil {
				t.Fatal(err)
			}
			err := f.join(t, f.tok)
			want := ReasonInternal
			if tc.name == "invitation file" {
				want = ReasonUnknown // TestServerFaultFolded
			}
			var re *RefusedError
			if !errors.As(err, &re) || re.Reason != want {
				t.Fatalf("join: %v, want refused (%s)", err, want)
			}
			if log := f.srv.log.String(); !strings.Contains(log, owned) || !strings.Contains(log, "owned by uid 4242") {
				t.Errorf("the server's log does not say which file another user owns:\n%s", log)
			}
			if strings.Contains(re.Message, f.srvHome.dir) {
				t.Errorf("the client was told the server's path: %s", re.Message)
			}
			_, probs := ListInvites(dir)
			var pe *trustfile.PermissionError
			if len(probs) != 1 || !errors.As(probs[0], &pe) || pe.Path != owned || pe.Owner != otherUID {
				t.Errorf("ListInvites problems = %v, want one naming %s, owned by %d", probs, owned, otherUID)
			}
			if tc.name != "invitation file" {
				if _, _, err := NewInvite(dir, f.srvHome.key(), InviteOptions{Name: "more", Addresses: []string{"a:1"}}); !errors.As(err, &pe) {
					t.Errorf("NewInvite in a directory another user owns: %v", err)
				}
			}

			// Given back, the invitation works.
			if err := os.Chown(owned, 0, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.cli.join(t, f.tok); err != nil {
				t.Fatalf("join after chown back: %v", err)
			}
		})
	}
}

// The rule climbs to the keytool home (the parent of invites.d): a home
// that others may write to is refused too, and so is an invitation that
// is a link to a file in a directory others may write to.
func TestInvitationsUpToTheHome(t *testing.T) {
	f := newFailure(t, serverConfig{})
	if err := os.Chmod(f.srvHome.dir, 0o770); err != nil {
		t.Fatal(err)
	}
	var re *RefusedError
	if err := f.join(t, f.tok); !errors.As(err, &re) || re.Reason != ReasonInternal {
		t.Fatalf("group-writable home: %v", err)
	}
	if err := os.Chmod(f.srvHome.dir, 0o700); err != nil {
		t.Fatal(err)
	}

	dir := InvitesDir(f.srvHome.dir)
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	pending := filepath.Join(dir, "laptop.json")
	target := filepath.Join(open, "laptop.json")
	data, err := os.ReadFile(pending)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(pending); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, pending); err != nil {
		t.Fatal(err)
	}
	if err := f.join(t, f.tok); !errors.As(err, &re) || re.Reason != ReasonUnknown { // as a name never made: TestServerFaultFolded
		t.Fatalf("invitation linked into an open directory: %v", err)
	}
}

// NewInvite changes no mode through a link: in a home another user owns,
// invites.d may be their link to any directory, and root running
// "keytool -H ~alice/.keytool invite" for her made that directory 0700
// (found by review: makeDirs tightened the link's target before the rule
// refused the home) — /usr, say. It is refused, the target left as it was.
func TestNewInviteChangesNothingThroughALink(t *testing.T) {
	needChown(t)
	home, victim := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "victim")
	for _, d := range []string{home, victim} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(victim, InvitesDir(home)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, otherUID, otherUID); err != nil {
		t.Fatal(err)
	}
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	var pe *trustfile.PermissionError
	if _, _, err := NewInvite(InvitesDir(home), k, InviteOptions{Name: "laptop", Addresses: []string{"a:1"}}); !errors.As(err, &pe) || pe.Path != home {
		t.Errorf("NewInvite: %v; want a *trustfile.PermissionError naming %s", err, home)
	}
	if fi, err := os.Stat(victim); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("the link's target: %v, %v; want it left 0755", fi.Mode(), err)
	}
	if des, _ := os.ReadDir(victim); len(des) > 0 {
		t.Errorf("made in the link's target: %v", des)
	}
}
