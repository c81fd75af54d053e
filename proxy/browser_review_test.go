package proxy

// The client proxy's browser gate, as an adversarial review of it found
// it wanting (2026-12-05): each of these failed before its fix
// (docs/security.md, "The client proxy's browser gate, second pass").

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// gatedEcho is a client proxy in front of an echo target, as in
// TestClientRefusesBrowsersCrossSiteRequests.
func gatedEcho(t *testing.T) (addr, port string) {
	t.Helper()
	addr = clientProxyTo(t, echoTarget(t), ClientOptions{})
	_, port, _ = net.SplitHostPort(addr)
	return addr, port
}

// clientProxyTo serves a client proxy (opts, its TLS and Target filled
// in) whose target is a server proxy in front of app, and returns the
// client proxy's address.
func clientProxyTo(t *testing.T, app string, opts ClientOptions) string {
	t.Helper()
	srv, laptop := newSide(t), newSide(t)
	srv.authorize(t, "laptop", laptop)
	_, target, _, _ := startServer(t, srv, app, ServerOptions{})
	laptop.pin(t, target, srv)
	opts.TLS, opts.Target = laptop.tlsClient(t), target
	p, err := NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, t.Context(), p)
	return addr
}

func throughGate(t *testing.T, addr, msg string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	got, _ := exchange(conn.(*net.TCPConn), msg)
	return got
}

// TestClientRefusesLoopbackSpellingsWithoutFetchMetadata: a page of another
// site that loads <img src="http://0.0.0.0:PORT/..."> (or
// http://[::ffff:127.0.0.1]:PORT/...) reaches the proxy's loopback
// listener (Linux, macOS), but the URL is not "potentially trustworthy",
// so the browser sends no Sec-Fetch-* headers, and a no-cors GET carries
// no Origin: only its Host tells. It is refused: an IP literal passes
// only as a browser writes a loopback address (127.x.y.z, ::1). Before,
// any IP literal passed, and the cross-site GET reached the target with
// the user's key. These are the bytes a browser sends for it (Firefox's
// shape).
func TestClientRefusesLoopbackSpellingsWithoutFetchMetadata(t *testing.T) {
	addr, port := gatedEcho(t)
	for _, host := range []string{"0.0.0.0:" + port, "[::ffff:7f00:1]:" + port, "[::ffff:0:0]:" + port} {
		req := "GET /api/delete?all=1 HTTP/1.1\r\nHost: " + host + "\r\n" +
			"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
			"Accept: image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5\r\n" +
			"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\n" +
			"Connection: keep-alive\r\nReferer: http://attacker.example/\r\n\r\n"
		if got := throughGate(t, addr, req); !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") {
			t.Errorf("Host %s, a cross-site <img> with no fetch metadata: got %q, want the proxy's 403", host, trim(got))
		}
	}
}

// TestClientChecksAfterAnUpgradeRefused: a same-origin
// WebSocket handshake (Upgrade: websocket) that the target does not
// switch for (404, connection kept, as net/http does for a handler that
// is no WebSocket) leaves the connection in HTTP/1.x, and the gate goes
// on checking its requests: a cross-site one sent next is refused.
// Before, any request to switch protocols turned the gate opaque for the
// rest of the connection, whatever the target answered.
func TestClientChecksAfterAnUpgradeRefused(t *testing.T) {
	var reached atomic.Int32
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/steal" {
			reached.Add(1)
		}
		if r.URL.Path == "/ws" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "secret")
	}))
	t.Cleanup(app.Close)
	addr := clientProxyTo(t, strings.TrimPrefix(app.URL, "http://"), ClientOptions{})
	_, port, _ := net.SplitHostPort(addr)

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: localhost:"+port+"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Origin: http://localhost:"+port+"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Close {
		t.Fatalf("handshake answered %s close=%v, want 404 kept alive", resp.Status, resp.Close)
	}
	io.WriteString(conn, "GET /steal HTTP/1.1\r\nHost: localhost:"+port+"\r\nOrigin: https://attacker.example\r\n"+
		"Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || reached.Load() != 0 {
		t.Errorf("cross-site request after a refused upgrade: %s %q, target reached %d times; want the proxy's 403 and nothing at the target", resp.Status, b, reached.Load())
	}
}

// TestClientPassesForwardProxyRequests: a target that is a forward proxy
// (squid behind the server proxy) is reached with absolute-form requests
// and CONNECT, whose Host names the destination. No browser page can
// send either to a non-proxy (a browser uses them only towards a proxy it
// was configured with): they pass. Before, the gate refused them as DNS
// rebinding, and curl -x, HTTP_PROXY for Go, pip or apt could not use the
// tunnel.
func TestClientPassesForwardProxyRequests(t *testing.T) {
	addr, _ := gatedEcho(t)
	for _, req := range []string{
		"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n",
		"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nUser-Agent: curl/8.5.0\r\nProxy-Connection: Keep-Alive\r\n\r\n",
	} {
		if got := throughGate(t, addr, req); got != req {
			t.Errorf("a forward-proxy client's request: got %q, want it echoed", trim(got))
		}
	}
}

// TestBrowserGateKeepsPipesIdleDeadline: once the target has half-closed,
// pipe gives the local side idle to move each byte (copyConn sets the
// read deadline before each Read). The gate's wait for a word alone
// keeps that deadline: a local client that sends "G", then
// "ET / HTTP/1.1\r\n" and nothing more is closed after idle. Before, the
// wait cleared it, and the connection (two goroutines, two sockets, the
// TLS session to the target) was held for ever.
func TestBrowserGateKeepsPipesIdleDeadline(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	raw, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	gate := &browserGate{Conn: raw}
	sink, drain := net.Pipe()
	defer sink.Close()
	go io.Copy(io.Discard, drain)

	var halfClosed atomic.Bool
	halfClosed.Store(true) // the target's side has ended
	done := make(chan error, 1)
	go func() {
		_, err := copyConn(sink, gate, &halfClosed, 300*time.Millisecond)
		done <- err
	}()
	io.WriteString(client, "G")
	time.Sleep(50 * time.Millisecond)
	io.WriteString(client, "ET / HTTP/1.1\r\n")
	select {
	case err := <-done:
		if !isTimeoutErr(err) {
			t.Errorf("copy ended with %v, want the idle timeout", err)
		}
	case <-time.After(3 * time.Second):
		raw.Close() // unblock
		<-done
		t.Errorf("after half-close with a 300ms idle bound, a head left unfinished held the copy for 3s: the gate cleared the deadline")
	}
}

// TestBrowserGatePassesALongWord: a stream that is not HTTP but whose
// first 64 KiB are token characters with no space (a hex or base64url
// blob sent at once, with no delimiter) passes unchanged, as streams that
// are not HTTP do. Before, it was refused with a 403 as "a request head
// longer than 64 KiB".
func TestBrowserGatePassesALongWord(t *testing.T) {
	addr, _ := gatedEcho(t)
	blob := strings.Repeat("0123456789abcdef", 5<<10) + "\n" // 80 KiB of hex, then its end
	if got := throughGate(t, addr, blob); got != blob {
		t.Errorf("a long hex blob: got %q, want it echoed", trim(got))
	}
}
