package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// TestServerAdmitsAuthorizedRefusesUnknown: in front of a plain TCP echo
// server, the proxy lets an authorized client through — half-closes
// included: the client closes its side and still reads the echo — and
// refuses a client whose key it does not know, which never reaches the
// target.
func TestServerAdmitsAuthorizedRefusesUnknown(t *testing.T) {
	srv, alice, mallory := newSide(t), newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	_, addr, logs, _ := startServer(t, srv, echoTarget(t), ServerOptions{})
	alice.pin(t, addr, srv)
	mallory.pin(t, addr, srv)

	got, err := exchange(dialTLS(t, alice, addr), "hello")
	if err != nil || got != "hello" {
		t.Fatalf("authorized client: got %q, %v; want the echo", got, err)
	}
	fp := regexp.QuoteMeta(alice.id.Key.Fingerprint())
	logs.waitFor(t, `msg=accepted remote=127\.0\.0\.1:\d+ fingerprint=`+fp+` name=alice\n`)
	logs.waitFor(t, `msg=closed remote=127\.0\.0\.1:\d+ fingerprint=`+fp+` name=alice bytes_in=5 bytes_out=5 duration=\d`)

	// TLS 1.3: the client's handshake completes before the proxy decides;
	// the refusal arrives as an alert at the first read.
	got, err = exchange(dialTLS(t, mallory, addr), "hello")
	if err == nil || got != "" {
		t.Fatalf("unknown client: got %q, %v; want a refusal", got, err)
	}
	fp = regexp.QuoteMeta(mallory.id.Key.Fingerprint())
	logs.waitFor(t, `msg=refused remote=127\.0\.0\.1:\d+ fingerprint=`+fp+` reason="authkeys: key `+fp+` is not authorized`)
	if n := strings.Count(logs.String(), "msg=accepted"); n != 1 {
		t.Errorf("%d connections accepted, want 1:\n%s", n, logs)
	}
}

// TestServerEnrollment: with Enroll, a client whose key is unknown gets
// the enrollment handler on its connection, and never the target.
func TestServerEnrollment(t *testing.T) {
	srv, newcomer := newSide(t), newSide(t)
	enroll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "enrollment only\n")
	})
	_, addr, logs, _ := startServer(t, srv, echoTarget(t), ServerOptions{
		TLS: srv.tlsServer(t, tlsbridge.ServerOptions{AllowUnknown: true}), Enroll: enroll,
	})
	newcomer.pin(t, addr, srv)
	conn := dialTLS(t, newcomer, addr)
	got, err := exchange(conn, "GET /anything HTTP/1.0\r\n\r\n")
	if !strings.HasPrefix(got, "HTTP/1.0 200") || !strings.HasSuffix(got, "enrollment only\n") {
		t.Fatalf("unknown client with Enroll: got %q, %v; want the handler's answer", got, err)
	}
	logs.waitFor(t, `msg="not authorized: serving enrollment only" remote=127\.0\.0\.1:\d+ fingerprint=`+regexp.QuoteMeta(newcomer.id.Key.Fingerprint()))
	if strings.Contains(logs.String(), "msg=accepted") {
		t.Errorf("an unknown client reached the target:\n%s", logs)
	}
}

// TestServerEnrollmentNoHTTP: with Enroll, an unknown client that does
// not speak HTTP (a client of the target) gets tlsbridge's 403 for its
// key, never the target, and the proxy logs why it was turned away.
func TestServerEnrollmentNoHTTP(t *testing.T) {
	srv, newcomer := newSide(t), newSide(t)
	_, addr, logs, _ := startServer(t, srv, echoTarget(t), ServerOptions{
		TLS: srv.tlsServer(t, tlsbridge.ServerOptions{AllowUnknown: true}), Enroll: http.NotFoundHandler(),
	})
	newcomer.pin(t, addr, srv)
	got, err := exchange(dialTLS(t, newcomer, addr), "SSH-2.0-OpenSSH_9.6\r\n")
	fp := newcomer.id.Key.Fingerprint()
	if err != nil || !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") || !strings.Contains(got, `"reason":"not_authorized"`) || !strings.Contains(got, fp) {
		t.Fatalf("got %q, %v; want tlsbridge's 403 for the client's key", got, err)
	}
	logs.waitFor(t, `msg="not authorized: no HTTP request, answered 403" remote=127\.0\.0\.1:\d+ fingerprint=`+regexp.QuoteMeta(fp)+
		` reason="enroll: the client made no HTTP request: it sent bytes that cannot begin an HTTP request; answered 403 not_authorized"`)
	if strings.Contains(logs.String(), "msg=accepted") {
		t.Errorf("an unknown client reached the target:\n%s", logs)
	}
}

// TestServerEnrollmentHTTPMode: in HTTP mode with Enroll, an unknown
// client gets the enrollment handler, over HTTP/1.1 as over HTTP/2 (ALPN
// h2), with its certificate in r.TLS (the key it enrolls) — enroll.ServeConn
// reads an HTTP/1 request line ahead and leaves an h2 connection as it
// is — and never the target.
func TestServerEnrollmentHTTPMode(t *testing.T) {
	srv := newSide(t)
	enroll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "enrollment only")
	})
	_, addr, logs, _ := startServer(t, srv, echoTarget(t), ServerOptions{
		TLS: srv.tlsServer(t, tlsbridge.ServerOptions{AllowUnknown: true}), Enroll: enroll, HTTP: true,
	})
	for _, h2 := range []bool{false, true} {
		newcomer := newSide(t)
		newcomer.pin(t, addr, srv)
		tr := &http.Transport{
			DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				cfg, err := newcomer.tlsClient(t).TLSConfig(addr)
				if err != nil {
					return nil, err
				}
				if h2 {
					cfg.NextProtos = []string{"h2"}
				}
				return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
			},
			ForceAttemptHTTP2: h2,
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/anything")
		if err != nil {
			t.Fatalf("h2=%v: %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != http.StatusOK || string(body) != "enrollment only" || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
			t.Errorf("h2=%v: %s %d %q; want the handler's answer", h2, resp.Proto, resp.StatusCode, body)
		}
	}
	if strings.Contains(logs.String(), "msg=accepted") {
		t.Errorf("an unknown client reached the target:\n%s", logs)
	}
}

// TestServerHandshakeTimeout: a client that opens a socket and never
// starts its handshake is dropped after HandshakeTimeout.
func TestServerHandshakeTimeout(t *testing.T) {
	srv := newSide(t)
	_, addr, logs, _ := startServer(t, srv, echoTarget(t), ServerOptions{HandshakeTimeout: 50 * time.Millisecond})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
	start := time.Now()
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("the proxy did not close the silent connection: %v", err)
	}
	// The option, not the default (DefaultHandshakeTimeout, 10 s), closed
	// it: well under the default, with room for a loaded machine.
	if took := time.Since(start); took >= DefaultHandshakeTimeout/2 {
		t.Errorf("the silent connection was closed after %v: the 50ms HandshakeTimeout was not applied", took)
	}
	logs.waitFor(t, `msg="handshake failed" remote=127\.0\.0\.1:\d+ fingerprint="" reason="no handshake within 50ms"`)
}

// TestClientPinsTarget: client mode in front of a server-mode proxy. A
// pinned target connects; a target presenting another key is refused by
// CheckTarget (with the knownhosts error inside) and at each connection,
// and the program behind the proxy gets nothing.
func TestClientPinsTarget(t *testing.T) {
	srv, laptop, impostor := newSide(t), newSide(t), newSide(t)
	srv.authorize(t, "laptop", laptop)
	_, target, srvLogs, _ := startServer(t, srv, echoTarget(t), ServerOptions{})
	laptop.pin(t, target, srv)

	start := func(c *side) (*Client, string, *logBuffer) {
		logs := &logBuffer{}
		p, err := NewClient(ClientOptions{
			TLS: c.tlsClient(t), Target: target, Logger: logs.logger(),
			Trust: func(*tls.Conn) string { return "pinned" },
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a bound on a hang: a handshake under -race on a loaded machine
		defer cancel()
		if err := p.CheckTarget(ctx); err != nil {
			return p, "", logs
		}
		addr, _ := serve(t, context.Background(), p)
		return p, addr, logs
	}

	_, addr, logs := start(laptop)
	if addr == "" {
		t.Fatalf("CheckTarget of a pinned target failed:\n%s", logs)
	}
	fp := regexp.QuoteMeta(srv.id.Key.Fingerprint())
	logs.waitFor(t, `msg="target verified" target=`+regexp.QuoteMeta(target)+` fingerprint=`+fp+` trust=pinned`)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
	if got, err := exchange(conn.(*net.TCPConn), "ping"); err != nil || got != "ping" {
		t.Fatalf("through both proxies: got %q, %v", got, err)
	}
	logs.waitFor(t, `msg=closed remote=127\.0\.0\.1:\d+ target=`+regexp.QuoteMeta(target)+` fingerprint=`+fp+` trust=pinned bytes_in=4 bytes_out=4`)
	srvLogs.waitFor(t, `msg=closed .* name=laptop bytes_in=4 bytes_out=4`)

	// The target's address pinned to another key: a changed key, final.
	impostor.pin(t, target, newSide(t))
	p, _, logs := start(impostor)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a bound on a hang
	defer cancel()
	err = p.CheckTarget(ctx)
	var te *TargetError
	var changed *knownhosts.KeyChangedError
	if !errors.As(err, &te) || te.Target != target || !errors.As(err, &changed) || !strings.HasPrefix(err.Error(), "proxy: target "+target+": ") {
		t.Fatalf("CheckTarget of a target with another key: %v (%T); want a *TargetError holding a *knownhosts.KeyChangedError", err, err)
	}
	// Serving anyway: each connection is refused, and logged.
	addr, _ = serve(t, context.Background(), p)
	conn2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	_ = conn2.SetDeadline(time.Now().Add(3 * time.Second))
	if got, err := exchange(conn2.(*net.TCPConn), "ping"); got != "" {
		t.Fatalf("through a proxy whose target has another key: got %q, %v", got, err)
	}
	logs.waitFor(t, `level=ERROR msg="target refused" remote=127\.0\.0\.1:\d+ target=`+regexp.QuoteMeta(target)+` reason="knownhosts: `)
}

// TestShutdownDrains: Shutdown stops accepting at once, lets the open
// connection finish, and returns when it has; the goroutine counts logged
// when the proxy started listening and when it stopped accepting match.
func TestShutdownDrains(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	p, addr, logs, served := startServer(t, srv, echoTarget(t), ServerOptions{})
	alice.pin(t, addr, srv)
	conn := dialTLS(t, alice, addr)
	if _, err := io.WriteString(conn, "half "); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, `msg=accepted .*name=alice`)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- p.Shutdown(ctx, "signal", "terminated") }()
	logs.waitFor(t, `msg="stopped accepting; draining open connections" signal=terminated open=1 timeout=\d+(\.\d+)?m?s goroutines=\d+`)
	if err := served.wait(t); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve returned %v after Shutdown, want ErrServerClosed", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the proxy still accepts connections after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the open connection finished", err)
	case <-time.After(50 * time.Millisecond):
	}

	// The open connection completes.
	if got, err := exchange(conn, "request"); err != nil || got != "half request" {
		t.Fatalf("the draining connection: got %q, %v", got, err)
	}
	conn.Close()
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(30 * time.Second): // a bound on a hang
		t.Fatal("Shutdown did not return after the last connection ended")
	}
	logs.waitFor(t, `msg=closed .*name=alice bytes_in=12 bytes_out=12`)

	// Serve on a proxy shut down.
	if err := p.Serve(context.Background(), listen(t)); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
}

// TestShutdownCutsAtDeadline: a connection still open when Shutdown's
// context ends is cut, and Shutdown says so.
func TestShutdownCutsAtDeadline(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	p, addr, logs, _ := startServer(t, srv, echoTarget(t), ServerOptions{})
	alice.pin(t, addr, srv)
	conn := dialTLS(t, alice, addr)
	if _, err := io.WriteString(conn, "x"); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, `msg=accepted .*name=alice`)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a connection open past the deadline: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %v with a 100ms deadline", d)
	}
	logs.waitFor(t, `level=WARN msg="drain timeout: cutting the connections still open" timeout=\d+ms`) // the time left when Shutdown began: 100ms, less what scheduling took
	logs.waitFor(t, `msg=closed .*name=alice`)
	// The client sees its connection end (the echo of "x" may come first).
	if b, err := io.ReadAll(conn); isTimeout(err) {
		t.Errorf("the cut connection is still open: read %q, %v", b, err)
	}
}

// TestServeEndsWithContext: the end of Serve's context cuts everything
// and Serve returns when the handlers have ended.
func TestServeEndsWithContext(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	logs := &logBuffer{}
	p, err := NewServer(ServerOptions{TLS: srv.tlsServer(t, tlsbridge.ServerOptions{}), Target: echoTarget(t), Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, served := serve(t, ctx, p)
	alice.pin(t, addr, srv)
	conn := dialTLS(t, alice, addr)
	if _, err := io.WriteString(conn, "x"); err != nil {
		t.Fatal(err)
	}
	logs.waitFor(t, `msg=accepted`)
	cancel()
	if err := served.wait(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Serve: %v, want context.Canceled", err)
	}
	if !strings.Contains(logs.String(), "msg=closed") {
		t.Errorf("Serve returned before the connection's handler ended:\n%s", logs)
	}
}

// TestGoroutinesBackToLevel: after connections come and go, the proxy's
// count when it stops accepting matches its count when it started.
func TestGoroutinesBackToLevel(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	p, addr, logs, _ := startServer(t, srv, echoTarget(t), ServerOptions{})
	alice.pin(t, addr, srv)
	for i := 0; i < 5; i++ {
		if got, err := exchange(dialTLS(t, alice, addr), "x"); err != nil || got != "x" {
			t.Fatalf("connection %d: %q, %v", i, got, err)
		}
	}
	// A handler logs "closed" just before it returns: wait for the
	// handlers themselves, not their last line, so that the count below
	// is taken with none running.
	for deadline := time.Now().Add(30 * time.Second); strings.Count(logs.String(), "msg=closed") < 5 || p.l.open() > 0; time.Sleep(5 * time.Millisecond) { // a bound on a hang
		if time.Now().After(deadline) {
			t.Fatalf("not every connection was closed (%d handlers running):\n%s", p.l.open(), logs)
		}
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	g0, g1 := goroutines(t, logs, "listening"), goroutines(t, logs, `"stopped accepting`)
	logs.waitFor(t, `msg="stopped accepting; draining open connections" open=0 goroutines=`)
	// The Serve goroutine of this test is gone by then, and the last
	// handlers may still be returning: a little slack each way.
	if g1 > g0+2 {
		t.Errorf("goroutines leaked: %d when listening, %d after five connections", g0, g1)
	}
}

// TestOptions: what NewServer and NewClient refuse, in one line each.
func TestOptions(t *testing.T) {
	s := newSide(t)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errOf(NewServer(ServerOptions{Target: "127.0.0.1:1"})), "proxy: TLS: a *tlsbridge.Server is required"},
		{errOf(NewServer(ServerOptions{TLS: s.tlsServer(t, tlsbridge.ServerOptions{})})), "proxy: Target: required (host:port)"},
		{errOf(NewServer(ServerOptions{TLS: s.tlsServer(t, tlsbridge.ServerOptions{}), Target: "nowhere"})), `proxy: Target: "nowhere" is not host:port`},
		{errOf(NewClient(ClientOptions{Target: "127.0.0.1:1"})), "proxy: TLS: a *tlsbridge.Client is required"},
		{errOf(NewClient(ClientOptions{TLS: s.tlsClient(t), Target: "127.0.0.1:1", HandshakeTimeout: -1})), "proxy: HandshakeTimeout: negative"},
		{errOf(NewServer(ServerOptions{TLS: s.tlsServer(t, tlsbridge.ServerOptions{}), Target: "127.0.0.1:1", IdleTimeout: -1})), "proxy: IdleTimeout: negative"},
		{errOf(NewClient(ClientOptions{TLS: s.tlsClient(t), Target: "127.0.0.1:1", IdleTimeout: -1})), "proxy: IdleTimeout: negative"},
		{errOf(NewServer(ServerOptions{TLS: s.tlsServer(t, tlsbridge.ServerOptions{}), Target: "127.0.0.1:1", MaxStartupsPerSource: -1})), "proxy: MaxStartupsPerSource: negative"},
		{errOf(NewServer(ServerOptions{TLS: s.tlsServer(t, tlsbridge.ServerOptions{}), Target: "127.0.0.1:1", HTTP: true, ResponseHeaderTimeout: -1})), "proxy: ResponseHeaderTimeout: negative"},
		{errOf(NewServer(ServerOptions{TLS: s.tlsServer(t, tlsbridge.ServerOptions{}), Target: "127.0.0.1:1", ResponseHeaderTimeout: time.Second})), "proxy: ResponseHeaderTimeout: HTTP mode's"},
		{errOf(NewServer(ServerOptions{TLS: s.tlsServer(t, tlsbridge.ServerOptions{}), Target: "127.0.0.1:1", HTTP: true, RequestBodyTimeout: -1})), "proxy: RequestBodyTimeout: negative"},
		{errOf(NewServer(ServerOptions{TLS: s.tlsServer(t, tlsbridge.ServerOptions{}), Target: "127.0.0.1:1", RequestBodyTimeout: time.Second})), "proxy: RequestBodyTimeout: HTTP mode's"},
	} {
		var oe *OptionError
		if !errors.As(tc.err, &oe) || !strings.HasPrefix(tc.err.Error(), tc.want) || strings.Contains(tc.err.Error(), "\n") {
			t.Errorf("got %v, want an *OptionError starting %q", tc.err, tc.want)
		}
	}
	for _, err := range []error{ErrServerClosed, ErrServing, &TargetError{Target: "h:1", Err: errors.New("x")}} {
		if !strings.HasPrefix(err.Error(), "proxy: ") {
			t.Errorf("%q does not start with proxy:", err)
		}
	}
}

func errOf[T any](_ T, err error) error { return err }

// TestCheckTargetUnreachable: a target where no TCP connection is made
// within the client's handshake timeout (a listen queue that is full,
// whose SYNs Linux drops, standing for a host down) is logged at start as
// unreachable, to be tried again at each connection — not as a target that
// made no handshake, nor a failure that stops the proxy. tlsbridge's
// timeout says which step it ended (HandshakeTimeoutError.Connected).
func TestCheckTargetUnreachable(t *testing.T) {
	laptop := newSide(t)
	tc, err := tlsbridge.NewClient(laptop.id, tlsbridge.ClientOptions{Hosts: laptop.hosts, Policy: tlsbridge.Strict, HandshakeTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	target := testnet.FullBacklog(t)
	logs := &logBuffer{}
	p, err := NewClient(ClientOptions{TLS: tc, Target: target, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.CheckTarget(ctx); err != nil {
		t.Fatalf("CheckTarget of an unreachable target: %v, want nil (logged)", err)
	}
	logs.waitFor(t, `level=WARN msg="target unreachable at start; it will be checked at each connection" target=`+regexp.QuoteMeta(target)+` error="tlsbridge: could not connect to `+regexp.QuoteMeta(target)+` within 300ms"`)
}
