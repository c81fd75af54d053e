package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/tlsbridge"
)

// TestCertNeverWritesIntoTheHomesIdentity: keytool cert -o cert.pem
// --key-out key.pem — nginx's usual names — run in the home directory
// (cd /etc/keytool) would write the key as a second identity beside
// key.json, and the certificate as the home's cert.pem. cert refuses
// both, writing nothing: a home of two identities loads nowhere (no
// command, no restart; a running proxy refuses every reload), and a
// cert.pem of keytool's making puts the home in PKI mode with a
// certificate frozen at that moment, which announces no next key and
// which a rotation refuses. Before (found by review, 2026-12-05): exit
// 0, and the home no longer loaded.
func TestCertNeverWritesIntoTheHomesIdentity(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	keytoolOK(t, "-H", home, "gen")
	for _, args := range [][]string{
		{"cert", "--key-out", "key.pem"},
		{"cert", "-o", "cert.pem"},
		{"cert", "-o", "cert.pem", "--key-out", "key.pem"},
	} {
		cmd := exec.Command("keytool", append([]string{"-H", home}, args...)...)
		noTerminal(cmd)
		cmd.Dir = home
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), home) {
			t.Errorf("keytool %s in the home: exit %d, want 1 naming the home:\n%s", strings.Join(args, " "), code, out)
		}
		for _, name := range []string{"key.pem", "cert.pem"} {
			if _, err := os.Lstat(filepath.Join(home, name)); err == nil {
				t.Errorf("keytool %s wrote %s into the home", strings.Join(args, " "), name)
				os.Remove(filepath.Join(home, name))
			}
		}
		if _, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{}); err != nil {
			t.Errorf("after keytool %s the home does not load: %v", strings.Join(args, " "), err)
		}
	}
	// Elsewhere, those names are nginx's.
	dir := t.TempDir()
	cmd := exec.Command("keytool", "-H", home, "cert", "-o", "cert.pem", "--key-out", "key.pem")
	noTerminal(cmd)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("keytool cert -o cert.pem --key-out key.pem outside the home: %v\n%s", err, out)
	}
}
