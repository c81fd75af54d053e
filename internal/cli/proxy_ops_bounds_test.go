package cli

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestProxyOpsServerBounded: --metrics-listen's server, which anyone
// who reaches it may use, closes a keep-alive connection left idle and
// serves a bounded number of connections at once, the next ones waiting
// their turn. Before, an idle connection was held for ever, and each
// took a descriptor from the proxy's own: one GET a connection, then
// silence, from anyone, until the proxy could accept no client (found by
// review, 2026-12-05).
func TestProxyOpsServerBounded(t *testing.T) {
	o := newProxyOps("127.0.0.1:0", slog.New(slog.DiscardHandler))
	o.maxConns, o.idle = 2, 500*time.Millisecond
	if err := o.listen(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	o.start()
	t.Cleanup(o.stop)
	addr := o.ln.Addr().String()
	// healthz asks for /healthz on conn and reads the answer, keeping the
	// connection alive; it reports whether one came within wait.
	healthz := func(conn net.Conn, wait time.Duration) bool {
		t.Helper()
		_ = conn.SetDeadline(time.Now().Add(wait))
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: ops\r\n\r\n"); err != nil {
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	dial := func() net.Conn {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	held := []net.Conn{dial(), dial()}
	for _, c := range held {
		if !healthz(c, 10*time.Second) {
			t.Fatal("no answer on a connection within the bound")
		}
	}
	third := dial()
	if healthz(third, 200*time.Millisecond) {
		t.Error("a third connection was served while two were held: no bound")
	}
	// The held connections go idle and are closed: the third is served.
	for _, c := range held {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("an idle keep-alive connection: read %d, %v; want it closed (EOF)", n, err)
		}
	}
	if !healthz(dial(), 10*time.Second) {
		t.Error("no answer once the idle connections were closed")
	}
}
