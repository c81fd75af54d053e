package proxy

import (
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
)

// TestClientFailuresFolded: a client-mode proxy whose target is down
// fails every connection alike, and a local client that retries — or a
// web page that opens connections at will — made one Error line a
// connection (found by review, 2026-12-05). They are folded as server
// mode folds failed handshakes: the first in full (its remote, the
// target, the reason), the next counted into one line; so are the
// refusals of browsers' cross-site requests.
func TestClientFailuresFolded(t *testing.T) {
	laptop := newSide(t)
	logs := &logBuffer{}
	target := testnet.RefusedAddr(t)
	p, err := NewClient(ClientOptions{TLS: laptop.tlsClient(t), Target: target, Logger: logs.logger(), HandshakeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p.l.failures.SetInterval(time.Hour) // counted until the shutdown's flush
	addr, serving := serve(t, t.Context(), p)
	const conns = 5
	for range conns {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		_, _ = conn.Read(make([]byte, 1)) // closed once the dial failed
		conn.Close()
	}
	p.Close()
	_ = serving.wait(t)
	s := logs.String()
	if n := strings.Count(s, `msg="target unreachable"`); n != 2 {
		t.Fatalf("%d lines about the target from %d connections, want 2 (one in full, one count):\n%s", n, conns, s)
	}
	logs.waitFor(t, `level=ERROR msg="target unreachable" remote=127\.0\.0\.1:\d+ target=`+regexp.QuoteMeta(target)+` reason=".*`)
	logs.waitFor(t, `level=ERROR msg="target unreachable" remote=all reason=".*" repeated=4 in=`)
}
