package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/tlsbridge"
)

// startClientTo starts a client-mode proxy of c in front of target,
// bounding its dial and handshake with timeout and counting in m (which
// may be nil); the errors its connections fail with
// (ClientOptions.Explain) are sent on errs.
func startClientTo(t *testing.T, c *side, target string, timeout time.Duration, m *Metrics) (addr string, logs *logBuffer, errs <-chan error) {
	t.Helper()
	logs = &logBuffer{}
	failed := make(chan error, 8)
	p, err := NewClient(ClientOptions{
		TLS: c.tlsClient(t), Target: target, Logger: logs.logger(), HandshakeTimeout: timeout, Metrics: m,
		Explain: func(err error) error { failed <- err; return err },
	})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ = serve(t, context.Background(), p)
	return addr, logs, failed
}

// clientTargetTimesOut makes one connection through a client-mode proxy
// (200 ms of handshake timeout) in front of target, which never answers:
// the proxy logs msg, and the reason in words; Explain is given a
// *TargetTimeoutError naming the target and the time; and the handshake
// is counted as server mode counts a client's that timed out.
func clientTargetTimesOut(t *testing.T, target, msg, words string) (*TargetTimeoutError, error) {
	t.Helper()
	m := NewMetrics()
	addr, logs, errs := startClientTo(t, newSide(t), target, 200*time.Millisecond, m)
	proxiedOnce(t, addr)
	wantTimeoutCounted(t, m)
	logs.waitFor(t, `level=ERROR msg="`+msg+`" remote=127\.0\.0\.1:\d+ target=`+regexp.QuoteMeta(target)+
		` reason="proxy: target `+regexp.QuoteMeta(target+" "+words)+`"\n`)
	err := <-errs
	var te *TargetTimeoutError
	if !errors.As(err, &te) || te.Target != target || te.Within != 200*time.Millisecond {
		t.Fatalf("the error: %v (%T), want a *TargetTimeoutError for %s, 200ms", err, err, target)
	}
	return te, err
}

// proxiedOnce makes one connection through a client-mode proxy at addr
// and waits for the proxy to close it.
func proxiedOnce(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); n != 0 || isTimeout(err) {
		t.Fatalf("through a proxy whose target never answers: read %d bytes, %v; want the connection closed", n, err)
	}
}

// TestClientTargetNoHandshake: in client mode, a target whose port
// accepts the connection (the system's backlog) but that never answers —
// a listener that never accepts — is logged in words, not as "context
// deadline exceeded", and not as the target refusing us; the error
// given to Explain is a *TargetTimeoutError, with the timeout under it.
func TestClientTargetNoHandshake(t *testing.T) {
	ln := listen(t) // never accepts
	defer ln.Close()
	target := ln.Addr().String()
	te, err := clientTargetTimesOut(t, target, "target made no TLS handshake", "accepted the connection but made no TLS handshake within 200ms")
	if !te.Handshake || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the error: %v (%T), want one in the handshake, over context.DeadlineExceeded", err, err)
	}
}

// TestServerTargetSilent: in server mode (plain TCP and HTTP), a target
// whose dial never completes is logged as not answering within the
// handshake timeout (which bounds the dial), naming it — it said "dial
// tcp …: i/o timeout". In HTTP mode the client gets 504 Gateway
// Timeout. The timeout, 3 s, is the client's handshake's
// too, which a loaded machine under -race may take a second for.
func TestServerTargetSilent(t *testing.T) {
	target := testnet.FullBacklog(t)
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	want := ` target=` + regexp.QuoteMeta(target) + ` error="proxy: target ` + regexp.QuoteMeta(target) + ` did not answer within 3s"\n`

	_, addr, logs, _ := startServer(t, srv, target, ServerOptions{HandshakeTimeout: 3 * time.Second})
	alice.pin(t, addr, srv)
	conn := dialTLS(t, alice, addr)
	if _, err := io.ReadAll(conn); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a connection whose target never answers: %v, want it reset", err)
	}
	logs.waitFor(t, `level=ERROR msg="target unreachable" remote=127\.0\.0\.1:\d+ fingerprint=\S+ name=alice`+want)

	_, addr, logs, _ = startServer(t, srv, target, ServerOptions{HandshakeTimeout: 3 * time.Second, HTTP: true})
	alice.pin(t, addr, srv)
	conn = dialTLS(t, alice, addr)
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// 504, as nginx answers when its proxy_connect_timeout passes: the
	// target did not answer in time (RFC 9110 section 15.6.5). It was
	// 502, which a target that refuses the connection still gets.
	if got, _ := io.ReadAll(conn); !regexp.MustCompile(`^HTTP/1\.1 504 `).Match(got) {
		t.Fatalf("HTTP mode, a target that never answers: %q, want 504", got)
	}
	logs.waitFor(t, `level=ERROR msg="target unreachable" remote=127\.0\.0\.1:\d+ fingerprint=\S+ name=alice method=GET`+want)
}

// TestHTTPTargetRefused: in HTTP mode, a target that refuses the
// connection (nothing listens on its port) is 502 Bad Gateway, with
// nothing of the target in it; only a target that does not answer in
// time is 504 (TestServerTargetSilent).
func TestHTTPTargetRefused(t *testing.T) {
	target := testnet.RefusedAddr(t)
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	_, addr, logs, _ := startServer(t, srv, target, ServerOptions{HTTP: true})
	alice.pin(t, addr, srv)
	conn := dialTLS(t, alice, addr)
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(conn)
	if _, port, _ := net.SplitHostPort(target); !regexp.MustCompile(`^HTTP/1\.1 502 `).Match(got) || strings.Contains(string(got), port) {
		t.Fatalf("HTTP mode, a target that refuses the connection: %q, want 502 and nothing of the target", got)
	}
	logs.waitFor(t, `level=ERROR msg="target unreachable" remote=127\.0\.0\.1:\d+ fingerprint=`+regexp.QuoteMeta(alice.id.Key.Fingerprint())+
		` name=alice method=GET target=`+regexp.QuoteMeta(target)+` error=".*refused`)
}

// TestClientTargetSilent: in client mode, a target whose dial never
// completes is logged as unreachable, in words; Explain is given a
// *TargetTimeoutError of the dial, with the dial's timeout under it.
func TestClientTargetSilent(t *testing.T) {
	te, err := clientTargetTimesOut(t, testnet.FullBacklog(t), "target unreachable", "did not answer within 200ms")
	var op *net.OpError
	if te.Handshake || !errors.As(err, &op) || op.Op != "dial" || !op.Timeout() {
		t.Fatalf("the error: %v (%T), want one of the dial, over the dial's timeout", err, err)
	}
}

// TestClientTargetSilentClientBudget: when the tlsbridge.Client's own
// handshake timeout (ClientOptions.HandshakeTimeout) is the shorter and
// ends the dial, the line and the error are the same, with its time and
// its word on whether the TCP connection was made.
func TestClientTargetSilentClientBudget(t *testing.T) {
	target := testnet.FullBacklog(t)
	laptop := newSide(t)
	tc, err := tlsbridge.NewClient(laptop.id, tlsbridge.ClientOptions{Hosts: laptop.hosts, Policy: tlsbridge.Strict, HandshakeTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	m := NewMetrics()
	p, err := NewClient(ClientOptions{TLS: tc, Target: target, Logger: logs.logger(), HandshakeTimeout: time.Minute, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serve(t, context.Background(), p)
	proxiedOnce(t, addr)
	wantTimeoutCounted(t, m)
	logs.waitFor(t, `level=ERROR msg="target unreachable" remote=127\.0\.0\.1:\d+ target=`+regexp.QuoteMeta(target)+
		` reason="proxy: target `+regexp.QuoteMeta(target)+` did not answer within 200ms"\n`)
}

// wantTimeoutCounted: after one connection through a client-mode proxy
// whose target never answered, /metrics counts one handshake
// failed/timeout — the pair a client that makes no handshake within the
// timeout counts in server mode — and nothing under any other pair. The
// proxy has closed the client's connection by then, after counting.
func wantTimeoutCounted(t *testing.T, m *Metrics) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	counted := regexp.MustCompile(`(?m)^keytool_proxy_handshakes_total\{reason="(\w+)",result="(\w+)"\} [1-9]\d*$`).FindAllString(rec.Body.String(), -1)
	if want := `keytool_proxy_handshakes_total{reason="timeout",result="failed"} 1`; len(counted) != 1 || counted[0] != want {
		t.Errorf("the handshakes counted: %q, want only %q", counted, want)
	}
}

// TestHTTPTargetNoResponse: in HTTP mode, a target that accepts the
// connection, reads the request and never answers holds it no longer than
// ResponseHeaderTimeout: the client gets 504 Gateway Timeout, with nothing
// of the target in it; the log says in words that the target sent no
// response, naming it and the time; and the proxy's connection to the
// target is closed (it held a descriptor and a goroutine for as long as
// the client waited). It counts in
// keytool_proxy_target_errors_total{reason="response_timeout"}.
func TestHTTPTargetNoResponse(t *testing.T) {
	ln := listen(t)
	target := ln.Addr().String()
	closed := make(chan error, 1)
	testnet.ServeEach(t, ln, func(c net.Conn) {
		_, err := io.Copy(io.Discard, c) // the request, and then the proxy's close
		closed <- err
	})
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	m := NewMetrics()
	_, addr, logs, _ := startServer(t, srv, target, ServerOptions{HTTP: true, ResponseHeaderTimeout: 300 * time.Millisecond, Metrics: m})
	alice.pin(t, addr, srv)
	conn := dialTLS(t, alice, addr)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second)) // well past the 300 ms: a bound on the hang this test is about
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if !regexp.MustCompile(`^HTTP/1\.1 504 `).Match(got) {
		t.Fatalf("HTTP mode, a target that never answers the request: %q (%v), want 504", got, err)
	}
	_, port, _ := net.SplitHostPort(target)
	if strings.Contains(string(got), port) || strings.Contains(strings.ToLower(string(got)), "keytool") {
		t.Errorf("the 504 tells the client of the target: %q", got)
	}
	logs.waitFor(t, `level=ERROR msg="target sent no response" remote=127\.0\.0\.1:\d+ fingerprint=`+regexp.QuoteMeta(alice.id.Key.Fingerprint())+
		` name=alice method=GET target=`+regexp.QuoteMeta(target)+
		` error="proxy: target `+regexp.QuoteMeta(target)+` sent no response to the request within 300ms"\n`)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := `keytool_proxy_target_errors_total{reason="response_timeout"} 1` + "\n"; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("/metrics lacks %q:\n%s", want, regexp.MustCompile(`(?m)^keytool_proxy_target.*$`).FindAllString(rec.Body.String(), -1))
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("the target's connection: %v, want it closed by the proxy", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the proxy kept its connection to the silent target open")
	}
}

// TestCheckTargetTimeoutInWords: CheckTarget given a context that times
// out before the target answers — as a library caller writes it,
// context.WithTimeout, no cause — logs what happened in words, as a
// connection's line does (*TargetTimeoutError, with the time it had):
// "context deadline exceeded" and "dial tcp …: i/o timeout" said
// neither. A context with a cause has the caller's words logged, whether
// the dial or the handshake was under way. The tlsbridge.Client's own
// time (30 s here) is the longer.
func TestCheckTargetTimeoutInWords(t *testing.T) {
	silent := listen(t) // accepts into its backlog, never answers
	defer silent.Close()
	full := testnet.FullBacklog(t)
	caller := errors.New("the caller's words for its time")
	for _, c := range []struct {
		target, msg, words string
		cause              error
	}{
		{silent.Addr().String(), "target made no TLS handshake at start", `proxy: target ` + regexp.QuoteMeta(silent.Addr().String()) + ` accepted the connection but made no TLS handshake within (\d+)ms`, nil},
		{full, "target unreachable at start", `proxy: target ` + regexp.QuoteMeta(full) + ` did not answer within (\d+)ms`, nil},
		{silent.Addr().String(), "target made no TLS handshake at start", regexp.QuoteMeta(caller.Error()), caller},
		{full, "target unreachable at start", regexp.QuoteMeta(caller.Error()), caller},
	} {
		logs := &logBuffer{}
		p, err := NewClient(ClientOptions{TLS: newSide(t).tlsClient(t), Target: c.target, Logger: logs.logger()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeoutCause(context.Background(), 300*time.Millisecond, c.cause)
		err = p.CheckTarget(ctx)
		cancel()
		if err != nil {
			t.Fatalf("CheckTarget of a target that never answers: %v, want nil (logged)", err)
		}
		m := logs.waitFor(t, `level=WARN msg="`+regexp.QuoteMeta(c.msg)+`; it will be checked at each connection" target=`+regexp.QuoteMeta(c.target)+
			` error="`+c.words+`"\n`)
		// The time ctx had left when CheckTarget began: 300 ms, less
		// what a loaded machine took to call it.
		if len(m) > 1 {
			if ms, _ := strconv.Atoi(m[1]); ms < 200 || ms > 300 {
				t.Errorf("the time given: %s ms, want what was left of 300 ms", m[1])
			}
		}
	}
}

// TestCheckTargetCancelledInWords: CheckTarget given a context that the
// caller cancels, without a cause, before the target answered — in the
// dial (a full backlog) or in the handshake (a listener that never
// accepts) — logs that the check was stopped, by whom and after how
// long, not "context canceled" under "target unreachable at start", a
// verdict on a target the proxy had not finished asking.
func TestCheckTargetCancelledInWords(t *testing.T) {
	silent := listen(t) // accepts into its backlog, never answers
	defer silent.Close()
	for _, target := range []string{testnet.FullBacklog(t), silent.Addr().String()} {
		logs := &logBuffer{}
		p, err := NewClient(ClientOptions{TLS: newSide(t).tlsClient(t), Target: target, Logger: logs.logger()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		stop := time.AfterFunc(200*time.Millisecond, cancel)
		err = p.CheckTarget(ctx)
		stop.Stop()
		cancel()
		if err != nil {
			t.Fatalf("CheckTarget cancelled: %v, want nil (logged)", err)
		}
		logs.waitFor(t, `level=WARN msg="target not checked at start: the check was stopped; it will be checked at each connection" target=`+regexp.QuoteMeta(target)+
			` error="proxy: the program running the proxy stopped its check of target `+regexp.QuoteMeta(target)+` after \d+ms, before the target answered"\n`)
		if strings.Contains(logs.String(), "canceled") {
			t.Errorf("the log says Go's words:\n%s", logs.String())
		}
	}
}
