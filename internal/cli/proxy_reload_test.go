package cli

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pxEchoLine sends a line on conn and checks that it comes back.
func pxEchoLine(t *testing.T, conn net.Conn, r *bufio.Reader, line string) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo of %q: %q, %v", line, got, err)
	}
}

// pxBreakKey writes a broken key file in the home of a running proxy,
// whose key is fp, and checks that the proxy refuses it, logged, on the
// file change and again on SIGHUP. restore puts the key file back.
func pxBreakKey(t *testing.T, proxy *pxProc, home, fp string) (restore func()) {
	t.Helper()
	keyFile := filepath.Join(home, "key.json")
	good, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	proxy.waitFor(t, `level=ERROR msg="identity not reloaded: keeping the current one" fingerprint=`+regexpQuote(fp), 10*time.Second)
	if err := proxy.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	proxy.waitFor(t, `msg="SIGHUP: reloading the identity"\n(?:.*\n)*?.*msg="identity not reloaded: keeping the current one"`, 10*time.Second)
	return func() {
		t.Helper()
		if err := os.WriteFile(keyFile, good, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestProxyReloadsIdentity: a running proxy presents a new identity from
// the next handshake once its key file changes, while a connection made
// before goes on; a broken key is refused, on the file change and on
// SIGHUP, and the key in use stays.
func TestProxyReloadsIdentity(t *testing.T) {
	pxNeed(t, "openssl")
	home := pxGen(t)
	dir := t.TempDir()
	crt, key, _ := pxOpenSSLKey(t, dir, "client")
	pxWrite(t, filepath.Join(home, "authorized_keys.d", "client.pem"), pxMust(t, "", "openssl", "pkey", "-in", key, "-pubout"))
	proxy, addr := pxProxy(t, home, "--target", echoServer(t))
	cert, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy's key is compared by hand: this test is not about pinning.
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}
	dial := func() (*tls.Conn, *bufio.Reader) {
		t.Helper()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		r := bufio.NewReader(c)
		pxEchoLine(t, c, r, "hello")
		return c, r
	}
	presented := func() string { c, _ := dial(); defer c.Close(); return spkiFingerprint(c) }

	old := pxFingerprint(t, home)
	open, openR := dial()
	if got := spkiFingerprint(open); got != old {
		t.Fatalf("the proxy presented %s, want %s", got, old)
	}

	// A broken key file: refused when it changes, and again on SIGHUP.
	restore := pxBreakKey(t, proxy, home, old)
	if got := presented(); got != old {
		t.Fatalf("after a broken key, the proxy presented %s, want %s", got, old)
	}
	restore()

	// A new identity: new handshakes see it, the open connection goes on.
	pxMust(t, "", "keytool", "-H", home, "gen", "--force")
	fresh := pxFingerprint(t, home)
	if ok := pxUntil(10*time.Second, func() bool { return presented() == fresh }); ok < 0 {
		t.Fatalf("the proxy did not present its new key %s\n%s", fresh, proxy.stderr.String())
	}
	proxy.waitFor(t, `msg="identity reloaded" fingerprint=`+regexpQuote(fresh)+` previous=`+regexpQuote(old), 5*time.Second)
	pxEchoLine(t, open, openR, "still here")

	// SIGHUP on a good identity reloads it: "identity reloaded" with no
	// previous key, a line only a reload that changed nothing prints. (A
	// connection's lines, at debug, may come between it and the SIGHUP's.)
	same := `msg="identity reloaded" fingerprint=` + regexpQuote(fresh) + `\n`
	if regexp.MustCompile(same).MatchString(proxy.stderr.String()) {
		t.Fatalf("reloaded without a change before the SIGHUP:\n%s", proxy.stderr.String())
	}
	if err := proxy.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	proxy.waitFor(t, `msg="SIGHUP: reloading the identity"\n(?:.*\n)*?.*`+same, 10*time.Second)
	pxEchoLine(t, open, openR, "and still")
	if strings.Contains(proxy.stderr.String(), "closing") {
		t.Errorf("a connection was closed:\n%s", proxy.stderr.String())
	}
}

// TestUpdateHostKeysAskInTerminal: under --update-host-keys ask, a client
// that verified the pinned key of a server announcing a next key is asked,
// with both fingerprints, whether to pin the next one; yes (or the typed
// fingerprint) pins it beside the current pin, no pins nothing.
func TestUpdateHostKeysAskInTerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
	srv := pxGen(t)
	cur := pxFingerprint(t, srv)
	out := pxMust(t, "", "keytool", "-H", srv, "gen", "--next")
	next := regexp.MustCompile(`Fingerprint: (SHA256:\S+)`).FindStringSubmatch(out)[1]
	_, addr := pxProxy(t, srv, "--target", echoServer(t))
	for _, tc := range []struct {
		name    string
		answers []string
		pins    int
		connect bool // keytool connect (its stdin /dev/null) instead of trust-host
	}{
		{"yes", []string{"yes"}, 2, false},
		{"no", []string{"no"}, 1, false},
		{"typed fingerprint", []string{next}, 2, false},
		{"connect, yes", []string{"yes"}, 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := pxGen(t)
			pxMust(t, "", "keytool", "-H", srv, "authorize", "--force", "--name", "c", filepath.Join(client, "pub_key.json"))
			pxMust(t, "", "keytool", "-H", client, "trust-host", addr, "--key", filepath.Join(srv, "pub_key.json"))
			argv := []string{"keytool", "-H", client, "trust-host", "--update-host-keys", "ask", addr}
			if tc.connect {
				argv = []string{"sh", "-c", "keytool -H " + shellQuote(client) + " connect --update-host-keys ask " + addr + " </dev/null"}
			}
			screen := runInTmux(t, argv, "Pin the next key too, beside the current one (yes/no/[fingerprint])? ", tc.answers)
			for _, want := range []string{
				"Host '" + addr + "' proved it holds its pinned ECDSA P-256 key " + cur,
				"ECDSA P-256 key fingerprint is " + next + ".",
			} {
				if !strings.Contains(screen, want) {
					t.Errorf("screen lacks %q:\n%s", want, screen)
				}
			}
			list := pxMust(t, "", "keytool", "-H", client, "trust-host", "--list", "--full")
			if got := strings.Count(list, addr); got != tc.pins {
				t.Errorf("%d pins for %s, want %d:\n%s\n%s", got, addr, tc.pins, list, screen)
			}
			if strings.Contains(list, next) != (tc.pins == 2) {
				t.Errorf("the next key's pin:\n%s", list)
			}
		})
	}
}
