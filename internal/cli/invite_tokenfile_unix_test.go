//go:build unix

package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/enroll"
)

// TestInviteRefusesATokenFileOthersMayRead: keytool invite > token.txt
// in a shell whose umask is 022 (most) gives the file mode 0644, and any
// user of the machine who reads the token before its client does enrolls
// a key of their own under its name. invite refuses to print a token into
// a regular file that group or others may read, before anything is made;
// a file only its owner reads (umask 077, or chmod 600 first) gets it, as
// a pipe does. Before: the token was written whatever the file's mode
// (found by review).
func TestInviteRefusesATokenFileOthersMayRead(t *testing.T) {
	home := joinHome(t)
	dir := t.TempDir()
	invite := func(mode fs.FileMode) (string, int, string) {
		t.Helper()
		path := filepath.Join(dir, fmt.Sprintf("token-%04o.txt", mode))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Chmod(mode); err != nil { // whatever the test's umask
			t.Fatal(err)
		}
		return inviteInto(t, home, f)
	}
	pending := filepath.Join(enroll.InvitesDir(home), "laptop.json")
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o666} {
		out, code, e := invite(mode)
		if code != 1 || out != "" || !strings.Contains(e, fmt.Sprintf("mode %04o", mode)) || !strings.Contains(e, "umask 077") {
			t.Errorf("invite > a file of mode %04o: exit %d, stdout %q, stderr:\n%s", mode, code, out, e)
		}
		if _, err := os.Lstat(pending); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("invite > a file of mode %04o made the invitation: %v", mode, err)
		}
	}
	out, code, e := invite(0o600)
	if code != 0 || !strings.HasPrefix(out, enroll.TokenPrefix) {
		t.Fatalf("invite > a file of mode 0600: exit %d, stdout %q, stderr:\n%s", code, out, e)
	}
	if _, err := os.Lstat(pending); err != nil {
		t.Fatal(err)
	}
}

// TestInviteRefusesATokenFileAnotherUserOwns: a file only its owner may
// read is no safer when the owner is someone else. A user who makes
// token.txt beforehand where the administrator will run keytool invite >
// token.txt (in a directory both may write, with a mode that lets the
// administrator write it) reads the token as its owner and enrolls
// first. invite refuses such a file before anything is made, but takes
// one that the user who ran sudo owns, when root runs it under sudo.
// Before: written, whoever owned it (found by review).
func TestInviteRefusesATokenFileAnotherUserOwns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give a file to another user (CI runs as root)")
	}
	home := joinHome(t)
	pending := filepath.Join(enroll.InvitesDir(home), "laptop.json")
	invite := func(env ...string) (string, int, string) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "token.txt")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, 65534, 65534); err != nil { // "nobody" made it
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0) // the shell's "> token.txt"
		if err != nil {
			t.Fatal(err)
		}
		return inviteInto(t, home, f, env...)
	}
	out, code, e := invite("SUDO_UID=")
	if code != 1 || out != "" || !strings.Contains(e, "owned by another user (uid 65534)") || !strings.Contains(e, "Remove the file") {
		t.Errorf("invite > a file nobody owns: exit %d, stdout %q, stderr:\n%s", code, out, e)
	}
	if _, err := os.Lstat(pending); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("invite > a file nobody owns made the invitation: %v", err)
	}
	out, code, e = invite("SUDO_UID=65534")
	if code != 0 || !strings.HasPrefix(out, enroll.TokenPrefix) {
		t.Fatalf("sudo invite > a file of the user who ran sudo: exit %d, stdout %q, stderr:\n%s", code, out, e)
	}
}

// inviteInto runs keytool invite in home with f, a file opened for
// writing, as its standard output (the shell's "> FILE"), and env added
// to its environment; it closes f and returns what the file then holds,
// the exit status and the standard error.
func inviteInto(t *testing.T, home string, f *os.File, env ...string) (string, int, string) {
	t.Helper()
	cmd := keytoolCmd("-H", home, "invite", "--name", "laptop", "--address", "127.0.0.1:8443")
	cmd.Env = append(cmd.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = f, &stderr
	err := cmd.Run()
	f.Close()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(data), code, stderr.String()
}
