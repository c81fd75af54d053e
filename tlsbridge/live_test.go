package tlsbridge

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
)

// liveWithin is how soon an open connection must end after its key stops
// being admitted: the promise is one second; the rest is room for a busy
// machine.
const liveWithin = 1500 * time.Millisecond

// hangBound bounds the waits whose length is not what a test is about: a
// store taking a key in, a log line written, a tick or an echo on an open
// stream. It only ends a test that would otherwise hang; a loaded machine
// (-race, other packages' tests, two cores) may take seconds, as the
// proxy tests' 30 s bounds allow.
const hangBound = 30 * time.Second

// liveServer is an HTTP server (HTTP/1.1 and HTTP/2) on 127.0.0.1 whose
// authorized keys are files in a home, watched, under live revocation.
type liveServer struct {
	srv   *home
	opts  authkeys.Options
	store *authkeys.Store
	addr  string
	logs  *syncBuffer
	// admitted counts the handshakes whose client the server admitted
	// (a VerifyConnection after keytool's), in a server started by
	// startLiveCounting; nil otherwise.
	admitted *atomic.Int64
	server   *Server
	live     *LiveConns
}

// startLive serves, to each authenticated client, "hello NAME PROTO" and
// then a "tick" every 50 ms until the request ends: a stream that never
// ends on its own (/once: the greeting only).
func startLive(t *testing.T) *liveServer {
	t.Helper()
	return startLiveWith(t, false)
}

// startLiveCounting is startLive with a caller's VerifyConnection in the
// server's tls.Config, which counts the handshakes admitted (admitted).
// The other live tests run without one: keytool's own VerifyConnection
// alone, as most servers have it.
func startLiveCounting(t *testing.T) *liveServer {
	t.Helper()
	return startLiveWith(t, true)
}

func startLiveWith(t *testing.T, counting bool) *liveServer {
	t.Helper()
	w := &liveServer{srv: newHome(t, jwk.EC256), opts: authkeys.HomeOptions(t.TempDir()), logs: &syncBuffer{}}
	w.opts.Debounce = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w.store = authkeys.Open(ctx, w.opts)
	srv, err := NewServer(w.srv.id, ServerOptions{Clients: w.store})
	if err != nil {
		t.Fatal(err)
	}
	live := srv.Live(LiveOptions{Changes: w.store, Logger: slog.New(slog.NewTextHandler(w.logs, nil))})
	t.Cleanup(func() { live.Close() })
	w.server, w.live = srv, live
	handler := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(rw, "hello %s %s\n", PeerFromContext(r.Context()).Name(), r.Proto)
		rw.(http.Flusher).Flush()
		if r.URL.Path == "/once" {
			return
		}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
				if _, err := fmt.Fprintln(rw, "tick"); err != nil {
					return
				}
				rw.(http.Flusher).Flush()
			}
		}
	})
	cfg := srv.TLSConfig()
	if counting {
		w.admitted = new(atomic.Int64)
		cfg.VerifyConnection = func(tls.ConnectionState) error { w.admitted.Add(1); return nil }
	}
	hs := &http.Server{Handler: srv.RequireAuthenticated(handler), TLSConfig: cfg, ConnState: live.ConnState, ConnContext: ConnContext,
		ErrorLog: log.New(io.Discard, "", 0)} // refused handshakes
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = hs.ServeTLS(ln, "", "")
	}()
	t.Cleanup(func() { hs.Close(); <-done })
	return w
}

// authorize writes c's key to authorized_keys.d/name.json, waits until
// the store has it, and pins the server's key for c.
func (w *liveServer) authorize(t *testing.T, name string, c *home) string {
	t.Helper()
	file := filepath.Join(w.opts.Dirs[0], name+".json")
	k := keydirtest.WithAttrs(c.id.Key.PublicKey(), jwk.AttrName, name)
	keydirtest.Put(t, file, keydirtest.JWK(t, k))
	for deadline := time.Now().Add(hangBound); w.store.Decide(c.id.Key.SPKIHash(), netip.MustParseAddr("127.0.0.1")).Verdict != authkeys.Authorized; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s was not authorized from %s", name, file)
		}
	}
	c.pin(t, w.addr, w.srv.id.Key)
	return file
}

// expiry is keydirtest.Withdrawn's Expiry for c's key in w's store.
func (w *liveServer) expiry(c *home) func() time.Time {
	return func() time.Time {
		if e := w.store.Decide(c.id.Key.SPKIHash(), netip.MustParseAddr("127.0.0.1")).Entry; e != nil {
			return e.Expires
		}
		return time.Time{}
	}
}

// liveStream is a streaming request held open; ended receives when its
// body stopped (an error: the connection was closed).
type liveStream struct {
	name   string
	ended  chan time.Time
	ticks  chan struct{}
	cancel context.CancelFunc
}

// openStream starts a streaming request as c, over HTTP/2 or HTTP/1.1,
// and checks its greeting.
func (w *liveServer) openStream(t *testing.T, name string, c *home, h2 bool) *liveStream {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: mustConfig(t, c.client(t, ClientOptions{}), w.addr), ForceAttemptHTTP2: h2}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+w.addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	proto := "HTTP/1.1"
	if h2 {
		proto = "HTTP/2.0"
	}
	if want := "hello " + name + " " + proto + "\n"; err != nil || line != want {
		t.Fatalf("%s: read %q, %v; want %q", name, line, err, want)
	}
	s := &liveStream{name: name, ended: make(chan time.Time, 1), ticks: make(chan struct{}, 1000), cancel: cancel}
	go func() {
		defer resp.Body.Close()
		for {
			if _, err := br.ReadString('\n'); err != nil {
				s.ended <- time.Now()
				return
			}
			select {
			case s.ticks <- struct{}{}:
			default:
			}
		}
	}()
	return s
}

// endedWithin fails t unless s ended within d of at.
func (s *liveStream) endedWithin(t *testing.T, at time.Time, d time.Duration) {
	t.Helper()
	select {
	case end := <-s.ended:
		if took := end.Sub(at); took > d {
			t.Errorf("%s ended %v after the change, want < %v", s.name, took, d)
		} else {
			t.Logf("%s ended %v after the change", s.name, took)
		}
	case <-time.After(d + 2*time.Second):
		t.Fatalf("%s is still open %v after the change", s.name, d+2*time.Second)
	}
}

// stillTicks fails t unless s is open and delivers fresh ticks.
func (s *liveStream) stillTicks(t *testing.T) {
	t.Helper()
	for len(s.ticks) > 0 {
		<-s.ticks
	}
	select {
	case <-s.ended:
		t.Fatalf("%s ended; it should be untouched", s.name)
	case <-s.ticks:
	case <-time.After(hangBound):
		t.Fatalf("%s delivers nothing any more", s.name)
	}
}

func (w *liveServer) waitLog(t *testing.T, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	for deadline := time.Now().Add(hangBound); !re.MatchString(w.logs.String()); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line matches %s in:\n%s", pattern, w.logs)
		}
	}
}

// TestLiveConnsHTTP: an HTTP server with LiveConns closes every open
// connection (HTTP/1.1 and HTTP/2) of a key that stops being admitted
// within a second of the change, logging the key and why; another key's
// stream goes on.
func TestLiveConnsHTTP(t *testing.T) {
	for _, tc := range keydirtest.Withdrawals() {
		for _, h2 := range []bool{false, true} {
			name := tc.Name + "/HTTP1.1"
			if h2 {
				name = tc.Name + "/HTTP2"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				w := startLive(t)
				// A revocation file of another key, which the chmod case
				// makes unsafe.
				keydirtest.Put(t, filepath.Join(w.opts.RevokedDirs[0], "other.json"), keydirtest.JWK(t, keydirtest.Key(t, 7)))
				alice, bob := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
				file := w.authorize(t, "alice", alice)
				w.authorize(t, "bob", bob)
				as := w.openStream(t, "alice", alice, h2)
				bs := w.openStream(t, "bob", bob, h2)

				at := tc.Do(t, keydirtest.Withdrawn{RevokedDir: w.opts.RevokedDirs[0], File: file, Key: alice.id.Key, Expiry: w.expiry(alice)})
				as.endedWithin(t, at, liveWithin)
				fp := regexp.QuoteMeta(alice.id.Key.Fingerprint())
				w.waitLog(t, `level=WARN msg="closing: key no longer admitted" remote=127\.0\.0\.1:\d+ fingerprint=`+fp+` name=alice reason=".*`+tc.Reason)
				if tc.AllKeys {
					bs.endedWithin(t, at, liveWithin)
					return
				}
				// Bob's stream was not touched: it still streams after a
				// sweep, and only one connection was closed.
				time.Sleep(liveInterval + 200*time.Millisecond)
				bs.stillTicks(t)
				if n := strings.Count(w.logs.String(), MsgNoLongerAdmitted); n != 1 {
					t.Errorf("%d connections closed, want alice's:\n%s", n, w.logs)
				}
			})
		}
	}
}

// TestLiveConnsKeepAliveRequest: on an HTTP/1.1 keep-alive connection
// idle between requests, revocation closes it: the next request on that
// connection cannot be sent on it, and a new connection is refused in the
// handshake.
func TestLiveConnsKeepAliveRequest(t *testing.T) {
	w := startLive(t)
	alice := newHome(t, jwk.EC256)
	w.authorize(t, "alice", alice)
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	tr := &http.Transport{TLSClientConfig: mustConfig(t, alice.client(t, ClientOptions{}), w.addr)}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		return c, err
	}
	defer tr.CloseIdleConnections()
	get := func() error {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+w.addr+"/once", nil)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "hello alice HTTP/1.1\n" {
			return fmt.Errorf("read %q, %v", body, err)
		}
		return nil
	}
	for range 2 {
		if err := get(); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	first, n := conns[0], len(conns)
	mu.Unlock()
	if n != 1 {
		t.Fatalf("%d connections for two requests; want one kept alive", n)
	}
	keydirtest.Put(t, filepath.Join(w.opts.RevokedDirs[0], "alice.json"), keydirtest.JWK(t, alice.id.Key.PublicKey()))
	at := time.Now()
	// The server closes the idle connection: the client's socket reads EOF.
	_ = first.SetReadDeadline(at.Add(liveWithin))
	buf := make([]byte, 1)
	for {
		if _, err := first.Read(buf); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the keep-alive connection is still open %v after the revocation", liveWithin)
			}
			break
		}
	}
	t.Logf("the keep-alive connection closed %v after the revocation", time.Since(at))
	fp := regexp.QuoteMeta(alice.id.Key.Fingerprint())
	w.waitLog(t, `msg="closing: key no longer admitted" remote=127\.0\.0\.1:\d+ fingerprint=`+fp+` name=alice reason="authkeys: key \S+ is revoked`)
	if err := get(); err == nil {
		t.Fatal("a request after the revocation succeeded")
	}
}

// TestLiveConnsTrack: a plain TLS server that calls Track after each
// handshake, with no Changes (the sweep alone notices) and AllowUnknown:
// a revoked key's connection is closed within a second; a key still
// authorized and an unknown client let in unauthenticated are untouched
// — until the unknown client's key is revoked too, as the handshake would
// refuse it.
func TestLiveConnsTrack(t *testing.T) {
	h := newHome(t, jwk.EC256)
	srv, err := NewServer(h.id, ServerOptions{Clients: h.auth, AllowUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	live := srv.Live(LiveOptions{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	defer live.Close()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	testnet.ServeEach(t, ln, func(c net.Conn) {
		tc := c.(*tls.Conn)
		if tc.Handshake() != nil {
			return
		}
		defer live.Track(c, tc.ConnectionState())()
		_, _ = io.Copy(c, c) // echo until closed
	})
	addr := ln.Addr().String()
	alice, bob, stranger := newHome(t, jwk.EC256), newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	h.authorize(t, "alice", alice.id.Key)
	h.authorize(t, "bob", bob.id.Key)
	dial := func(c *home) *tls.Conn {
		t.Helper()
		c.pin(t, addr, h.id.Key)
		conn, err := tls.Dial("tcp", addr, mustConfig(t, c.client(t, ClientOptions{}), addr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	// echoes reports whether conn still echoes a line.
	echoes := func(conn *tls.Conn) bool {
		_ = conn.SetDeadline(time.Now().Add(hangBound))
		if _, err := io.WriteString(conn, "ping\n"); err != nil {
			return false
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		return err == nil && line == "ping\n"
	}
	// ends reports whether conn is closed by the server within d.
	ends := func(conn *tls.Conn, d time.Duration) bool {
		_ = conn.SetReadDeadline(time.Now().Add(d))
		_, err := conn.Read(make([]byte, 1))
		return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	}
	ac, bc, sc := dial(alice), dial(bob), dial(stranger)
	for name, c := range map[string]*tls.Conn{"alice": ac, "bob": bc, "stranger": sc} {
		if !echoes(c) {
			t.Fatalf("%s's connection does not echo", name)
		}
	}

	h.revoke(t, alice.id.Key) // reloads the store, which LiveConns is not told of
	at := time.Now()
	if !ends(ac, liveWithin) {
		t.Fatalf("alice's connection is still open %v after her key was revoked", liveWithin)
	}
	t.Logf("alice's connection ended %v after the revocation (sweep alone)", time.Since(at))
	time.Sleep(liveInterval + 200*time.Millisecond)
	if !echoes(bc) || !echoes(sc) {
		t.Fatal("bob's or the unknown client's connection was touched")
	}
	if n := strings.Count(logs.String(), MsgNoLongerAdmitted); n != 1 {
		t.Fatalf("%d connections closed, want alice's:\n%s", n, logs)
	}

	h.revoke(t, stranger.id.Key) // replaces alice's revocation file
	if !ends(sc, liveWithin) {
		t.Fatalf("the unknown client's connection is still open %v after its key was revoked", liveWithin)
	}
	fp := regexp.QuoteMeta(stranger.id.Key.Fingerprint())
	w := &liveServer{logs: logs}
	w.waitLog(t, `msg="closing: key no longer admitted" remote=127\.0\.0\.1:\d+ fingerprint=`+fp+` name="" reason="authkeys: key \S+ is revoked`)
}

// TestLiveClosesConnectionThatSentNothing: a client that completes its
// handshake while admitted and then sends nothing — no HTTP/1.1 request;
// over HTTP/2, not even its preface — is closed within a second of its
// key's revocation all the same, with the log line: ConnState tracks a
// connection from its handshake's admission, not from its first request
// (StateActive, which never comes). Another key's silent connection is
// untouched, and then serves its first request.
func TestLiveClosesConnectionThatSentNothing(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		name := "HTTP1.1"
		if proto == "HTTP/2.0" {
			name = "HTTP2-late-preface"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := startLiveCounting(t)
			alice, bob := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
			w.authorize(t, "alice", alice)
			w.authorize(t, "bob", bob)
			silent := func(c *home) *tls.Conn {
				t.Helper()
				cfg := mustConfig(t, c.client(t, ClientOptions{}), w.addr)
				cfg.NextProtos = []string{"http/1.1"}
				if proto == "HTTP/2.0" {
					cfg.NextProtos = []string{"h2"}
				}
				conn, err := tls.Dial("tcp", w.addr, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { conn.Close() })
				return conn
			}
			ac, bc := silent(alice), silent(bob)
			// Both admitted by the server's handshake (TLS 1.3: after
			// the client's Handshake returned).
			for deadline := time.Now().Add(hangBound); w.admitted.Load() < 2; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the server admitted %d of the 2 handshakes", w.admitted.Load())
				}
			}

			keydirtest.Put(t, filepath.Join(w.opts.RevokedDirs[0], "alice.json"), keydirtest.JWK(t, alice.id.Key.PublicKey()))
			at := time.Now()
			// The server closes it: alice's socket reads EOF (HTTP/2: after
			// the server's SETTINGS).
			_ = ac.SetReadDeadline(at.Add(liveWithin))
			if _, err := io.Copy(io.Discard, ac); errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("alice's connection, which sent nothing after its handshake, is still open %v after the revocation", liveWithin)
			}
			t.Logf("alice's silent connection closed %v after the revocation", time.Since(at))
			fp := regexp.QuoteMeta(alice.id.Key.Fingerprint())
			w.waitLog(t, `msg="closing: key no longer admitted" remote=127\.0\.0\.1:\d+ fingerprint=`+fp+` name=alice reason="authkeys: key \S+ is revoked`)

			// Bob's silent connection was not touched: after a sweep, it
			// serves its first request.
			time.Sleep(liveInterval + 200*time.Millisecond)
			var dials atomic.Int32
			tr := &http.Transport{ForceAttemptHTTP2: true, DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
				if dials.Add(1) > 1 {
					return nil, errors.New("bob's connection was closed")
				}
				return bc, nil
			}}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: hangBound}).Get("https://" + w.addr + "/once")
			if err != nil {
				t.Fatalf("bob's silent connection: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if want := "hello bob " + proto + "\n"; err != nil || string(body) != want {
				t.Fatalf("bob's silent connection: read %q, %v; want %q", body, err, want)
			}
			if n := strings.Count(w.logs.String(), MsgNoLongerAdmitted); n != 1 {
				t.Errorf("%d connections closed, want alice's:\n%s", n, w.logs)
			}
		})
	}
}

// TestLiveConnStateForgetsClosedConnections: ConnState keeps nothing of
// a connection once it is closed, whatever became of its handshake —
// closed before it began, cut in its middle, refused, or admitted and
// then closed by the client without a request — and a silent connection
// admitted is tracked while it is open.
func TestLiveConnStateForgetsClosedConnections(t *testing.T) {
	w := startLive(t)
	alice, stranger := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	w.authorize(t, "alice", alice)
	stranger.pin(t, w.addr, w.srv.id.Key)
	// held reports what the server side holds: connections LiveConns
	// knows and tracks, and admissions the Server awaits.
	held := func() (known, tracked, awaiting int) {
		w.live.mu.Lock()
		known = len(w.live.known)
		w.live.mu.Unlock()
		w.server.awaitMu.Lock()
		awaiting = len(w.server.awaiting)
		w.server.awaitMu.Unlock()
		return known, w.live.Stats().Tracked, awaiting
	}
	waitHeld := func(what string, known, tracked, awaiting int) {
		t.Helper()
		for deadline := time.Now().Add(hangBound); ; time.Sleep(5 * time.Millisecond) {
			k, tr, a := held()
			if k == known && tr == tracked && a == awaiting {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d connections known, %d tracked, %d admissions awaited; want %d, %d, %d", what, k, tr, a, known, tracked, awaiting)
			}
		}
	}

	before, err := net.Dial("tcp", w.addr) // closed before its handshake
	if err != nil {
		t.Fatal(err)
	}
	before.Close()
	cut, err := net.Dial("tcp", w.addr) // a record header, then closed
	if err != nil {
		t.Fatal(err)
	}
	_, _ = cut.Write([]byte{0x16, 0x03, 0x01, 0x01, 0x00, 0x01})
	cut.Close()
	// Refused (TLS 1.3: the client may learn it at its first read).
	if sc, err := tls.Dial("tcp", w.addr, mustConfig(t, stranger.client(t, ClientOptions{}), w.addr)); err == nil {
		_, _ = sc.Read(make([]byte, 1))
		sc.Close()
	}
	ac, err := tls.Dial("tcp", w.addr, mustConfig(t, alice.client(t, ClientOptions{}), w.addr))
	if err != nil {
		t.Fatal(err)
	}
	waitHeld("alice's silent connection open", 1, 1, 0)
	ac.Close()
	waitHeld("every connection closed", 0, 0, 0)
}

// untold is a Changes that never tells of a change: the sweep it would
// start has not come yet.
type untold struct{}

func (untold) OnChange(func(authkeys.Change)) func() { return func() {} }

// TestRequireAuthenticatedRefusesRequestBeforeSweep: a request read on
// a tracked connection after its key's revocation, before the sweep that
// closes the connection (here, one that never comes), is still handled:
// live revocation ends connections and decides nothing per request.
// RequireAuthenticated, deciding each request against the trust state of
// the moment, turns it away with 403 revoked; the handler behind it does
// not run. HTTP/1.1 and HTTP/2.
func TestRequireAuthenticatedRefusesRequestBeforeSweep(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP1.1"
		if h2 {
			name = "HTTP2"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHome(t, jwk.EC256)
			srv, err := NewServer(h.id, ServerOptions{Clients: h.auth})
			if err != nil {
				t.Fatal(err)
			}
			live := srv.Live(LiveOptions{Changes: untold{}, Logger: slog.New(slog.DiscardHandler)})
			defer live.Close()
			var bare, guarded atomic.Int32
			mux := http.NewServeMux()
			mux.HandleFunc("/bare", func(http.ResponseWriter, *http.Request) { bare.Add(1) })
			mux.Handle("/guarded", srv.RequireAuthenticated(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { guarded.Add(1) })))
			hs := &http.Server{Handler: mux, TLSConfig: srv.TLSConfig(), ConnState: live.ConnState, ConnContext: ConnContext}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = hs.ServeTLS(ln, "", "") }()
			defer hs.Close()
			addr := ln.Addr().String()

			alice := newHome(t, jwk.EC256)
			h.authorize(t, "alice", alice.id.Key)
			alice.pin(t, addr, h.id.Key)
			var dials atomic.Int32
			tr := &http.Transport{TLSClientConfig: mustConfig(t, alice.client(t, ClientOptions{}), addr), ForceAttemptHTTP2: h2}
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dials.Add(1)
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}
			defer tr.CloseIdleConnections()
			get := func(path string) int {
				t.Helper()
				resp, err := (&http.Client{Transport: tr, Timeout: hangBound}).Get("https://" + addr + path)
				if err != nil {
					t.Fatalf("GET %s: %v", path, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if h2 != (resp.ProtoMajor == 2) {
					t.Errorf("GET %s: %s", path, resp.Proto)
				}
				if resp.StatusCode == http.StatusForbidden && !strings.Contains(string(body), string(ReasonRevoked)) {
					t.Errorf("GET %s: 403 %q; want reason %s", path, body, ReasonRevoked)
				}
				return resp.StatusCode
			}
			if c := get("/guarded"); c != http.StatusOK || guarded.Load() != 1 {
				t.Fatalf("before the revocation: %d, handler ran %d times", c, guarded.Load())
			}
			if n := live.Stats().Tracked; n != 1 {
				t.Fatalf("%d connections tracked, want alice's", n)
			}

			h.revoke(t, alice.id.Key) // the store has it; LiveConns is not told
			if c := get("/bare"); c != http.StatusOK || bare.Load() != 1 {
				t.Errorf("a bare handler: %d, ran %d times; want it run (nothing decides the request)", c, bare.Load())
			}
			if c := get("/guarded"); c != http.StatusForbidden || guarded.Load() != 1 {
				t.Errorf("behind RequireAuthenticated: %d, handler ran %d times; want 403 and once (before the revocation)", c, guarded.Load())
			}
			if n := dials.Load(); n != 1 {
				t.Errorf("%d connections; want the requests on alice's one, tracked and still open", n)
			}
		})
	}
}
