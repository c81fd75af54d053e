package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// gen --keep-key reads the identity, then writes it back with the names;
// another writer between the two — a gen --force making a new key, a
// rotate, or either replacing a link to the key with a file — must not be
// undone by the old key written back over its work. keytool's writers
// wait for the lock keep-key holds from its read to its write
// (TestConcurrentIdentityWritersMatch); what is left to the comparison
// is the writers that take no lock — config management, an editor, a
// keytool whose lock file could not be had. The keep-key run is this
// process's (run), and the hook between its read and its write runs the
// other writer as a real keytool process that goes ahead unlocked (the
// home's lock file made 0644 for it), at that exact point: the
// new key survives, byte for byte, the command says the identity changed
// and the command to run again, and leaves no temporary file; run again,
// it saves the names in the new key.
func TestKeepKeyLosesNoConcurrentWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		link  bool       // key.json a link to keys/key.json
		other [][]string // the other writer's commands, after -H HOME
	}{
		{"gen --force", false, [][]string{{"gen", "--force"}}},
		{"gen --next then rotate", false, [][]string{{"gen", "--next"}, {"rotate"}}},
		{"gen --force over a link", true, [][]string{{"gen", "--force"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			keytoolOK(t, "-H", home, "gen")
			keyPath := filepath.Join(home, "key.json")
			if tc.link {
				if err := os.Mkdir(filepath.Join(home, "keys"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(keyPath, filepath.Join(home, "keys", "key.json")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join("keys", "key.json"), keyPath); err != nil {
					t.Fatal(err)
				}
			}
			old := readFile(t, keyPath)
			var replaced []byte
			keepKeyBeforeWrite = func(path string) {
				if path != keyPath {
					t.Errorf("hook called for %s, want %s", path, keyPath)
				}
				// A lock file others may open is not taken: the other
				// writer does not wait for the lock keep-key holds.
				lock := filepath.Join(home, ".keytool.lock")
				if err := os.Chmod(lock, 0o644); err != nil {
					t.Fatal(err)
				}
				for _, args := range tc.other {
					keytoolOK(t, append([]string{"-H", home}, args...)...)
				}
				if err := os.Chmod(lock, 0o600); err != nil {
					t.Fatal(err)
				}
				replaced = readFile(t, keyPath)
			}
			defer func() { keepKeyBeforeWrite = nil }()

			var stdout, stderr bytes.Buffer
			code := run([]string{"-H", home, "gen", "--host", "a.example", "--keep-key"}, nil, &stdout, &stderr)
			keepKeyBeforeWrite = nil
			want := "keytool gen: the identity " + keyPath + " changed while gen ran (another gen --force, a rotate or an edit wrote it): the names were not saved, and what is there now was left as it is; run it again: keytool -H " + home + " gen --host a.example --keep-key\n"
			if code != 1 || stderr.String() != want || stdout.Len() != 0 {
				t.Fatalf("keep-key with %s between its read and its write: exit %d, stdout %q, stderr %q; want exit 1 and\n%s", tc.name, code, stdout.String(), stderr.String(), want)
			}
			if bytes.Equal(replaced, old) {
				t.Fatalf("the other writer (%s) left the key as it was: the test proves nothing", tc.name)
			}
			if now := readFile(t, keyPath); !bytes.Equal(now, replaced) {
				t.Errorf("after the refused keep-key the identity holds\n%s\nwant the other writer's\n%s", now, replaced)
			}
			for _, dir := range []string{home, filepath.Join(home, "keys")} {
				if tmps, _ := filepath.Glob(filepath.Join(dir, ".key.json.*.tmp")); len(tmps) > 0 {
					t.Errorf("temporary files left: %q", tmps)
				}
			}

			// Run again, it saves the names in the key now there.
			out := keytoolOK(t, "-H", home, "gen", "--host", "a.example", "--keep-key")
			fp := keytoolOK(t, "-H", home, "show")
			if !strings.Contains(out, "Certificate names: a.example (were: none)") || !strings.Contains(fp, `names        ["a.example"]`) {
				t.Errorf("keep-key run again: %s\nshow: %s", out, fp)
			}
		})
	}
}

// keytoolOK runs keytool as a process and returns its standard output,
// failing the test unless it exits 0.
func keytoolOK(t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, code := pxRun(t, "", "keytool", args...)
	if code != 0 {
		t.Fatalf("keytool %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}
