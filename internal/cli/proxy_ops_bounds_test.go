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

// startOps serves --metrics-listen's endpoints on a loopback port under
// bounds, and returns its address.
func startOps(t *testing.T, bounds opsBounds) string {
	t.Helper()
	o := newProxyOps("127.0.0.1:0", slog.New(slog.DiscardHandler))
	o.bounds = bounds
	if err := o.listen(); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", "")
	o.start()
	t.Cleanup(o.stop)
	return o.ln.Addr().String()
}

// healthz asks for /healthz on conn and reports whether 200 came back
// within wait, and whether the server then closed the connection.
func healthz(conn net.Conn, wait time.Duration) (ok, closed bool) {
	_ = conn.SetDeadline(time.Now().Add(wait))
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: ops\r\n\r\n"); err != nil {
		return false, false
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return false, false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_, err = br.ReadByte()
	return resp.StatusCode == http.StatusOK, err == io.EOF
}

func dialOps(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestProxyOpsServerBounded: --metrics-listen's server, which anyone who
// reaches it may use, no key asked, serves one request a connection and
// closes it; a source with perSource connections open has the next
// closed at once; all sources together have total, the next waiting its
// turn; a connection that sends no request is closed after the header
// timeout. Before, an idle keep-alive connection was held for ever, each
// a descriptor of the proxy's own; and with a bound on connections alone
// (this session's first fix), one client keeping that many alive held a
// health probe out for ever — an orchestrator restarts a proxy whose
// probe is not answered (both found by review, 2026-12-05).
func TestProxyOpsServerBounded(t *testing.T) {
	t.Run("one request a connection", func(t *testing.T) {
		addr := startOps(t, opsBounds{total: 8, perSource: 8, header: 5 * time.Second})
		if ok, closed := healthz(dialOps(t, addr), 10*time.Second); !ok || !closed {
			t.Errorf("/healthz answered %v, connection closed after it %v: want both", ok, closed)
		}
	})
	t.Run("per source", func(t *testing.T) {
		addr := startOps(t, opsBounds{total: 8, perSource: 2, header: 10 * time.Second})
		dialOps(t, addr)
		dialOps(t, addr) // two silent connections: the source's bound
		time.Sleep(100 * time.Millisecond)
		third := dialOps(t, addr)
		_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := third.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("a third connection of one source: read %d, %v; want it closed at once (EOF)", n, err)
		}
	})
	t.Run("in total", func(t *testing.T) {
		addr := startOps(t, opsBounds{total: 2, perSource: 8, header: 500 * time.Millisecond})
		silent := []net.Conn{dialOps(t, addr), dialOps(t, addr)}
		if ok, _ := healthz(dialOps(t, addr), 200*time.Millisecond); ok {
			t.Error("a third connection was served while two were open: no bound in total")
		}
		for _, c := range silent {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err != io.EOF && n == 0 {
				// net/http answers a request head that never came with
				// 408 or closes: either way the connection ends.
				t.Errorf("a connection that sent no request: %v; want it closed after the header timeout", err)
			}
		}
		if ok, _ := healthz(dialOps(t, addr), 10*time.Second); !ok {
			t.Error("no answer once the silent connections were closed")
		}
	})
}
