package tlsbridge

import (
	"crypto/sha256"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/keytool/keytool/jwk"
)

// liveInterval is how often LiveConns decides the open connections again
// when no change of the store says so: for a CA's CRL (read at most once a
// second by PKI), for stores that do not tell of their changes, and for
// entries' expiry (which also has a timer of its own).
const liveInterval = time.Second

// MsgNoLongerAdmitted is the message of the log line LiveConns writes for
// each connection it closes, with the attributes remote, fingerprint,
// name and reason.
const MsgNoLongerAdmitted = "closing: key no longer admitted"

// Changes is a trust store that tells of its changes: *authkeys.Store.
// Subscribe returns a channel that receives a value after each new
// snapshot, and the function that ends the subscription.
type Changes interface {
	Subscribe() (<-chan struct{}, func())
}

// LiveOptions configure Server.Live.
type LiveOptions struct {
	// Changes, if set, is the store the Server decides with (the
	// *authkeys.Store of ServerOptions.Clients): each of its changes
	// decides the open connections again at once. Without it, they are
	// decided again every second only.
	Changes Changes
	// Logger receives a warning for each connection closed
	// (MsgNoLongerAdmitted); nil means slog.Default().
	Logger *slog.Logger
}

// LiveConns closes the open connections of a Server whose client key stops
// being admitted: removed, revoked, expired, outside its entry's "from"
// networks, a revocation input failing closed, or, in PKI mode, a
// certificate its CA's CRL now revokes. Each connection's key is decided
// again (as Server.Peer does) on each change of LiveOptions.Changes, every
// second, and at its entry's "expires"; the connection of a key no longer
// admitted is closed at once — its underlying net.Conn, so that every
// HTTP/2 stream on it ends — and logged. Connections of keys still
// admitted are never touched.
//
// For net/http, set http.Server.ConnState to ConnState; for other
// servers, call Track for each connection after its handshake. Close
// stops it.
type LiveConns struct {
	srv      *Server
	log      *slog.Logger
	interval time.Duration

	mu    sync.Mutex
	conns map[net.Conn]*liveConn
	next  time.Time // when the next sweep is due

	wake      chan struct{} // an expiry earlier than next: re-arm the timer
	done      chan struct{}
	stopped   chan struct{} // closed when run has returned
	closeOnce sync.Once
	unsub     func()

	sweeps int // completed sweeps, read by tests under mu
}

// liveConn is one connection LiveConns knows.
type liveConn struct {
	conn   net.Conn
	cs     tls.ConnectionState
	remote netip.Addr
	name   string
	// unauthenticated: the client was let in unauthenticated
	// (AllowUnknown): it is closed only if the handshake would now refuse
	// it (its key revoked), until its key is admitted.
	unauthenticated bool
	// closed: LiveConns closed it; kept until forgotten, so that a late
	// ConnState hook neither tracks nor logs it again.
	closed bool
}

// Live starts closing the open connections whose client key stops being
// admitted (see LiveConns). Close the result when the server stops.
func (s *Server) Live(opts LiveOptions) *LiveConns {
	l := &LiveConns{
		srv: s, log: opts.Logger, interval: liveInterval,
		conns: map[net.Conn]*liveConn{},
		wake:  make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	var changes <-chan struct{}
	if opts.Changes != nil {
		changes, l.unsub = opts.Changes.Subscribe()
	}
	l.next = time.Now().Add(l.interval)
	go l.run(changes)
	return l
}

// ConnState is the hook for http.Server.ConnState (HTTP/1.1 and HTTP/2):
// it tracks each TLS connection once its handshake is done, and forgets it
// when it is closed or hijacked. A server that has a ConnState hook of its
// own calls this one from it. A hijacked connection (a WebSocket, say) is
// the handler's: pass it to Track to keep it under live revocation.
func (l *LiveConns) ConnState(c net.Conn, state http.ConnState) {
	switch state {
	case http.StateActive, http.StateIdle:
		tc, ok := c.(*tls.Conn)
		if !ok {
			return
		}
		l.mu.Lock()
		_, known := l.conns[c]
		l.mu.Unlock()
		if !known {
			// Both states come after the handshake (net/http runs it
			// first), so ConnectionState does not wait.
			l.Track(c, tc.ConnectionState())
		}
	case http.StateClosed, http.StateHijacked:
		l.forget(c)
	}
}

// Track decides conn's client key once more, from cs, the state of the
// handshake conn completed: if the handshake would refuse it now, conn is
// closed at once; if the key is admitted, conn is decided again until it
// is closed by LiveConns or until untrack. A client let in unauthenticated
// (ServerOptions.AllowUnknown), never admitted by a key, is closed only if
// its key is revoked — Server.RequireAuthenticated turns its requests
// away — and is decided as the others once its key is admitted. Call
// untrack when conn ends.
func (l *LiveConns) Track(conn net.Conn, cs tls.ConnectionState) (untrack func()) {
	c := &liveConn{conn: conn, cs: cs, remote: addrOf(conn)}
	l.mu.Lock()
	l.conns[conn] = c
	l.mu.Unlock()
	untrack = func() { l.forget(conn) }
	// Decided after it is in the set: a change from now on is seen by a
	// sweep, and one before by this decision.
	p, err := l.srv.verify(cs, c.remote)
	if err != nil {
		l.closeConn(c, err)
		return untrack
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c.name, c.unauthenticated = p.Name(), p.Err != nil
	if !c.unauthenticated && p.Entry != nil && !p.Entry.Expires.IsZero() {
		if p.Entry.Expires.Before(l.next) {
			l.next = p.Entry.Expires
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
	}
	return untrack
}

// Close stops LiveConns: the open connections are no longer decided again
// (they stay open). It is safe to call more than once.
func (l *LiveConns) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		<-l.stopped
		if l.unsub != nil {
			l.unsub()
		}
	})
	return nil
}

func (l *LiveConns) forget(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// run sweeps on each change of the store and when the next sweep is due.
func (l *LiveConns) run(changes <-chan struct{}) {
	defer close(l.stopped)
	t := time.NewTimer(l.interval)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-l.wake:
			l.mu.Lock()
			t.Reset(time.Until(l.next))
			l.mu.Unlock()
			continue
		case <-changes:
		case <-t.C:
		}
		t.Reset(time.Until(l.sweep()))
	}
}

// sweep decides every tracked connection again, closes those whose key is
// no longer admitted, and returns when the next sweep is due: in
// l.interval, or at the first expiry before that.
func (l *LiveConns) sweep() time.Time {
	start := time.Now()
	l.mu.Lock()
	conns := make([]*liveConn, 0, len(l.conns))
	for _, c := range l.conns {
		if !c.closed {
			conns = append(conns, c)
		}
	}
	l.mu.Unlock()
	next := start.Add(l.interval)
	for _, c := range conns {
		expires, err := l.recheck(c)
		if err != nil {
			l.closeConn(c, err)
			continue
		}
		if !expires.IsZero() && expires.Before(next) {
			next = expires
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// A connection tracked during the sweep may expire sooner.
	if l.next.After(start) && l.next.Before(next) {
		next = l.next
	}
	l.next = next
	l.sweeps++
	return next
}

// recheck decides c again; an error means it must be closed. A connection
// admitted by its key is closed when it is no longer authenticated; one let
// in unauthenticated (AllowUnknown), only when the handshake would now
// refuse it (a revoked key), and once its key is admitted (enrolled), it is
// tracked as admitted. It returns the expiry of the entry that admits c.
func (l *LiveConns) recheck(c *liveConn) (expires time.Time, err error) {
	l.mu.Lock()
	unauthenticated := c.unauthenticated
	l.mu.Unlock()
	p, err := l.srv.verify(c.cs, c.remote)
	switch {
	case err != nil:
		return time.Time{}, err
	case p.Err != nil && !unauthenticated:
		return time.Time{}, p.Err
	case p.Err != nil:
		return time.Time{}, nil
	case unauthenticated:
		l.mu.Lock()
		c.unauthenticated, c.name = false, p.Name()
		l.mu.Unlock()
	}
	if p.Entry != nil {
		return p.Entry.Expires, nil
	}
	return time.Time{}, nil
}

// closeConn marks c closed, logs why and closes its underlying connection
// (without waiting on a TLS close_notify a stalled peer would not read).
func (l *LiveConns) closeConn(c *liveConn, err error) {
	l.mu.Lock()
	first := l.conns[c.conn] == c && !c.closed
	c.closed = true
	name := c.name
	l.mu.Unlock()
	if !first {
		return
	}
	fp := ""
	if len(c.cs.PeerCertificates) > 0 {
		fp = jwk.FormatFingerprint(sha256.Sum256(c.cs.PeerCertificates[0].RawSubjectPublicKeyInfo))
	}
	l.log.Warn(MsgNoLongerAdmitted, "remote", c.conn.RemoteAddr().String(), "fingerprint", fp, "name", name, "reason", err.Error())
	if nc, ok := c.conn.(interface{ NetConn() net.Conn }); ok {
		_ = nc.NetConn().Close()
		return
	}
	_ = c.conn.Close()
}
