package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// trust-host --remove repeated, in a home whose admin index narrows the
// command's load: the pins that still cover an address it unpinned (a
// port-less host's) are said in a note, and those that cover one it found
// unpinned (a wildcard's) in the error's advice — both read from the
// narrowed store, which holds them as a full one does — and an address
// nothing else covers gets neither.
func TestTrustHostRemoveSaysCoveringPins(t *testing.T) {
	indexSmallHomes(t)
	dir := t.TempDir()
	h := filepath.Join(dir, "home")
	mkHome(t, h) // commands that write refuse a home that is not there
	key := func(i int) string {
		file := filepath.Join(dir, fmt.Sprintf("k%d.json", i))
		writePublicKey(t, file, nil)
		return file
	}
	pin := func(args ...string) {
		t.Helper()
		if _, stderr, code := runKeytool(t, "", append([]string{"-H", h, "trust-host"}, args...)...); code != 0 {
			t.Fatalf("trust-host %v: exit %d\n%s", args, code, stderr)
		}
	}
	for i := range 4 {
		pin(fmt.Sprintf("h%d.example:443", i), "--key", key(i))
	}
	pin("*.cluster.example", "--key", key(10))
	pin("db.example", "--key", key(11))
	pin("db.example:443", "--add", "--key", key(12))
	if _, err := os.Stat(filepath.Join(h, ".index")); err != nil {
		t.Fatalf("no admin index: %v", err)
	}
	stdout, stderr, code := runKeytool(t, "", "-H", h, "trust-host", "--remove", "db.example:443", "--remove", "web.cluster.example:443", "--remove", "h1.example:443")
	if code != 1 {
		t.Errorf("exit %d, want 1 (web.cluster.example:443 has no pin of its own)", code)
	}
	for _, want := range []string{"for db.example:443 (", "for h1.example:443 ("} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	for _, want := range []string{
		"note: db.example:443 is still pinned, by pins that cover it",
		"  db.example  SHA256:",
		"trust-host --remove db.example\n",
		`no host key is pinned for "web.cluster.example:443"`,
		"But these pins cover web.cluster.example:443",
		"  *.cluster.example  SHA256:",
		"trust-host --remove '*.cluster.example'",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "h1.example") {
		t.Errorf("stderr speaks of h1.example:443, which nothing else covers:\n%s", stderr)
	}
}
