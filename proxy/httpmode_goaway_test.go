package proxy

import (
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"
)

// TestHTTP2GoAwayLinesFolded: net/http's server writes a line of its own
// (its ErrorLog) for each HTTP/2 GOAWAY a client sends with an error code,
// without the client's address. An admitted client could make one Warn
// line a connection, as many as it had handshakes (found by review of
// session 37). They are folded as failures of all sources are: the first
// in full, the next counted into one line (remote=all repeated=N).
func TestHTTP2GoAwayLinesFolded(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	_, addr, logs, _ := startServer(t, srv, "127.0.0.1:9", ServerOptions{HTTP: true})
	alice.pin(t, addr, srv)
	const conns = 3
	for i := range conns {
		conn, _, rest := h2Open(t, alice, addr)
		payload := make([]byte, 8)
		binary.BigEndian.PutUint32(payload[4:], 2) // INTERNAL_ERROR
		if _, err := conn.Write(h2Frame(7, 0, 0, payload)); err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, rest) // the server ends the connection
		conn.Close()
		if i == 0 {
			logs.waitFor(t, `received GOAWAY`)
		}
	}
	logs.waitFor(t, `msg=closed .* name=alice`)
	// The lines of all three connections are in: one in full, the rest
	// counted (the interval, 10 s, has not ended: flush the count).
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(logs.String(), "msg=closed") < conns && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := strings.Count(logs.String(), "received GOAWAY"); n != 1 {
		t.Fatalf("%d lines about a GOAWAY from %d connections, want 1 (the rest counted):\n%s", n, conns, logs.String())
	}
}
