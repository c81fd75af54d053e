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

// pythonAnyUpgrade is a target on Python's http.server that takes an
// upgrade to any protocol it is asked for, as one serving h2c, TLS inside
// HTTP (RFC 2817: CUPS, some printers and IPP servers) or a protocol of
// its own does: 101 with the Upgrade header it received, then the line
// "switched to PROTOCOL" on the raw connection. A request without an
// Upgrade header is answered 200 "upgrade=".
const pythonAnyUpgrade = `
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def answer(self):
        ups = self.headers.get_all("Upgrade") or []
        if ups:
            self.send_response(101, "Switching Protocols")
            self.send_header("Upgrade", ups[0]); self.send_header("Connection", "Upgrade"); self.end_headers()
            self.wfile.write(("switched to " + ",".join(ups) + "\n").encode()); self.wfile.flush()
            self.close_connection = True
            return
        body = b"upgrade="
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    do_GET = do_OPTIONS = answer
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
`

// TestHTTPUpgradeOnlyWebSocket: an Upgrade header is passed on only when
// it asks for websocket alone; a request asking to upgrade to anything
// else — h2c or HTTP/2.0, TLS/1.0 (RFC 2817), a protocol of the target's
// own, websocket among others — reaches a target that would switch to any
// of them (pythonAnyUpgrade) without its Upgrade header, and is answered
// as an ordinary request. Passed on, the target switched (101) and the
// proxy only copied bytes from then on, the requests on them neither
// cleaned of X-Keytool-* headers the client wrote nor decided again:
// HTTP/2 streams after h2c, HTTP/1.1 inside TLS after TLS/1.0 (only h2c
// and HTTP/* were dropped until a review found TLS/1.0).
func TestHTTPUpgradeOnlyWebSocket(t *testing.T) {
	w := startWatchedWith(t, pythonTarget(t, pythonAnyUpgrade), ServerOptions{HTTP: true})
	alice := newSide(t)
	w.authorize(t, "alice", alice)
	for _, tc := range []struct {
		method, upgrade string
		switched        bool
	}{
		{"GET", "websocket", true},
		{"GET", " WebSocket ", true},
		{"GET", "h2c", false},
		{"GET", "HTTP/2.0", false},
		{"GET", "websocket, H2C", false},
		{"OPTIONS", "TLS/1.0", false},
		{"GET", "TLS/1.0, HTTP/1.1", false},
		{"GET", "TLS/1.2", false},
		{"GET", "IRC/6.9", false},
		{"GET", "websocket, TLS/1.0", false},
		{"GET", "websocket/13", false},
		{"GET", "websoc\u212aet", false},                // the Kelvin sign, which strings.EqualFold takes for "k"
		{"GET", "websocket\r\nUpgrade: TLS/1.0", false}, // two lines: ReverseProxy would send the first alone, but the rule is one
		{"GET", "TLS/1.0\r\nUpgrade: websocket", false},
	} {
		conn := dialTLS(t, alice, w.addr)
		fmt.Fprintf(conn, "%s / HTTP/1.1\r\nHost: app.example\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n", tc.method, tc.upgrade)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("Upgrade: %q: %v", tc.upgrade, err)
		}
		switch {
		case tc.switched:
			line, _ := br.ReadString('\n')
			if resp.StatusCode != http.StatusSwitchingProtocols || !strings.HasPrefix(line, "switched to ") {
				t.Errorf("Upgrade: %q: %s, then %q; want 101 and the target's stream", tc.upgrade, resp.Status, line)
			}
		default:
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(body) != "upgrade=" {
				line, _ := br.ReadString('\n')
				t.Errorf("Upgrade: %q: %s %q%q, want 200 and no Upgrade header at the target", tc.upgrade, resp.Status, body, line)
			}
		}
		conn.Close()
	}
}
