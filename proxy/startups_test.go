package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
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
	if n, open := p.startups.inStartup(local), p.l.open(); n != max || open != 2*max+1 {
		t.Fatalf("%d connections in their startup, %d open; want %d and %d (the admitted ones not counted, nor closed)", n, open, max, 2*max+1)
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
	s := newStartups(2)
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
func TestMaxStartupsDoNotHoldTheAcceptLoop(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	logs := &logBuffer{}
	p, err := NewServer(ServerOptions{Target: echoTarget(t), Logger: logs.logger(), TLS: srv.tlsServer(t, tlsbridge.ServerOptions{}), MaxStartupsPerSource: 8})
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
	c := dialTLS(t, alice, addr)
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("a client accepted after one whose address has not come: %v", err)
	}
}
