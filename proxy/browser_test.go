package proxy

import (
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestClientRefusesBrowsersCrossSiteRequests: a client-mode proxy listens
// on a loopback port that every web page its user's browser opens can
// reach. A page of another site must not act through it with the user's
// key: a DNS-rebinding request (a name of the attacker's, resolved to
// 127.0.0.1: the page may read the answer), a cross-site WebSocket (no
// CORS: the page reads it), a cross-site POST (Origin of another site), a
// cross-site subresource (Sec-Fetch-Site) — each is answered 403 by the
// proxy, nothing of it reaches the target, and the refusal is logged.
// Before (found by review, 2026-12-05): each reached the target as the
// proxy's key, and came back from the echo. What is not a browser's
// cross-site request still passes: requests for localhost and IP
// literals, same-origin ones, a top-level navigation from a link, a
// name given in AcceptHosts, and streams that are not HTTP/1.x.
func TestClientRefusesBrowsersCrossSiteRequests(t *testing.T) {
	srv, laptop := newSide(t), newSide(t)
	srv.authorize(t, "laptop", laptop)
	_, target, _, _ := startServer(t, srv, echoTarget(t), ServerOptions{})
	laptop.pin(t, target, srv)
	logs := &logBuffer{}
	p, err := NewClient(ClientOptions{TLS: laptop.tlsClient(t), Target: target, Logger: logs.logger(), AcceptHosts: []string{"app.test"}})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, t.Context(), p)
	_, port, _ := net.SplitHostPort(addr)

	through := func(msg string) string {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
		got, _ := exchange(conn.(*net.TCPConn), msg)
		return got
	}

	// The last is cut with its bytes unread: the 403 may be lost to the
	// reset that follows, but nothing of the target's may come.
	refused := []struct{ name, req, why string }{
		{"DNS rebinding", "GET /secret HTTP/1.1\r\nHost: rebind.attacker.example:" + port + "\r\nAccept: */*\r\n\r\n", "names the host rebind.attacker.example"},
		{"DNS rebinding, folded case, no port", "get /secret HTTP/1.1\r\nhOsT:attacker.example\r\n\r\n", "names the host attacker.example"},
		{"cross-site WebSocket", "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nOrigin: https://attacker.example\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", "comes from https://attacker.example"},
		{"cross-site POST", "POST /transfer HTTP/1.1\r\nHost: localhost:" + port + "\r\nOrigin: https://attacker.example\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi", "comes from https://attacker.example"},
		{"sandboxed page", "POST / HTTP/1.1\r\nHost: localhost:" + port + "\r\nOrigin: null\r\nContent-Length: 0\r\n\r\n", "comes from null"},
		{"cross-site image", "GET /delete?all=1 HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: image\r\n\r\n", "Sec-Fetch-Site: cross-site"},
		{"cross-site frame", "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: iframe\r\n\r\n", "Sec-Fetch-Site: cross-site"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: localhost\r\nHost: attacker.example\r\n\r\n", "names the host attacker.example"},
		{"a request line longer than the bound", "GET /" + strings.Repeat("a", 70<<10) + " HTTP/1.1\r\nHost: attacker.example\r\n\r\n", "request head longer than"},
	}
	for _, c := range refused {
		got := through(c.req)
		cutWithNothing := got == "" && strings.HasPrefix(c.name, "a request line longer")
		if !cutWithNothing && (!strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") || strings.Contains(got, "Host:") || !strings.Contains(got, "\r\nX-Content-Type-Options: nosniff\r\n")) {
			t.Errorf("%s: got %q, want the proxy's 403 (nosniff) and nothing from the target", c.name, trim(got))
		}
		logs.waitFor(t, `level=WARN msg="refused a browser's cross-site request" remote=127\.0\.0\.1:\d+ target=`+regexp.QuoteMeta(target)+` .*reason=".*`+regexp.QuoteMeta(c.why))
	}

	// A connection opened before its request (a browser's preconnect):
	// silence passes nothing through unlooked at.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
	time.Sleep(2 * tokenWait)
	if got, _ := exchange(conn.(*net.TCPConn), refused[0].req); !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") {
		t.Errorf("a request after %v of silence: got %q, want the proxy's 403", 2*tokenWait, trim(got))
	}

	// A word alone, whose sender waits for the answer: passed on.
	word, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer word.Close()
	_ = word.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
	if _, err := word.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if b := make([]byte, 4); !func() bool { _, err := io.ReadFull(word, b); return err == nil && string(b) == "ping" }() {
		t.Errorf("a word alone, its sender waiting: not echoed")
	}

	passed := []struct{ name, req string }{
		{"localhost", "GET / HTTP/1.1\r\nHost: localhost:" + port + "\r\n\r\n"},
		{"a .localhost name", "GET / HTTP/1.1\r\nHost: app.localhost:" + port + "\r\n\r\n"},
		{"an IP literal", "GET / HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nUser-Agent: curl/8.5.0\r\n\r\n"},
		{"IPv6 loopback", "GET / HTTP/1.1\r\nHost: [::1]:" + port + "\r\n\r\n"},
		{"a name in AcceptHosts", "GET / HTTP/1.1\r\nHost: APP.test:" + port + "\r\n\r\n"},
		{"same-origin POST", "POST / HTTP/1.1\r\nHost: localhost:" + port + "\r\nOrigin: http://localhost:" + port + "\r\nSec-Fetch-Site: same-origin\r\nContent-Length: 0\r\n\r\n"},
		{"another loopback port's page", "POST / HTTP/1.1\r\nHost: localhost:" + port + "\r\nOrigin: http://localhost:3000\r\nSec-Fetch-Site: same-site\r\nContent-Length: 0\r\n\r\n"},
		{"a login form posted back from a name in AcceptHosts", "POST /callback HTTP/1.1\r\nHost: localhost:" + port + "\r\nOrigin: https://app.test\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\nContent-Length: 0\r\n\r\n"},
		{"a page of another loopback port, another site", "GET /api HTTP/1.1\r\nHost: 127.0.0.1:" + port + "\r\nOrigin: http://localhost:3000\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\n\r\n"},
		{"a link followed from another site", "GET /dashboard HTTP/1.1\r\nHost: localhost:" + port + "\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n\r\n"},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n"},
		{"not HTTP", "ping"},
		{"Redis, inline", "SET key value\r\nGET key\r\n"},
		{"Redis, RESP", "*1\r\n$4\r\nPING\r\n"},
		{"binary", "\x00\x00\x00\x08\x04\xd2\x16\x2f"},
		{"HTTP/2 prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"},
	}
	for _, c := range passed {
		if got := through(c.req); got != c.req {
			t.Errorf("%s: got %q, want it echoed", c.name, trim(got))
		}
	}
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
