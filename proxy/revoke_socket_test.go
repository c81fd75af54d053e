package proxy

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// TestLiveRevocationClosesAtTheSocket: a connection whose key is removed
// is closed at its socket, with nothing written to the client first — as
// docs/security.md ("Live revocation") says — not with a TLS
// close_notify: crypto/tls's Close writes one, with a deadline of 5 s,
// unless a write is under way, and a client that no longer reads (its
// window full) kept the connection to the target, its direction to it
// still copied, that long past the decision. Review of 2026-12-03.
func TestLiveRevocationClosesAtTheSocket(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	opts := authkeys.HomeOptions(t.TempDir())
	opts.Debounce = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	store := authkeys.Open(ctx, opts)
	tlsSrv, err := tlsbridge.NewServer(srv.id, tlsbridge.ServerOptions{Clients: store})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	p, err := NewServer(ServerOptions{TLS: tlsSrv, Target: longEchoTarget(t), Store: store, Logger: logs.logger()})
	if err != nil {
		t.Fatal(err)
	}
	ln := &watchedWrites{Listener: listen(t), conns: make(chan *watchedConn, 1)}
	addr := ln.Addr().String()
	done := make(chan struct{})
	go func() { _ = p.Serve(context.Background(), ln); close(done) }()
	t.Cleanup(func() { p.Close(); <-done })

	file := filepath.Join(opts.Dirs[0], "alice.json")
	keydirtest.Put(t, file, keydirtest.JWK(t, keydirtest.WithAttrs(alice.id.Key.PublicKey(), jwk.AttrName, "alice")))
	for deadline := time.Now().Add(30 * time.Second); store.Decide(alice.id.Key.SPKIHash(), netip127).Verdict != authkeys.Authorized; time.Sleep(5 * time.Millisecond) { // a bound on a hang
		if time.Now().After(deadline) {
			t.Fatal("alice was not authorized")
		}
	}
	alice.pin(t, addr, srv)
	conn := dialTLS(t, alice, addr)
	echo(t, "alice", conn) // the pipe runs; the target has nothing more to send
	raw := <-ln.conns
	before := raw.written()

	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	select {
	case <-raw.closed:
	case <-time.After(30 * time.Second): // a bound on a hang
		t.Fatalf("alice's connection is still open 30 s after her key was removed:\n%s", logs)
	}
	if n := raw.written() - before; n != 0 {
		t.Errorf("the proxy wrote %d time(s) to the client whose key was removed before closing its socket (a TLS close_notify)", n)
	}
	logs.waitFor(t, `msg="closing: key no longer admitted" .*name=alice`)
}

// watchedWrites is a listener whose connections count the writes made
// to them while open.
type watchedWrites struct {
	net.Listener
	conns chan *watchedConn
}

func (l *watchedWrites) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	w := &watchedConn{Conn: c, closed: make(chan struct{})}
	select {
	case l.conns <- w:
	default:
	}
	return w, nil
}

type watchedConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	done   bool
	closed chan struct{}
}

func (c *watchedConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if !c.done {
		c.writes++
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *watchedConn) Close() error {
	c.mu.Lock()
	if !c.done {
		c.done = true
		close(c.closed)
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

func (c *watchedConn) written() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}
