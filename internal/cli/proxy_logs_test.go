package cli

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestProxyLogsTrustReloaded: a running keytool proxy logs one "trust
// reloaded" line per change of its trust files, saying what changed: a
// key authorized, another, one revoked, one removed, a file made unsafe
// (writable by others: skipped).
func TestProxyLogsTrustReloaded(t *testing.T) {
	home := pxGen(t)
	proxy, _ := pxProxy(t, home, "--target", "127.0.0.1:1")
	alice, bob := pxGen(t), pxGen(t)
	lines := 0
	step := func(what, want string, args ...string) {
		t.Helper()
		if len(args) > 0 {
			pxMust(t, "", "keytool", append([]string{"-H", home}, args...)...)
		}
		lines++
		re := regexp.MustCompile(`msg="trust reloaded" (.*) took=\S+\n`)
		var got [][]string
		pxUntil(5*time.Second, func() bool {
			got = re.FindAllStringSubmatch(proxy.stderr.String(), -1)
			return len(got) >= lines
		})
		if len(got) != lines || got[lines-1][1] != want {
			t.Fatalf("%s: trust reloaded lines %q, want line %d to say %q\n%s", what, got, lines, want, proxy.stderr.String())
		}
	}
	step("alice authorized", "authorized=+1/-0 revoked=+0/-0 skipped=0 keys=1",
		"authorize", "--name", "alice", filepath.Join(alice, "pub_key.json"))
	step("bob authorized", "authorized=+1/-0 revoked=+0/-0 skipped=0 keys=2",
		"authorize", "--name", "bob", filepath.Join(bob, "pub_key.json"))
	step("alice revoked", "authorized=+0/-0 revoked=+1/-0 skipped=0 keys=2",
		"revoke", filepath.Join(alice, "pub_key.json"))
	step("bob removed", "authorized=+0/-1 revoked=+0/-0 skipped=0 keys=1",
		"authorize", "--remove", "bob")
	if err := os.Chmod(filepath.Join(home, "authorized_keys.d", "alice.json"), 0o666); err != nil {
		t.Fatal(err)
	}
	step("alice.json made writable by others", "authorized=+0/-1 revoked=+0/-0 skipped=1 keys=0")
}

// TestProxyLogsFailures: 200 connections from one client that close
// before their handshake make one line (the next are counted, for a line
// ten seconds later); a client that does not trust the proxy's key —
// openssl s_client checking it against another CA — is logged as such,
// at once, with its alert.
func TestProxyLogsFailures(t *testing.T) {
	pxNeed(t, "openssl")
	home := pxGen(t)
	proxy, addr := pxProxy(t, home, "--target", "127.0.0.1:1")
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	proxy.waitFor(t, `msg="handshake failed" remote=127\.0\.0\.1:\d+ fingerprint="" reason=EOF`, 5*time.Second)

	other := t.TempDir()
	crt, _, _ := pxOpenSSLKey(t, other, "other")
	cmd := exec.Command("openssl", "s_client", "-connect", addr, "-CAfile", crt, "-verify_return_error")
	cmd.Stdin = strings.NewReader("")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("openssl s_client trusted a key its CA file does not hold:\n%s", out)
	}
	proxy.waitFor(t, `level=WARN msg="client refused this server's key" remote=127\.0\.0\.1:\d+ alert="unknown certificate authority"`, 5*time.Second)
	if n := strings.Count(proxy.stderr.String(), `msg="handshake failed"`); n != 1 {
		t.Errorf("200 failed handshakes from one client: %d lines within the first seconds, want 1\n%s", n, proxy.stderr.String())
	}
}

// A proxy whose authorized_keys.d was skipped (its modes) does not tell
// the admin to authorize a key — the directory may hold it — but that the
// files were skipped; with nothing skipped, the command it gives names the
// home it runs on.
func TestProxyLogsNoClientKey(t *testing.T) {
	home := pxGen(t)
	proxy, _ := pxProxy(t, home, "--target", "127.0.0.1:1")
	proxy.waitFor(t, `msg="no client key is authorized yet: every client is refused until one is \(keytool -H `+regexpQuote(home)+` authorize --name NAME FILE\)"`, 5*time.Second)
	proxy.stop(t)

	dir := filepath.Join(home, "authorized_keys.d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	pxMust(t, "", "keytool", "-H", home, "authorize", "--name", "laptop", filepath.Join(pxGen(t), "pub_key.json"))
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	proxy, _ = pxProxy(t, home, "--target", "127.0.0.1:1")
	proxy.waitFor(t, `level=WARN msg="no client key could be read: trust files were skipped \(above\), and every client is refused until they are fixed"`, 5*time.Second)
	if strings.Contains(proxy.stderr.String(), "authorized yet") {
		t.Errorf("a proxy whose authorized_keys.d was skipped says no key is authorized yet:\n%s", proxy.stderr.String())
	}
}
