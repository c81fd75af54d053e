package proxy

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// FuzzBrowserGate: whatever a local connection's first bytes are, the
// client proxy's gate (browserGate) neither panics nor loses a byte: the
// bytes it passes on are the bytes that came, in order, and a refusal
// passes none. What the web page sends is anyone's.
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
		switch {
		case g.refused != nil && got.Len() != 0:
			t.Fatalf("refused (%v), yet %q passed on", g.refused, got.Bytes())
		case g.refused == nil && !bytes.Equal(got.Bytes(), in):
			t.Fatalf("passed on %q, want %q", got.Bytes(), in)
		}
	})
}
