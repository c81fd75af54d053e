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
