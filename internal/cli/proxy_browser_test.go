package cli

import (
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProxyClientRefusesBrowsersCrossSite: keytool proxy --client answers
// 403 to a browser's request that names a host not this machine's (DNS
// rebinding), and passes one naming a name given with --accept-host; in
// server mode the flag is bad usage. Before (found by review, 2026-12-05):
// a web page the user opened reached the target with the home's key.
func TestProxyClientRefusesBrowsersCrossSite(t *testing.T) {
	client, server := pxGen(t), pxGen(t)
	pxMust(t, "", "keytool", "-H", server, "authorize", "--name", "c", filepath.Join(client, "pub_key.json"))
	_, target := pxProxy(t, server, "--target", echoServer(t))
	pxMust(t, "", "keytool", "-H", client, "trust-host", target, "--key", filepath.Join(server, "pub_key.json"))
	p, addr := pxProxy(t, client, "--client", "--target", target, "--accept-host", "app.test,192.0.2.7")

	through := func(req string) string {
		t.Helper()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	rebinding := "GET /secret HTTP/1.1\r\nHost: rebind.attacker.example\r\n\r\n"
	if got := through(rebinding); !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") || strings.Contains(got, "GET /secret") {
		t.Errorf("a DNS-rebinding request: got %q, want the proxy's 403", got)
	}
	p.waitFor(t, `level=WARN msg="refused a browser's cross-site request" remote=127\.0\.0\.1:\d+ target=`+regexpQuote(target)+` .*reason="the request names the host rebind\.attacker\.example`, 15*time.Second)
	for _, named := range []string{"GET / HTTP/1.1\r\nHost: app.test:8080\r\n\r\n", "GET / HTTP/1.1\r\nHost: 192.0.2.7:8080\r\n\r\n"} {
		if got := through(named); got != named {
			t.Errorf("a request for a name given with --accept-host: got %q, want it echoed", got)
		}
	}
	// An address of the network, which browsers mark nothing cross-site
	// for, is not taken without it.
	if got := through("GET / HTTP/1.1\r\nHost: 192.0.2.8:8080\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") {
		t.Errorf("a request for an address not given with --accept-host: got %q, want the proxy's 403", got)
	}
	_, stderr, code := pxRun(t, "", "keytool", "-H", client, "proxy", "--client", "--listen", "127.0.0.1:0", "--target", target, "--accept-host", "[::1]")
	if code != 2 || !strings.Contains(stderr, `--accept-host "[::1]" is neither a DNS name nor an IP address (an IPv6 address without brackets`) {
		t.Errorf("--accept-host [::1]: exit %d, %s", code, stderr)
	}

	_, stderr, code = pxRun(t, "", "keytool", "-H", server, "proxy", "--listen", "127.0.0.1:0", "--target", target, "--accept-host", "app.test")
	if code != 2 || !strings.Contains(stderr, "--accept-host names the hosts a browser's requests to a client proxy may name; it is for --client") {
		t.Errorf("--accept-host in server mode: exit %d, %s", code, stderr)
	}
}
