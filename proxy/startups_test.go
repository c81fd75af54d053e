package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/tlsbridge"
)

// TestMaxStartupsPerSource: connections from one address that never send
// a ClientHello hold their startup (for an hour of handshake timeout
// here), and once MaxStartupsPerSource of them do, the next connection
// from that address is closed as it is accepted — a raw one as a
// legitimate client — while connections already admitted, more of them
// than the limit, neither count nor are touched; each refusal is folded
// into the failure log, and once the silent ones go away a legitimate
// client gets in again (found by review: no bound, a goroutine and a
// descriptor per connection for the handshake timeout).
func TestMaxStartupsPerSource(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	const max = 3
	p, addr, logs, _ := startServer(t, srv, echoTarget(t), ServerOptions{MaxStartupsPerSource: max, HandshakeTimeout: time.Hour})
	p.l.failures.SetInterval(time.Hour) // counted until flushed
	alice.pin(t, addr, srv)
	local := netip.MustParseAddr("127.0.0.1")

	// Admitted connections, more than the limit, held open: an echo
	// through each says the proxy has decided it.
	for i := range max + 1 {
		c := dialTLS(t, alice, addr)
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatalf("admitted connection %d: %v", i+1, err)
		}
	}
	silent := make([]net.Conn, max)
	for i := range silent {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent[i] = c
	}
	// Once the silent ones are counted (each connection is counted in
	// its own goroutine), the next is closed at once: its read ends with
	// the proxy's close, not the 30 s that bound a hang.
	for deadline := time.Now().Add(30 * time.Second); p.startups.inStartup(local) < max; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d silent connections counted in their startup, want %d", p.startups.inStartup(local), max)
		}
	}
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); isTimeout(err) || n != 0 {
		t.Fatalf("connection %d in its startup from one address: read %d bytes, %v; want it closed at once", max+1, n, err)
	}
	logs.waitFor(t, `msg=refused remote=127\.0\.0\.1:\d+ reason="too many connections from this source still in their handshake \(MaxStartupsPerSource 3\)"\n`)
	// A legitimate client from the same address is refused as well.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := alice.tlsClient(t).DialContext(ctx, "tcp", addr); err == nil {
		c.Close()
		t.Fatal("a handshake got in past the limit")
	}
	// A refused connection leaves the open set just after it is closed:
	// the count is awaited, not read once.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		n, open := p.startups.inStartup(local), p.l.open()
		if n == max && open == 2*max+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections in their startup, %d open; want %d and %d (the admitted ones not counted, nor closed)", n, open, max, 2*max+1)
		}
	}

	for _, c := range silent {
		c.Close()
	}
	for deadline := time.Now().Add(30 * time.Second); p.startups.inStartup(local) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still in their startup after the silent ones closed", p.startups.inStartup(local))
		}
	}
	if got, err := exchange(dialTLS(t, alice, addr), "hello"); err != nil || got != "hello" {
		t.Fatalf("alice once the silent connections closed: %q, %v", got, err)
	}

	p.Close()
	p.l.failures.Flush()
	s := logs.String()
	full := strings.Count(s, `reason="too many connections from this source still in their handshake (MaxStartupsPerSource 3)"`+"\n")
	counted := regexp.MustCompile(`msg=refused remote=127\.0\.0\.1 reason="too many [^"]*" repeated=1 in=\S+\n`).FindAllString(s, -1)
	if full != 1 || len(counted) != 1 {
		t.Errorf("2 connections refused by the limit: %d lines in full, %d counts; want 1 and 1:\n%s", full, len(counted), s)
	}
}

// TestMaxStartupsCountsEnrollmentGate: with Enroll, an unknown client
// stays in its startup while the gate serves it (up to 3+15+15 s), and
// counts against MaxStartupsPerSource until its connection ends: with a
// bound of 1 and a newcomer inside the enrollment handler, the next
// connection from its address is closed at once; once the newcomer is
// answered, its slot is free.
func TestMaxStartupsCountsEnrollmentGate(t *testing.T) {
	srv, newcomer := newSide(t), newSide(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	enroll := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "enrollment only\n")
	})
	p, addr, _, _ := startServer(t, srv, echoTarget(t), ServerOptions{
		TLS: srv.tlsServer(t, tlsbridge.ServerOptions{AllowUnknown: true}), Enroll: enroll, MaxStartupsPerSource: 1, HandshakeTimeout: time.Hour,
	})
	t.Cleanup(free) // run before the proxy's own cleanup (registered earlier), which waits for the handler
	newcomer.pin(t, addr, srv)
	answered := make(chan string, 1)
	conn := dialTLS(t, newcomer, addr)
	go func() {
		got, _ := exchange(conn, "GET /anything HTTP/1.0\r\n\r\n")
		answered <- got
	}()
	<-entered
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	_ = extra.SetReadDeadline(time.Now().Add(30 * time.Second))
	if n, err := extra.Read(make([]byte, 1)); isTimeout(err) || n != 0 {
		t.Fatalf("a connection while a newcomer is in the enrollment gate, bound 1: read %d bytes, %v; want it closed at once", n, err)
	}
	free()
	if got := <-answered; !strings.HasSuffix(got, "enrollment only\n") {
		t.Fatalf("the newcomer got %q", got)
	}
	local := netip.MustParseAddr("127.0.0.1")
	for deadline := time.Now().Add(30 * time.Second); p.startups.inStartup(local) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the newcomer's slot still held after its connection ended")
		}
	}
}

// TestStartupsPerSource: an IPv6 source is its /64, as for the failure
// log and enrollment's limits; the end of a startup may be told twice
// and counts once.
func TestStartupsPerSource(t *testing.T) {
	s := newStartups(2, DefaultMaxStartups)
	a1, a2 := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	done1, ok1 := s.start(a1)
	_, ok2 := s.start(a2)
	if !ok1 || !ok2 {
		t.Fatal("two startups of a /64 refused with a limit of 2")
	}
	if _, ok := s.start(netip.MustParseAddr("2001:db8:1:2::3")); ok {
		t.Fatal("a third address of the /64 let in")
	}
	if _, ok := s.start(netip.MustParseAddr("2001:db8:1:3::1")); !ok {
		t.Fatal("another /64 refused")
	}
	done1()
	done1()
	if n := s.inStartup(a2); n != 1 {
		t.Fatalf("%d startups after one ended twice, want 1", n)
	}
}

// blockingAddrListener is a net.Listener whose first connection's
// RemoteAddr blocks until release is closed: a listener that reads a
// PROXY protocol header answers RemoteAddr once the header has come.
type blockingAddrListener struct {
	net.Listener
	release chan struct{}
	first   sync.Once
}

type blockingAddrConn struct {
	net.Conn
	release chan struct{}
}

func (c blockingAddrConn) RemoteAddr() net.Addr {
	<-c.release
	return c.Conn.RemoteAddr()
}

func (l *blockingAddrListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	blocked := false
	l.first.Do(func() { blocked = true })
	if blocked {
		return blockingAddrConn{Conn: c, release: l.release}, nil
	}
	return c, nil
}

// TestMaxStartupsDoNotHoldTheAcceptLoop: the per-source count asks a
// connection for its address in the connection's own goroutine — it did
// in the accept loop, where a listener that reads a PROXY header before
// it answers RemoteAddr made a client that sent nothing hold every
// connection behind it (found by review). Here the first connection's
// address never comes until the end, and a client behind it is served.
// MaxStartups is counted there too, and before the address is asked
// for: the connection waiting for its address holds a slot.
func TestMaxStartupsDoNotHoldTheAcceptLoop(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	logs := &logBuffer{}
	p, err := NewServer(ServerOptions{Target: echoTarget(t), Logger: logs.logger(), TLS: srv.tlsServer(t, tlsbridge.ServerOptions{}), MaxStartupsPerSource: 8, MaxStartups: MaxStartups{Start: 8, Rate: 100, Full: 8}})
	if err != nil {
		t.Fatal(err)
	}
	ln := &blockingAddrListener{Listener: listen(t), release: make(chan struct{})}
	defer close(ln.release)
	done := make(chan struct{})
	go func() { _ = p.Serve(context.Background(), ln); close(done) }()
	t.Cleanup(func() { p.Close(); <-done })
	addr := ln.Addr().String()
	alice.pin(t, addr, srv)
	stuck, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	waitInStartup(t, p, 1)
	c := dialTLS(t, alice, addr)
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("a client accepted after one whose address has not come: %v", err)
	}
}

// silentConn opens a raw connection to addr that sends nothing, closed at
// the test's end.
func silentConn(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitInStartup waits until p counts n connections in their startup, all
// sources together: each connection is counted in its own goroutine. Its
// 30 s bound a count that never comes, not a pace.
func waitInStartup(t *testing.T, p *Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); p.startups.inTotal() != n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections counted in their startup, want %d", p.startups.inTotal(), n)
		}
	}
}

// closedAtOnce tells whether a raw connection to addr is closed by the
// proxy before anything is sent: its read ends with the close, not the
// 30 s that bound a hang.
func closedAtOnce(t *testing.T, addr string) bool {
	t.Helper()
	c := silentConn(t, addr)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if isTimeout(err) && n == 0 {
		return false
	}
	if n != 0 {
		t.Fatalf("the proxy sent %d bytes to a connection that sent nothing", n)
	}
	return true
}

// TestMaxStartups: connections that never send a ClientHello (an hour
// of handshake timeout here) fill MaxStartups — all sources together,
// the per-source bound far above it — and the next connection, a raw
// one as a legitimate client, is closed as it is accepted; each refusal
// is counted in the metrics and folded into one line of the failure
// log, whatever its source (a flood from many sources would otherwise
// be a line each); connections already admitted are untouched; once the
// silent ones go away, a client gets in again. (A peer with a /48 has
// 65,536 /64s, each under MaxStartupsPerSource.)
func TestMaxStartups(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	m := NewMetrics()
	p, addr, logs, _ := startServer(t, srv, echoTarget(t), ServerOptions{
		MaxStartups: MaxStartups{Start: 3, Rate: 100, Full: 3}, MaxStartupsPerSource: 100, HandshakeTimeout: time.Hour, Metrics: m,
	})
	p.l.failures.SetInterval(time.Hour) // counted until flushed
	alice.pin(t, addr, srv)
	admitted := dialTLS(t, alice, addr)
	if _, err := admitted.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(admitted, make([]byte, 1)); err != nil {
		t.Fatalf("admitted connection: %v", err)
	}
	silent := []net.Conn{silentConn(t, addr), silentConn(t, addr), silentConn(t, addr)}
	waitInStartup(t, p, 3)
	if !closedAtOnce(t, addr) {
		t.Fatal("a 4th connection in its startup, MaxStartups 3: not closed at once")
	}
	logs.waitFor(t, `msg=refused remote=127\.0\.0\.1:\d+ reason="too many connections still in their handshake \(MaxStartups 3\)" in_handshake=3\n`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c, err := alice.tlsClient(t).DialContext(ctx, "tcp", addr); err == nil {
		c.Close()
		t.Fatal("a handshake got in past MaxStartups")
	}
	if _, err := admitted.Write([]byte{'y'}); err != nil {
		t.Fatalf("the admitted connection, once MaxStartups is reached: %v", err)
	}
	if _, err := io.ReadFull(admitted, make([]byte, 1)); err != nil {
		t.Fatalf("the admitted connection, once MaxStartups is reached: %v", err)
	}

	for _, c := range silent {
		c.Close()
	}
	waitInStartup(t, p, 0)
	if got, err := exchange(dialTLS(t, alice, addr), "hello"); err != nil || got != "hello" {
		t.Fatalf("alice once the silent connections closed: %q, %v", got, err)
	}

	p.Close()
	p.l.failures.Flush()
	s := logs.String()
	full := strings.Count(s, `reason="too many connections still in their handshake (MaxStartups 3)" in_handshake=3`+"\n")
	counted := regexp.MustCompile(`msg=refused remote=all reason="too many connections still in their handshake \(MaxStartups 3\)" repeated=1 in=\S+\n`).FindAllString(s, -1)
	if full != 1 || len(counted) != 1 {
		t.Errorf("2 connections refused by MaxStartups: %d lines in full, %d counts; want 1 and 1:\n%s", full, len(counted), s)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if want := `keytool_proxy_handshakes_total{reason="max_startups",result="failed"} 2` + "\n"; !strings.Contains(rec.Body.String(), want) {
		t.Errorf("/metrics lacks %q", want)
	}
}

// TestMaxStartupsRandomEarlyDrop: past Start connections in their
// startup, a new one is refused with a probability rising from Rate% to
// 100% at Full, as OpenSSH's MaxStartups start:rate:full — here with the
// random draw given, so that each outcome is known: below Start no draw
// is made; at 2 of 2:50:4 the chance is 50%, so a draw of 49 refuses and
// 50 admits; at 3, 75%: 74 refuses, 75 admits; at 4, Full, every
// connection is refused without a draw.
func TestMaxStartupsRandomEarlyDrop(t *testing.T) {
	srv := newSide(t)
	p, addr, _, _ := startServer(t, srv, echoTarget(t), ServerOptions{
		MaxStartups: MaxStartups{Start: 2, Rate: 50, Full: 4}, HandshakeTimeout: time.Hour,
	})
	var mu sync.Mutex
	draw, drawn := -1, 0 // -1: no draw expected
	p.startups.rand = func(n int) int {
		mu.Lock()
		defer mu.Unlock()
		if n != 100 || draw < 0 {
			t.Errorf("a draw of %d made where none was expected (or not of 100)", n)
			return 0
		}
		drawn++
		return draw
	}
	expect := func(d int) {
		mu.Lock()
		defer mu.Unlock()
		draw, drawn = d, 0
	}
	silentConn(t, addr)
	silentConn(t, addr)
	waitInStartup(t, p, 2)
	for _, c := range []struct {
		draw    int
		refused bool
		inStart int // in their startup after it
	}{
		{49, true, 2}, {50, false, 3}, {74, true, 3}, {75, false, 4}, {-1, true, 4},
	} {
		expect(c.draw)
		var refused bool
		if c.refused {
			refused = closedAtOnce(t, addr)
		} else {
			silentConn(t, addr)
			waitInStartup(t, p, c.inStart)
		}
		waitInStartup(t, p, c.inStart)
		mu.Lock()
		n := drawn
		mu.Unlock()
		if refused != c.refused || (c.draw >= 0 && n != 1) {
			t.Fatalf("draw %d: refused %v, %d draws; want refused %v, 1 draw", c.draw, refused, n, c.refused)
		}
	}
}

// TestStartupsDropRate: the probability of a refusal is OpenSSH's —
// rate% at start, rising linearly, 100% at full (integer percent) — and
// the total counts every source: IPv4 addresses and IPv6 /64s alike, and
// connections without an address, which have no source.
func TestStartupsDropRate(t *testing.T) {
	s := newStartups(1000, MaxStartups{Start: 10, Rate: 30, Full: 100})
	for _, c := range []struct{ inStartup, refusedBelow int }{
		{0, 0}, {9, 0}, {10, 30}, {11, 30}, {55, 65}, {99, 99}, {100, 100}, {150, 100},
	} {
		s.total = c.inStartup
		for r := range 100 {
			s.rand = func(int) int { return r }
			done, ok := s.startAny()
			if ok {
				done()
			}
			if want := r >= c.refusedBelow; ok != want {
				t.Fatalf("%d in their startup, draw %d: admitted %v, want %v", c.inStartup, r, ok, want)
			}
		}
	}
	s = newStartups(1000, MaxStartups{Start: 3, Rate: 100, Full: 3})
	s.rand = func(int) int { t.Fatal("a draw with start = full"); return 0 }
	for _, src := range []string{"192.0.2.1", "2001:db8:1:2::1", "2001:db8:1:3::1"} {
		if _, ok := s.startAny(); !ok {
			t.Fatalf("refused before 3 (%s)", src)
		}
		if _, ok := s.start(netip.MustParseAddr(src)); !ok {
			t.Fatalf("%s refused by its source", src)
		}
	}
	if _, ok := s.startAny(); ok {
		t.Fatal("a 4th startup of a 4th source admitted, MaxStartups 3")
	}
}

// TestParseMaxStartups: "N" and "start:rate:full", as sshd_config's
// MaxStartups, each written back as given; nonsense is refused.
func TestParseMaxStartups(t *testing.T) {
	for in, want := range map[string]MaxStartups{
		"10": {10, 100, 10}, "10:30:100": {10, 30, 100}, "256:30:1024": {256, 30, 1024}, "5:100:5": {5, 100, 5}, "1:1:1": {1, 1, 1},
	} {
		got, err := ParseMaxStartups(in)
		if err != nil || got != want {
			t.Errorf("ParseMaxStartups(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if in != "5:100:5" && in != "1:1:1" && got.String() != in { // start = full is "N"
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), in)
		}
	}
	for in, want := range map[string]string{
		"":           `proxy: MaxStartups: "" is not N or start:rate:full`,
		"0":          `proxy: MaxStartups: "0": start must be at least 1`,
		"-3":         `proxy: MaxStartups: "-3": start must be at least 1`,
		"10:30":      `proxy: MaxStartups: "10:30" is not N or start:rate:full`,
		"10:30:100:": `proxy: MaxStartups: "10:30:100:" is not N or start:rate:full`,
		"a:30:100":   `proxy: MaxStartups: "a:30:100" is not N or start:rate:full`,
		"10:0:100":   `proxy: MaxStartups: "10:0:100": rate must be a percentage from 1 to 100`,
		"10:101:100": `proxy: MaxStartups: "10:101:100": rate must be a percentage from 1 to 100`,
		"100:30:10":  `proxy: MaxStartups: "100:30:10": full must not be below start`,
	} {
		if _, err := ParseMaxStartups(in); err == nil || err.Error() != want {
			t.Errorf("ParseMaxStartups(%q): %v, want %s", in, err, want)
		}
	}
}
