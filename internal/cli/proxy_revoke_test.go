package cli

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestProxyLiveRevocation: two keytool proxy processes in front of one
// TCP echo server, one with --keep-open-on-revoke; keytool connect
// processes hold connections open through them. keytool revoke of
// laptop's key ends laptop's connection through the first proxy within a
// second (keytool connect exits), with the closing line naming the key;
// desk's connection through it still echoes, and so does laptop's through
// the proxy that keeps connections open.
func TestProxyLiveRevocation(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	server, laptop, desk := pxGen(t), pxGen(t), pxGen(t)
	for name, home := range map[string]string{"laptop": laptop, "desk": desk} {
		pxMust(t, "", "keytool", "-H", server, "authorize", "--name", name, filepath.Join(home, "pub_key.json"))
	}
	live, liveAddr := pxProxy(t, server, "--target", ln.Addr().String())
	keep, keepAddr := pxProxy(t, server, "--target", ln.Addr().String(), "--keep-open-on-revoke")
	serverFP := pxFingerprint(t, server)
	for _, home := range []string{laptop, desk} {
		for _, addr := range []string{liveAddr, keepAddr} {
			pxMust(t, "", "keytool", "-H", home, "trust-host", addr, "--fingerprint", serverFP)
		}
	}
	connect := func(home, addr, word string) *pxProc {
		p := pxStart(t, "keytool", "-H", home, "connect", addr)
		pxSay(t, p, word)
		return p
	}
	laptopLive := connect(laptop, liveAddr, "one")
	laptopKept := connect(laptop, keepAddr, "two")
	deskLive := connect(desk, liveAddr, "three")

	pxMust(t, "", "keytool", "-H", server, "revoke", filepath.Join(laptop, "pub_key.json"))
	at := time.Now()
	select {
	case <-laptopLive.done:
		if d := time.Since(at); d > 1500*time.Millisecond {
			t.Errorf("keytool connect ended %v after the revocation, want < 1.5s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("laptop's connection is still open 5s after its key was revoked\n%s", live.stderr.String())
	}
	live.waitFor(t, `level=WARN msg="closing: key no longer admitted" remote=127\.0\.0\.1:\d+ fingerprint=`+regexpQuote(pxFingerprint(t, laptop))+` name=laptop reason="authkeys: key \S+ is revoked`, 5*time.Second)

	time.Sleep(1200 * time.Millisecond) // a sweep of the open connections later
	pxSay(t, deskLive, "four")
	pxSay(t, laptopKept, "five")
	if n := strings.Count(live.stderr.String(), "closing: key no longer admitted"); n != 1 {
		t.Errorf("%d connections closed, want laptop's one:\n%s", n, live.stderr.String())
	}
	if strings.Contains(keep.stderr.String(), "closing:") {
		t.Errorf("--keep-open-on-revoke closed a connection:\n%s", keep.stderr.String())
	}
}

// pxSay writes a word to keytool connect's input and waits for its echo.
func pxSay(t *testing.T, p *pxProc, word string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, word+"\n"); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, `(?m)^`+word+`$`, 10*time.Second)
}

// TestProxyLiveRevocationCurlKeepAlive: curl fetches a page twice through
// keytool proxy on one keep-alive connection, twelve seconds apart (--rate);
// between the two, keytool revoke of curl's key closes the idle
// connection within a second (the proxy's closing line names the key),
// so curl's second request needs a new connection, which the handshake
// refuses. The target saw one connection. The first request seen, its
// connection's accepted line, keytool revoke (a process) and the closing
// all come between curl's two requests: six seconds apart, they left a
// loaded machine (-race, other packages' tests, two cores) little room,
// and a second request that went out before the revocation was applied
// would fail the test with no fault of the proxy's.
func TestProxyLiveRevocationCurlKeepAlive(t *testing.T) {
	pxNeed(t, "curl", "openssl")
	var conns, requests atomic.Int32
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "page\n")
		requests.Add(1)
	}))
	target.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	target.Start()
	defer target.Close()
	server := pxGen(t)
	proxy, addr := pxProxy(t, server, "--target", target.Listener.Addr().String())
	dir := t.TempDir()
	crt, key, spki := pxOpenSSLKey(t, dir, "curl")
	curlFP := "SHA256:" + strings.TrimRight(spki, "=")
	pubFile := filepath.Join(dir, "curl-pub.pem")
	pxWrite(t, pubFile, pxMust(t, "", "openssl", "pkey", "-in", key, "-pubout"))
	pxMust(t, "", "keytool", "-H", server, "authorize", "--name", "curl", pubFile)

	url := "https://" + addr + "/"
	if pxUntil(5*time.Second, func() bool {
		body, _, code := pxCurl(t, url, "-k", "--cert", crt, "--key", key)
		return code == 0 && body == "page\n"
	}) < 0 {
		t.Fatal("curl's key was not admitted after keytool authorize")
	}
	conns.Store(0)
	requests.Store(0)
	curl := pxStart(t, "curl", "-sS", "-k", "--cert", crt, "--key", key, "--rate", "5/m",
		"-w", "status=%{http_code} new_connections=%{num_connects}\n", url, url)
	if pxUntil(5*time.Second, func() bool { return requests.Load() == 1 }) < 0 {
		t.Fatal("curl's first request did not reach the target")
	}
	proxy.waitFor(t, `msg=accepted remote=127\.0\.0\.1:\d+ fingerprint=`+regexpQuote(curlFP)+` name=curl`, 5*time.Second)

	pxMust(t, "", "keytool", "-H", server, "revoke", pubFile)
	at := time.Now()
	proxy.waitFor(t, `level=WARN msg="closing: key no longer admitted" remote=127\.0\.0\.1:\d+ fingerprint=`+regexpQuote(curlFP)+` name=curl reason="authkeys: key \S+ is revoked`, 5*time.Second)
	if took := time.Since(at); took > 1500*time.Millisecond {
		t.Errorf("the keep-alive connection was closed %v after keytool revoke, want < 1.5s", took)
	}
	if code := curl.wait(t, 30*time.Second); code == 0 {
		t.Errorf("curl's second request after the revocation succeeded:\n%s", curl.stdout.String())
	}
	if out := curl.stdout.String(); !strings.HasPrefix(out, "page\nstatus=200 new_connections=1\n") || strings.Count(out, "page\n") != 1 || requests.Load() != 1 {
		t.Errorf("curl got the page %d times (the target served %d), want once on a new connection:\n%s", strings.Count(out, "page\n"), requests.Load(), out)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the target saw %d connections, want curl's one kept alive", n)
	}
}
