package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdviceOutsideTheHome: a trust file outside the home refused by the
// strict-modes rule (here a --ca bundle, as an --etcd-cacert) gets the
// fix for the reason given, from a real keytool process: a file others
// may write, chmod go-w (pki-files.txt); a file owned by another user, a
// copy of one's own — chown would take someone else's file from them;
// a directory owned by another user, a move, as for one others may write
// (pki-files.txt). Before, every one of them was told to move the file
// into a directory, "(FILE is not one)" for a file at fault (found by
// review). The owners need root to be made; CI runs as root.
func TestAdviceOutsideTheHome(t *testing.T) {
	if os.Geteuid() != 0 {
		return // chown needs root (tests never skip in CI, which is root)
	}
	root := t.TempDir()
	home := filepath.Join(root, "home")
	shared := filepath.Join(root, "shared")
	ca := filepath.Join(shared, "ca.pem")
	if out, err := keytoolCmd("-H", home, "gen").CombinedOutput(); err != nil {
		t.Fatalf("gen: %v\n%s", err, out)
	}
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := keytoolCmd("-H", home, "cert", "-o", ca).CombinedOutput(); err != nil {
		t.Fatalf("cert: %v\n%s", err, out)
	}
	connect := func() (string, int) {
		cmd := keytoolCmd("-H", home, "--ca", ca, "connect", "127.0.0.1:1")
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}

	if err := os.Chown(ca, 65534, -1); err != nil {
		t.Fatal(err)
	}
	out, code := connect()
	want := "Fix with: copy " + ca + " to a file of your own, in a directory that only you or root may write, and use that instead (" + ca + " is owned by uid 65534)\n"
	if code != 1 || !strings.Contains(out, "file "+ca+" is owned by uid 65534") || !strings.Contains(out, want) {
		t.Errorf("--ca owned by uid 65534: exit %d, %s; want exit 1, the owner and %q", code, out, want)
	}

	if err := os.Chown(ca, 0, -1); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(shared, 65534, -1); err != nil {
		t.Fatal(err)
	}
	out, code = connect()
	want = "Fix with: move " + ca + " into a directory that only you or root may write (" + shared + " is not one)\n"
	if code != 1 || !strings.Contains(out, "directory "+shared+" (on the way to "+ca+") is owned by uid 65534") || !strings.Contains(out, want) {
		t.Errorf("--ca in a directory owned by uid 65534: exit %d, %s; want exit 1, the owner and %q", code, out, want)
	}
}
