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
}

// startLive serves, to each authenticated client, "hello NAME PROTO" and
// then a "tick" every 50 ms until the request ends: a stream that never
// ends on its own (/once: the greeting only).
func startLive(t *testing.T) *liveServer {
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
	hs := &http.Server{Handler: srv.RequireAuthenticated(handler), TLSConfig: srv.TLSConfig(), ConnState: live.ConnState, ConnContext: ConnContext,
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
