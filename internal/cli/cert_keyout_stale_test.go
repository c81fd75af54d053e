package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/atomicfile"
)

// TestCertKeyOutRemovesStaleCopies: cert --key-out killed in its write
// leaves the private key in a temporary file beside FILE
// (.server.key.DIGITS.tmp, 0600), as every killed write of a key does;
// the next cert --key-out of FILE removes it once it is StaleAge old, as
// gen's writes of the identity do (atomicfile.RemoveStale, docs/keys.md
// "Permissions and writing"). Before (found by review, 2026-12-05): it
// wrote through atomicfile directly and never looked, so a copy of a key
// written for nginx outlived its replacement, after a rotation too.
func TestCertKeyOutRemovesStaleCopies(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	keytoolOK(t, "-H", home, "gen")
	keyOut := filepath.Join(dir, "server.key")
	held, out := holdAndKill(t, "1:"+atomicfile.StepFilled, "-H", home, "cert", "--key-out", keyOut)
	if held == "" {
		t.Fatalf("cert --key-out did not hold in its write:\n%s", out)
	}
	stale := tmpFiles(t, dir)
	if len(stale) != 1 || !strings.HasPrefix(stale[0], ".server.key.") {
		t.Fatalf("the killed cert --key-out left %v, want one temporary file of server.key", stale)
	}
	old := time.Now().Add(-2 * atomicfile.StaleAge)
	if err := os.Chtimes(filepath.Join(dir, stale[0]), old, old); err != nil {
		t.Fatal(err)
	}
	keytoolOK(t, "-H", home, "cert", "--key-out", keyOut)
	if left := tmpFiles(t, dir); len(left) != 0 {
		t.Errorf("cert --key-out left %v, a copy of the private key a killed write made", left)
	}
}
