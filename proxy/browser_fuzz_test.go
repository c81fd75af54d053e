package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzBrowserGate: whatever a local connection sends, the client proxy's
// gate (browserGate) neither panics nor changes a byte: what it passes on
// is what came, in order, all of it unless it refused; a refusal of the
// first request passes nothing. And no request that a Go server would
// read from what it passed on is a cross-site one: each is read here
// with net/http's own reader, body and all, and its Host and Origin are
// checked as the gate checks them — so a framing the gate read otherwise
// than a server (a request it took for a body, or a body it took for a
// request) shows up as an unchecked request. What the web page sends is
// anyone's.
func FuzzBrowserGate(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://evil.example\r\n\r\nbody",
		"GET http://a.example/ HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"GET / HTTP/1.0\n\n",
		"GET /ws HTTP/1.1\r\nHost: [::1]:80\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Dest: document\r\n\r\n",
		"PING\r\n",
		"\x16\x03\x01\x00\x05hello",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET",
		"GET / HTTP/1.1\r\nHost: localhost\r\n\r\nGET /2 HTTP/1.1\r\nHost: localhost\r\nOrigin: https://evil.example\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 41\r\n\r\nGET / HTTP/1.1\r\nHost: evil.example\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\nHost: evil.example\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello",
		"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		local, remote := net.Pipe()
		defer local.Close()
		go func() {
			_, _ = remote.Write(in)
			_ = remote.Close()
		}()
		go func() { _, _ = io.Copy(io.Discard, remote) }() // the 403s
		g := &browserGate{Conn: local, accept: []string{"mine.example"}}
		_ = local.SetDeadline(time.Now().Add(5 * time.Second))
		var got bytes.Buffer
		buf := make([]byte, 512)
		for {
			n, err := g.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		passed := got.Bytes()
		switch {
		case !bytes.HasPrefix(in, passed):
			t.Fatalf("passed on %q, not what came (%q)", passed, in)
		case g.refused == nil && len(passed) != len(in):
			t.Fatalf("not refused, yet passed on %q of %q", passed, in)
		case g.refused != nil && g.requests == 0 && len(passed) != 0:
			t.Fatalf("refused the first request (%v), yet %q passed on", g.refused, passed)
		}
		if g.requests == 0 {
			return // not HTTP/1.x at its start (another protocol's, or a version no browser sends): passed as it is
		}
		// What a Go server reads of it.
		r := bufio.NewReader(bytes.NewReader(passed))
		for {
			req, err := http.ReadRequest(r)
			if err != nil {
				return
			}
			if req.Method == "CONNECT" || req.URL.IsAbs() {
				return // a forward proxy's request: not checked, and another protocol may follow
			}
			check := &browserGate{accept: g.accept}
			if name := hostOf(req.Host); name != "" && net.ParseIP(name) == nil && !check.local(name) {
				t.Fatalf("passed on a request for host %q: %q", req.Host, passed)
			}
			for _, o := range req.Header.Values("Origin") {
				if !check.sameOrLocal(o, []string{req.Host}) {
					t.Fatalf("passed on a request from %q: %q", o, passed)
				}
			}
			if req.Method == "CONNECT" || req.Header.Get("Upgrade") != "" {
				return // another protocol's bytes follow
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			// The gate reads the Sec-Fetch values without their case, the
			// site's and the mode's alike (a browser sends them lower case).
			if strings.EqualFold(req.Header.Get("Sec-Fetch-Site"), "cross-site") && !strings.EqualFold(req.Header.Get("Sec-Fetch-Mode"), "navigate") && len(req.Header.Values("Origin")) == 0 {
				t.Fatalf("passed on a request the browser marked cross-site: %q", passed)
			}
		}
	})
}
