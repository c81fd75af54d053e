package cli

import (
	"os"
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
		cmd := keytoolCmd(append([]string{"-H", home}, args...)...)
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
	cmd := keytoolCmd("-H", home, "cert", "-o", "cert.pem", "--key-out", "key.pem")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("keytool cert -o cert.pem --key-out key.pem outside the home: %v\n%s", err, out)
	}
}

// TestCertNeverWritesIntoAnotherHome: the same command run in a home that
// is not the one keytool uses — a service's home (gen -f pem: key.pem,
// pub_key.pem), KEYTOOL_HOME naming another. Before (found by review,
// 2026-12-05), only the home keytool used was looked at: --key-out
// key.pem --force wrote the other identity's private key over the
// service's, which was lost, and -o cert.pem put a certificate for
// another key there, with which the service's home no longer loaded.
// nginx's own pair — the identity's key and certificate in a directory
// of their own — is still refreshed, with --force, or the certificate
// alone.
func TestCertNeverWritesIntoAnotherHome(t *testing.T) {
	dir := t.TempDir()
	svc, mine := filepath.Join(dir, "svc"), filepath.Join(dir, "mine")
	keytoolOK(t, "-H", svc, "gen", "-f", "pem")
	keytoolOK(t, "-H", mine, "gen")
	key := filepath.Join(svc, "key.pem")
	before, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	run := func(wd string, args ...string) (int, string) {
		cmd := keytoolCmd(args...)
		cmd.Dir = wd
		cmd.Env = append(os.Environ(), "KEYTOOL_HOME="+mine)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	for _, args := range [][]string{
		{"cert", "-o", "cert.pem", "--key-out", "key.pem", "--force"},
		{"cert", "--key-out", "key.json"},
		{"cert", "-o", "cert.pem"},
	} {
		if code, out := run(svc, args...); code != 1 || !strings.Contains(string(out), "the home .") {
			t.Errorf("keytool %s in another home: exit %d, want 1 naming it:\n%s", strings.Join(args, " "), code, out)
		}
		if now, _ := os.ReadFile(key); string(now) != string(before) {
			t.Fatalf("keytool %s wrote over the service's identity", strings.Join(args, " "))
		}
		for _, name := range []string{"key.json", "cert.pem"} {
			if _, err := os.Lstat(filepath.Join(svc, name)); err == nil {
				t.Errorf("keytool %s wrote %s into the service's home", strings.Join(args, " "), name)
				os.Remove(filepath.Join(svc, name))
			}
		}
	}
	if _, err := tlsbridge.LoadHomeIdentity(svc, tlsbridge.CertOptions{}); err != nil {
		t.Errorf("the service's home does not load: %v", err)
	}
	nginx := filepath.Join(dir, "nginx")
	if err := os.Mkdir(nginx, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"cert", "-o", "cert.pem", "--key-out", "key.pem"},
		{"cert", "-o", "cert.pem", "--key-out", "key.pem", "--force"},
		{"cert", "-o", "cert.pem", "--host", "localhost"}, // the certificate alone, renewed
	} {
		if code, out := run(nginx, args...); code != 0 {
			t.Errorf("keytool %s in nginx's directory: exit %d:\n%s", strings.Join(args, " "), code, out)
		}
	}
}
