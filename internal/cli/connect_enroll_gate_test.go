package cli

import (
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestConnectEnrollGateWithoutHTTP: a client whose key is not authorized
// reaches keytool proxy --enroll with a protocol that is not HTTP. Whether
// it sends another protocol's first bytes, sends nothing and ends its
// input, or sends nothing and waits for the server to speak first (as
// SMTP or MySQL clients do), the proxy answers keytool's 403 for its key
// (piped to standard output as it came), and connect exits 1 saying the
// server refused its key and how to get in — not exit 0 after a 400 Bad
// Request, not "is the service behind it down?". The service is never
// reached; the proxy logs what the client did.
func TestConnectEnrollGateWithoutHTTP(t *testing.T) {
	server := pxGen(t)
	client := newClientHome(t)
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	var reached atomic.Int32
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			reached.Add(1)
			c.Close()
		}
	}()
	proxy, addr := pxProxy(t, server, "--enroll", "--target", target.Addr().String())
	pxMust(t, "", "keytool", "-H", client, "trust-host", addr, "--key", filepath.Join(server, "pub_key.json"))
	fp := pxFingerprint(t, client)

	check := func(what string, code int, stdout, stderr string, logged string) {
		t.Helper()
		proxy.waitFor(t, `msg="not authorized: no HTTP request, answered 403" .*fingerprint=`+regexpQuote(fp)+` reason="enroll: the client made no HTTP request: it `+logged, 10*time.Second)
		if code != 1 || !strings.HasPrefix(stdout, "HTTP/1.1 403 Forbidden\r\n") || !strings.Contains(stdout, `"reason":"not_authorized"`) {
			t.Errorf("%s: exit status %d, want 1 and keytool's 403 on standard output:\n%s\nstderr:\n%s", what, code, stdout, stderr)
		}
		want := "keytool connect: " + addr + " refused this client's key " + fp + ": it answered HTTP 403 Forbidden, reason not_authorized"
		if !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, "join TOKEN") || !strings.Contains(stderr, "keytool authorize") {
			t.Errorf("%s: stderr:\n%s\nwant it to begin with %q and give the two ways in", what, stderr, want)
		}
	}
	o, e, code := pxRun(t, "SSH-2.0-OpenSSH_9.6\r\n", "keytool", "-H", client, "connect", addr)
	check("another protocol's first line", code, o, e, "sent bytes that cannot begin an HTTP request")
	o, e, code = pxRun(t, "", "keytool", "-H", client, "connect", addr)
	check("nothing sent, input ended", code, o, e, "ended its stream without sending a byte")
	waiting := pxStart(t, "keytool", "-H", client, "connect", addr) // stdin stays open, nothing sent
	code = waiting.wait(t, 20*time.Second)
	check("nothing sent, waiting for the server", code, waiting.stdout.String(), waiting.stderr.String(), "sent nothing within 3s of the handshake")

	if n := reached.Load(); n != 0 {
		t.Errorf("the service was reached %d times by a key that is not authorized", n)
	}
}
