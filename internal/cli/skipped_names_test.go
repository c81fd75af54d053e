package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSkippedFileNamesReachNoTerminal: a file of a trust directory that
// is skipped is reported by its name, and a name that holds terminal
// controls (an escape sequence that clears the screen or retitles the
// window, invalid UTF-8) is reported escaped, as list and the errors
// report it (termtext.Safe) — not raw on standard error, where it would
// drive the terminal of whoever runs bundle, authorize --list,
// trust-host --list or revoke --list. Found by review: those commands
// printed the skipped files' messages as they were.
func TestSkippedFileNamesReachNoTerminal(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	if _, e, code := keytoolIn(t, home, "gen"); code != 0 {
		t.Fatalf("gen: %s", e)
	}
	key := filepath.Join(root, "client.json")
	writePublicKey(t, key, nil)
	if _, e, code := keytoolIn(t, home, "authorize", "--name", "alice", key); code != 0 {
		t.Fatalf("authorize: %s", e)
	}
	if _, e, code := keytoolIn(t, home, "trust-host", "db.example:7443", "--key", key); code != 0 {
		t.Fatalf("trust-host: %s", e)
	}
	hostile := "evil\x1b[2J\x1b]0;owned\x07\xff"
	for _, dir := range []string{"authorized_keys.d", "trusted_hosts.d"} {
		if err := os.WriteFile(filepath.Join(home, dir, hostile+".json"), []byte("not a key\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"bundle", "authorized"},
		{"bundle", "trusted"},
		{"authorize", "--list"},
		{"trust-host", "--list"},
	} {
		_, stderr, code := keytoolIn(t, home, args...)
		if code != 0 {
			t.Errorf("%s: exit %d\n%s", strings.Join(args, " "), code, stderr)
		}
		if !strings.Contains(stderr, "skipped") || !strings.Contains(stderr, `evil\x1b[2J\x1b]0;owned\a\xff`) {
			t.Errorf("%s: the skipped file is not reported by its escaped name:\n%q", strings.Join(args, " "), stderr)
		}
		if strings.ContainsAny(stderr, "\x1b\x07") || strings.Contains(stderr, "\xff") {
			t.Errorf("%s: the raw name reached standard error:\n%q", strings.Join(args, " "), stderr)
		}
	}
}

// TestEntryFileNamesInMessagesReachNoTerminal: the file of an entry that
// is read (a key authorized, pinned or revoked, not skipped) may have any
// name an administrator's tool, a copied tree or a store mirrored by sync
// gave it — an escape sequence, a newline followed by a line of keytool's
// own. Every message that names the file shows it quoted, its characters
// escaped, as the tables do (printable): the host-key-changed warning,
// the pins covering an address, "was authorized as", "already
// authorized", the removals, and show's heading of a file given (a glob
// of the directory: keytool show authorized_keys.d/*). Found by review: each printed the path as it
// was, so a file's name could clear the screen or add a line under
// keytool's — in the warning about an intercepted connection too.
func TestEntryFileNamesInMessagesReachNoTerminal(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	if _, e, code := keytoolIn(t, home, "gen"); code != 0 {
		t.Fatalf("gen: %s", e)
	}
	k1, k2, k3 := filepath.Join(root, "k1.json"), filepath.Join(root, "k2.json"), filepath.Join(root, "k3.json")
	writePublicKey(t, k1, nil)
	writePublicKey(t, k2, nil)
	fp3 := writePublicKey(t, k3, nil).Fingerprint()
	const forged = "keytool: forged"
	hostile := "evil\x1b[2J\x1b]0;owned\x07\n" + forged
	rename := func(dir, from, to string) {
		t.Helper()
		if err := os.Rename(filepath.Join(home, dir, from), filepath.Join(home, dir, to)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(want int, args ...string) {
		t.Helper()
		stdout, stderr, code := keytoolIn(t, home, args...)
		if code != want {
			t.Fatalf("%s: exit %d, want %d\n%s%s", strings.Join(args, " "), code, want, stdout, stderr)
		}
		out := stdout + stderr
		if !strings.Contains(out, `evil\x1b[2J\x1b]0;owned\a\n`+forged) {
			t.Errorf("%s: the file is not named by its escaped name:\n%s", strings.Join(args, " "), out)
		}
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("%s: the raw name reached the terminal:\n%q", strings.Join(args, " "), out)
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, forged) {
				t.Errorf("%s: a line of the file's name:\n%s", strings.Join(args, " "), out)
			}
		}
	}
	if _, e, code := keytoolIn(t, home, "authorize", "--name", "bob", k1); code != 0 {
		t.Fatalf("authorize: %s", e)
	}
	rename("authorized_keys.d", "bob.json", hostile+".json")
	if _, e, code := keytoolIn(t, home, "trust-host", "db.example", "--key", k1); code != 0 {
		t.Fatalf("trust-host: %s", e)
	}
	rename("trusted_hosts.d", "db.example.json", hostile+"-host.json")
	if _, e, code := keytoolIn(t, home, "revoke", k3); code != 0 {
		t.Fatalf("revoke: %s", e)
	}
	revoked, err := filepath.Glob(filepath.Join(home, "revoked_keys.d", "*.json"))
	if err != nil || len(revoked) != 1 {
		t.Fatalf("revoked_keys.d: %v %v", revoked, err)
	}
	rename("revoked_keys.d", filepath.Base(revoked[0]), hostile+"-revoked.json")

	run(0, "authorize", "--name", "carol", k1)                                // already authorized as bob (in FILE)
	run(0, "authorize", "--name", "bob", k1)                                  // nothing changed
	run(0, "authorize", "--accept-rotation", "bob")                           // accepts rotation (FILE)
	run(1, "trust-host", "db.example:443", "--key", k2)                       // the host key has changed: pinned before (in FILE)
	run(1, "trust-host", "--remove", "db.example:443")                        // these pins cover it: (FILE)
	run(0, "show", filepath.Join(home, "authorized_keys.d", hostile+".json")) // a glob of the directory: FILE: ECDSA P-256 public key
	run(1, "authorize", "--name", "bob", k2)                                  // the name is already taken in FILE (authkeys)
	run(1, "authorize", "--name", "zed", k3)                                  // revoked (listed in FILE) (authkeys)
	run(0, "revoke", k3)                                                      // already revoked (FILE)
	run(0, "revoke", k1)                                                      // was authorized as bob (FILE), was trusted (FILE)
	run(0, "revoke", "--remove", fp3)                                         // lifted the revocation (FILE)
	run(0, "authorize", "--remove", "bob")                                    // removed (FILE)
	run(0, "trust-host", "--remove", "db.example")                            // removed (FILE)
	if err := os.WriteFile(filepath.Join(home, "authorized_keys.d", hostile+"-skipped.json"), []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(0, "authorize", "--list") // skipped FILE (keydir.Problem)
	// Skipped for what the file is, whose error names it again: writable
	// by others (trustfile.PermissionError), a link to nothing
	// (trustfile.LinkError).
	if err := os.Remove(filepath.Join(home, "authorized_keys.d", hostile+"-skipped.json")); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(home, "authorized_keys.d", hostile+"-open.json")
	if err := os.WriteFile(open, readFile(t, k2), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o666); err != nil {
		t.Fatal(err)
	}
	run(0, "authorize", "--list")
	if err := os.Remove(open); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "nowhere", hostile+".json"), filepath.Join(home, "authorized_keys.d", hostile+"-link.json")); err != nil {
		t.Fatal(err)
	}
	run(0, "authorize", "--list")
}
