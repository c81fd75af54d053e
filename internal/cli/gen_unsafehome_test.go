package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenRefusesAHomeTheRuleRefuses: keytool gen writes the identity's
// private key only into a home the strict-modes rule reads from, as
// authorize, ca add and invite write only there (docs/security.md,
// "Skipped trust never widens trust"): a home another user owns or that
// group or others may write, or a home named in a shared directory (/tmp,
// mode 1777) where another user put a link to a directory of theirs
// before the user's first gen (KEYTOOL_HOME=/tmp/kt). Before (found by
// review, 2026-12-03): the key was written there — into the other user's
// directory, through their link — and only the next command refused the
// home. The other user's directory is where they choose the file system
// (a FUSE mount of theirs sees every byte written to it).
func TestGenRefusesAHomeTheRuleRefuses(t *testing.T) {
	if os.Geteuid() != 0 {
		return // chown needs root (tests never skip in CI, which is root)
	}
	root := t.TempDir()
	shared := filepath.Join(root, "shared")
	theirs := filepath.Join(root, "theirs")
	for _, d := range []string{shared, theirs} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(shared, "kt")
	if err := os.Symlink(theirs, linked); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(linked, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	mkHome := func(name string, mode os.FileMode, uid int) string {
		h := filepath.Join(root, name)
		if err := os.Mkdir(h, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(h, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(h, uid, uid); err != nil {
			t.Fatal(err)
		}
		return h
	}
	for _, c := range []struct {
		name, home, blame string
	}{
		{"a link in a shared directory to another user's", linked, shared},
		{"a home another user owns", mkHome("owned", 0o700, 65534), ""},
		{"a home group members may write", mkHome("group", 0o770, 0), ""},
		{"a home others may write", mkHome("others", 0o777, 0), ""},
	} {
		blame := c.blame
		if blame == "" {
			blame = c.home
		}
		cmd := keytoolCmd("gen")
		cmd.Env = append(os.Environ(), "KEYTOOL_HOME="+c.home)
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), blame) {
			t.Errorf("gen in %s: exit %d, want 1 naming %s:\n%s", c.name, code, blame, out)
		}
		if ents, _ := os.ReadDir(c.home); len(ents) != 0 {
			t.Errorf("gen in %s wrote %v", c.name, ents)
		}
	}
	// A home that does not exist yet, in a directory only the user may
	// write, is made (0700) and gets the key.
	fresh := filepath.Join(root, "fresh", "home")
	if out, err := keytoolCmd("-H", fresh, "gen").CombinedOutput(); err != nil {
		t.Fatalf("gen in a new home: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(fresh, "key.json")); err != nil {
		t.Fatal(err)
	}
}
