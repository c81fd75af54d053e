package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// pythonWebSocket is a WebSocket echo target on Python's http.server: the
// upgrade handshake of RFC 6455 (101, Sec-WebSocket-Accept), then each
// text frame answered with its text, " from ", and the X-Keytool-Name the
// upgrade request carried.
const pythonWebSocket = `
import base64, hashlib, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() != "websocket":
            self.send_response(400); self.send_header("Content-Length", "0"); self.end_headers(); return
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket"); self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept); self.end_headers(); self.wfile.flush()
        name, r = self.headers.get("X-Keytool-Name", ""), self.rfile
        while True:
            h = r.read(2)
            if len(h) < 2: return
            op, n = h[0] & 0x0f, h[1] & 0x7f
            mask = r.read(4) if h[1] & 0x80 else bytes(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(r.read(n)))
            if op == 8:
                self.wfile.write(b"\x88\x00"); self.wfile.flush(); return
            out = (data.decode() + " from " + name).encode()
            self.wfile.write(bytes([0x81, len(out)]) + out); self.wfile.flush()
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
`

// TestHTTPWebSocket: in HTTP mode a WebSocket upgrade goes through to the
// target (httputil.ReverseProxy's Upgrade support) and the connection
// stays open as a stream, messages going both ways, with the admitted
// key's name in the upgrade request; live revocation still closes it.
// (The proxy used to end its handling of the connection when the HTTP
// server let go of it, closing the upgraded stream at once.)
func TestHTTPWebSocket(t *testing.T) {
	w := startWatchedWith(t, pythonTarget(t, pythonWebSocket), ServerOptions{HTTP: true})
	alice := newSide(t)
	w.authorize(t, "alice", alice)
	conn := dialTLS(t, alice, w.addr)
	const key = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455's example, and its answer:
	const accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
	fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: app.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != accept {
		t.Fatalf("upgrade: %s, accept %q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	for i, msg := range []string{"hello", "again, later"} {
		if i > 0 {
			time.Sleep(300 * time.Millisecond) // the stream outlives the request
		}
		writeFrame(t, conn, msg)
		if got := readFrame(t, br); got != msg+" from alice" {
			t.Fatalf("message %d: %q, want %q", i+1, got, msg+" from alice")
		}
	}
	// Live revocation closes the upgraded stream as any other.
	at := time.Now()
	keydirtest.Put(t, filepath.Join(w.opts.RevokedDirs[0], "alice.json"), keydirtest.JWK(t, alice.id.Key.PublicKey()))
	_ = conn.SetReadDeadline(at.Add(stillOpenAfter)) // a bound on a hang
	if _, err := br.ReadByte(); err == nil || isTimeout(err) {
		t.Fatalf("the revoked key's WebSocket is still open %v after the revocation (%v), want it ended within %v", time.Since(at), err, revokeWithin+time.Second)
	}
	if d := time.Since(at); d > revokeWithin+time.Second {
		t.Errorf("the WebSocket ended %v after the revocation (measured from before the revocation file was written, which takes a sync, to the client's read of the stream's end), want < %v", d, revokeWithin+time.Second)
	}
}

// writeFrame writes a masked WebSocket text frame (a client's).
func writeFrame(t *testing.T, c net.Conn, text string) {
	t.Helper()
	mask := [4]byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(text))}
	frame = append(frame, mask[:]...)
	for i := range len(text) {
		frame = append(frame, text[i]^mask[i%4])
	}
	if _, err := c.Write(frame); err != nil {
		t.Fatal(err)
	}
}

// readFrame reads an unmasked WebSocket text frame (a server's) of fewer
// than 126 bytes.
func readFrame(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	if h[0] != 0x81 || h[1] >= 126 {
		t.Fatalf("frame header % x", h)
	}
	b := make([]byte, h[1])
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// pythonH2CUpgrade is a target on Python's http.server that takes an
// upgrade to h2c, as a target serving HTTP/2 over cleartext does (101,
// then HTTP/2 on the connection), and answers any other request with the
// Upgrade header it received.
const pythonH2CUpgrade = `
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        up = self.headers.get("Upgrade", "")
        if up.lower() in ("h2c", "http/2.0"):
            self.send_response(101, "Switching Protocols")
            self.send_header("Upgrade", up); self.send_header("Connection", "Upgrade"); self.end_headers(); return
        body = ("upgrade=" + up).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
`

// TestHTTPNoUpgradeToHTTP: a request asking to upgrade to h2c or HTTP/2.0
// reaches the target without its Upgrade header and is answered as an
// ordinary request. Passed on, the target switched (101) and the proxy
// only copied bytes from then on: HTTP/2 streams on them carried whatever
// X-Keytool-* headers the client wrote, undecided.
func TestHTTPNoUpgradeToHTTP(t *testing.T) {
	w := startWatchedWith(t, pythonTarget(t, pythonH2CUpgrade), ServerOptions{HTTP: true})
	alice := newSide(t)
	w.authorize(t, "alice", alice)
	for _, up := range []string{"h2c", "HTTP/2.0", "websocket, H2C"} {
		conn := dialTLS(t, alice, w.addr)
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: app.example\r\nUpgrade: %s\r\nConnection: Upgrade, HTTP2-Settings\r\n"+
			"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", up)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("Upgrade: %s: %v", up, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(body) != "upgrade=" {
			t.Errorf("Upgrade: %s: %s %q, want 200 and no Upgrade header at the target", up, resp.Status, body)
		}
		conn.Close()
	}
}
