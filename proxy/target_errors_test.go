package proxy

import (
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
)

// failuresCounted are the series of m's target errors, refused requests
// and handshakes that are not admissions, counted above zero, as
// /metrics shows them.
func failuresCounted(t *testing.T, m *Metrics) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var got []string
	for _, line := range regexp.MustCompile(`(?m)^keytool_proxy_(target_errors|requests_refused|handshakes)_total\{.*\} [1-9]\d*$`).FindAllString(rec.Body.String(), -1) {
		if !strings.Contains(line, `result="admitted"`) {
			got = append(got, line)
		}
	}
	return got
}

// awaitCounted waits until m counts exactly want among the failures
// (failuresCounted): a connection's count comes as it ends, which its
// client may see first. 30 s is a bound on a hang.
func awaitCounted(t *testing.T, m *Metrics, want ...string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got = failuresCounted(t, m); slices.Equal(got, want) {
			return
		}
	}
	t.Errorf("counted %q, want %q", got, want)
}

// TestTargetErrorsCounted: each way a target fails after the client's
// handshake — or, in client mode, before a handshake could begin —
// counts once, under a reason of its own, in a series that exists from
// the start: a dial refused (server, HTTP and client mode:
// unreachable), a dial that times out (server and HTTP mode:
// connect_timeout; client mode counts it as a handshake,
// TestClientTargetSilent), a target that closes the connection without
// answering a request (HTTP mode: bad_response) or before its TLS
// handshake (client mode: a handshake failed, tls_error, as server mode
// counts such a client). Each was counted nowhere: an alert could not
// see the target down but in the log.
func TestTargetErrorsCounted(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	closing := listen(t) // reads a request's head, then closes without a word
	testnet.ServeEach(t, closing, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 4096))
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset
		}
	})
	get := func(t *testing.T, addr string) string {
		conn := dialTLS(t, alice, addr)
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(conn)
		return string(got)
	}
	for _, c := range []struct {
		name, target string
		http         bool
		status       string
		counted      string
	}{
		{"server/refused", testnet.RefusedAddr(t), false, "", `keytool_proxy_target_errors_total{reason="unreachable"} 1`},
		{"server/silent", testnet.FullBacklog(t), false, "", `keytool_proxy_target_errors_total{reason="connect_timeout"} 1`},
		{"http/refused", testnet.RefusedAddr(t), true, "502", `keytool_proxy_target_errors_total{reason="unreachable"} 1`},
		{"http/silent", testnet.FullBacklog(t), true, "504", `keytool_proxy_target_errors_total{reason="connect_timeout"} 1`},
		{"http/closed", closing.Addr().String(), true, "502", `keytool_proxy_target_errors_total{reason="bad_response"} 1`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewMetrics()
			_, addr, logs, _ := startServer(t, srv, c.target, ServerOptions{HTTP: c.http, HandshakeTimeout: 3 * time.Second, Metrics: m})
			alice.pin(t, addr, srv)
			if c.http {
				if got := get(t, addr); !strings.HasPrefix(got, "HTTP/1.1 "+c.status+" ") {
					t.Errorf("%q, want %s", got, c.status)
				}
			} else if _, err := io.ReadAll(dialTLS(t, alice, addr)); !errors.Is(err, syscall.ECONNRESET) {
				// A close would read as a service that had nothing to
				// say: keytool connect took it for success.
				t.Errorf("a connection whose target fails: %v, want it reset", err)
			}
			logs.waitFor(t, `level=ERROR msg="target unreachable"`)
			awaitCounted(t, m, c.counted)
		})
	}
	for _, c := range []struct {
		name, target, counted string
	}{
		{"client/refused", testnet.RefusedAddr(t), `keytool_proxy_target_errors_total{reason="unreachable"} 1`},
		{"client/closed", closing.Addr().String(), `keytool_proxy_handshakes_total{reason="tls_error",result="failed"} 1`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewMetrics()
			addr, _, errs := startClientTo(t, newSide(t), c.target, 3*time.Second, m)
			proxiedOnce(t, addr)
			<-errs
			awaitCounted(t, m, c.counted)
		})
	}
}

// TestRequestsRefusedCounted: in HTTP mode a CONNECT, refused with 405
// after the client's handshake, counts in
// keytool_proxy_requests_refused_total{reason="connect"}, as many as
// were sent, and in nothing else; it was counted nowhere. (A request of
// a key no longer admitted, 403, counts by the trust decision's reason:
// TestHTTPRequestDecidedAgain.)
func TestRequestsRefusedCounted(t *testing.T) {
	target, _ := tunnelTarget(t)
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	m := NewMetrics()
	_, addr, _, _ := startServer(t, srv, target, ServerOptions{HTTP: true, Metrics: m})
	alice.pin(t, addr, srv)
	conn := dialTLS(t, alice, addr)
	if _, err := io.WriteString(conn, strings.Repeat("CONNECT 10.0.0.1:22 HTTP/1.1\r\nHost: 10.0.0.1:22\r\n\r\n", 2)+
		"CONNECT 10.0.0.1:22 HTTP/1.1\r\nHost: 10.0.0.1:22\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(conn); strings.Count(string(got), "HTTP/1.1 405 ") != 3 {
		t.Fatalf("three CONNECTs: %q, want three 405", got)
	}
	awaitCounted(t, m, `keytool_proxy_requests_refused_total{reason="connect"} 3`)
}

// TestHTTPErrorLinesCarryIdentity: in HTTP mode, a target that resets
// the connection in the middle of its response body makes
// httputil.ReverseProxy write an error line of its own: it carries the
// connection's identity, as every line about a request does, and goes to
// the proxy's logger — it went to the standard library's log, on
// standard error, with nothing of who asked.
func TestHTTPErrorLinesCarryIdentity(t *testing.T) {
	cut := listen(t)
	testnet.ServeEach(t, cut, func(c net.Conn) {
		_, _ = c.Read(make([]byte, 4096))
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nthe first bytes")
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset
		}
	})
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	_, addr, logs, _ := startServer(t, srv, cut.Addr().String(), ServerOptions{HTTP: true})
	alice.pin(t, addr, srv)
	conn := dialTLS(t, alice, addr)
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(conn)
	logs.waitFor(t, `level=WARN msg="httputil: ReverseProxy read error during body copy: .*" remote=127\.0\.0\.1:\d+ fingerprint=`+
		regexp.QuoteMeta(alice.id.Key.Fingerprint())+` name=alice\n`)
}

// TestTargetCutMidResponseCounted: in HTTP mode a target that breaks off
// a response body it has begun — a reset, or its connection closed
// before the body's end — cuts the client's response short, its headers
// (200) sent already when the body streams (chunked: the ReverseProxy
// flushes each write). It was logged (the ReverseProxy's own line,
// TestHTTPErrorLinesCarryIdentity) and counted nowhere. It counts once,
// as keytool_proxy_target_errors_total{reason="truncated_response"};
// so does a body of a Content-Length cut short, whose headers the
// client may never get (the server drops what it buffered).
func TestTargetCutMidResponseCounted(t *testing.T) {
	const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nf\r\nthe first bytes\r\n"
	for _, c := range []struct {
		name, response string
		reset          bool
	}{
		{"chunked/reset", chunked, true},
		{"chunked/closed", chunked, false},
		{"length/reset", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nthe first bytes", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cut := listen(t)
			testnet.ServeEach(t, cut, func(conn net.Conn) {
				_, _ = conn.Read(make([]byte, 4096))
				_, _ = io.WriteString(conn, c.response)
				if tc, ok := conn.(*net.TCPConn); ok && c.reset {
					_ = tc.SetLinger(0) // a reset
				}
			})
			srv, alice := newSide(t), newSide(t)
			srv.authorize(t, "alice", alice)
			m := NewMetrics()
			_, addr, logs, _ := startServer(t, srv, cut.Addr().String(), ServerOptions{HTTP: true, Metrics: m})
			alice.pin(t, addr, srv)
			conn := dialTLS(t, alice, addr)
			if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(conn)
			if c.response == chunked && (!strings.HasPrefix(string(got), "HTTP/1.1 200 ") || !strings.Contains(string(got), "the first bytes") ||
				strings.HasSuffix(string(got), "0\r\n\r\n")) {
				t.Errorf("%q, want the 200 and the first bytes, cut short", got)
			}
			logs.waitFor(t, `level=WARN msg="httputil: ReverseProxy read error during body copy: `)
			awaitCounted(t, m, `keytool_proxy_target_errors_total{reason="truncated_response"} 1`)
		})
	}
}
