package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCertKeyOutNeverOverAPublicFile: cert --key-out --force writes the
// private key over an existing FILE — but never over a file of public
// keys or certificates (the home's pub_key.json, a client's key, the
// certificate -o wrote, -o and --key-out swapped by mistake), which is
// made to be copied to other machines, the private key with it; gen -i
// refuses the same, --force or not. Before (found by review, 2026-12-05):
// it was written, and pub_key.json, or server.crt, held the private key.
func TestCertKeyOutNeverOverAPublicFile(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	keytoolOK(t, "-H", home, "gen")
	crt := filepath.Join(dir, "server.crt")
	keytoolOK(t, "-H", home, "cert", "-o", crt)
	for _, path := range []string{filepath.Join(home, "pub_key.json"), crt} {
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		cmd := keytoolCmd("-H", home, "cert", "--key-out", path, "--force")
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), path) {
			t.Errorf("cert --key-out %s --force: exit %d, want 1 naming it:\n%s", path, code, out)
		}
		if now, _ := os.ReadFile(path); !bytes.Equal(now, before) {
			t.Errorf("cert --key-out --force wrote the private key over %s:\n%s", path, now)
		}
	}
	// A key file of its own, written before, is replaced.
	keyOut := filepath.Join(dir, "server.key")
	keytoolOK(t, "-H", home, "cert", "--key-out", keyOut)
	keytoolOK(t, "-H", home, "cert", "--key-out", keyOut, "--force")
}
