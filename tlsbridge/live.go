package tlsbridge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/live"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// liveInterval is how often LiveConns decides the open connections again
// when a decision can change without a change of the store being told:
// in PKI mode (the CA's CRL, read at most once a second by PKI), and
// without LiveOptions.Changes.
const liveInterval = time.Second

// MsgNoLongerAdmitted is the message of the log line LiveConns writes for
// each connection it closes, with the attributes remote, fingerprint,
// name (server side) or addr (client side), and reason.
const MsgNoLongerAdmitted = live.Msg

// Changes is a trust store that tells of its changes: *authkeys.Store,
// *knownhosts.Store. OnChange calls fn after each reload that published
// a new snapshot (inside the reload: fn returns soon), until stop.
type Changes interface {
	OnChange(fn func(authkeys.Change)) (stop func())
}

// LiveOptions configure Server.Live and Client.Live.
type LiveOptions struct {
	// Changes, if set, is the store the Server or Client decides with
	// (ServerOptions.Clients, ClientOptions.Hosts): each of its changes
	// decides the open connections again at once. Without it, they are
	// decided again every second.
	Changes Changes
	// Logger receives a warning for each connection closed
	// (MsgNoLongerAdmitted); nil means slog.Default().
	Logger *slog.Logger
}

// LiveConns closes the open connections whose peer's key stops being
// admitted (docs/design.md, "Live revocation").
//
// Server side (Server.Live): a client key removed, revoked, expired,
// outside its entry's "from" networks, a revocation input failing closed,
// or, in PKI mode, a certificate its CA's CRL now revokes. Client side
// (Client.Live): the server's key revoked, another key pinned for the
// address, a revocation input or a trusted-hosts file skipped, its pin
// removed (if it was pinned), or, for a server admitted by its CA, a
// certificate the CRL now revokes.
//
// Each connection's key is decided again, as its handshake decided it, on
// each change of LiveOptions.Changes, at its entry's "expires", and every
// second where a decision can change untold (PKI mode, no Changes); the
// connection of a key no longer admitted is closed at once — its
// underlying net.Conn, so that every HTTP/2 stream on it ends — and
// logged (MsgNoLongerAdmitted). Connections of keys still admitted are
// never touched. It holds no goroutine: a timer, armed only while a
// decision is due, runs each sweep.
//
// Servers: for net/http, set http.Server.ConnState to ConnState; for
// other servers, call Track for each connection after its handshake.
// Clients: dial with LiveConns.DialContext or LiveConns.Transport, or
// call TrackConn for a connection made otherwise. Close stops it.
type LiveConns struct {
	srv *Server // server side
	cli *Client // client side
	t   *live.Tracker

	unsub     func()
	closeOnce sync.Once

	mu    sync.Mutex
	known map[net.Conn]*liveConn // ConnState's connections
}

// Live starts closing the open connections whose client key stops being
// admitted (see LiveConns). Close the result when the server stops.
func (s *Server) Live(opts LiveOptions) *LiveConns {
	return newLive(opts, s.opts.PKI != nil, func(l *LiveConns) { l.srv = s })
}

// Live starts closing the open connections to servers whose key stops
// being trusted (see LiveConns): those made by the result's DialContext
// and Transport, and those given to its TrackConn. Close it when done.
func (c *Client) Live(opts LiveOptions) *LiveConns {
	return newLive(opts, c.opts.PKI != nil, func(l *LiveConns) { l.cli = c })
}

func newLive(opts LiveOptions, pki bool, side func(*LiveConns)) *LiveConns {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	var interval time.Duration
	if pki || opts.Changes == nil {
		interval = liveInterval
	}
	l := &LiveConns{t: live.New(live.Options{Interval: interval, Logger: log}), known: map[net.Conn]*liveConn{}}
	side(l)
	if opts.Changes != nil {
		l.unsub = opts.Changes.OnChange(func(authkeys.Change) { l.t.Changed() })
	}
	return l
}

// ConnState is the hook for http.Server.ConnState (HTTP/1.1 and HTTP/2):
// it tracks each TLS connection from its handshake, and forgets it when
// it is closed or hijacked. A connection opened (StateNew) is tracked
// when the Server's handshake admits its client (VerifyConnection, on
// the http.Server's TLSConfig: the Server's TLSConfig, or one given to
// its Configure), before it sends anything more: a client that sends no
// request, or an HTTP/2 client that holds back its preface, is closed as
// any other once its key is no longer admitted (net/http tells of no
// handshake's end: its next state comes with the first request, or the
// HTTP/2 preface, which a client may hold back as long as it likes). A
// connection whose handshake the Server did not decide is tracked at its
// first request (StateActive). A server that has a ConnState hook of its own calls
// this one from it. A hijacked connection (a WebSocket, say) is the
// handler's: pass it to Track to keep it under live revocation.
func (l *LiveConns) ConnState(c net.Conn, state http.ConnState) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return
	}
	switch state {
	case http.StateNew:
		l.mu.Lock()
		if _, known := l.known[c]; !known {
			l.known[c] = &liveConn{}
		}
		l.mu.Unlock()
		if l.srv != nil {
			// net/http runs the handshake after this hook returns.
			l.srv.awaitAdmission(tc.NetConn(), func(cs tls.ConnectionState) {
				l.track(c, false, func() tls.ConnectionState { return cs })
			})
		}
	case http.StateActive, http.StateIdle:
		// Both states come after the handshake (net/http runs it
		// first), so ConnectionState does not wait.
		l.track(c, true, tc.ConnectionState)
	case http.StateClosed, http.StateHijacked:
		if l.srv != nil {
			l.srv.forgetAdmission(tc.NetConn())
		}
		l.mu.Lock()
		e := l.known[c]
		delete(l.known, c)
		l.mu.Unlock()
		if e != nil && e.untrack != nil {
			e.untrack()
		}
	}
}

// liveConn is a connection ConnState knows.
type liveConn struct {
	claimed bool   // tracked, or being tracked
	untrack func() // set once tracked
}

// track tracks c, which ConnState knows (or, with add, knows now), once:
// its handshake gave cs(). c closed meanwhile is untracked at once.
func (l *LiveConns) track(c net.Conn, add bool, cs func() tls.ConnectionState) {
	l.mu.Lock()
	e := l.known[c]
	if e == nil && add {
		e = &liveConn{}
		l.known[c] = e // a late StateClosed finds it
	}
	if e == nil || e.claimed {
		l.mu.Unlock()
		return
	}
	e.claimed = true
	l.mu.Unlock()
	untrack := l.Track(c, cs())
	l.mu.Lock()
	if l.known[c] == e {
		e.untrack, untrack = untrack, nil
	}
	l.mu.Unlock()
	if untrack != nil {
		untrack() // closed while it was being tracked
	}
}

// awaitAdmission has fn called with the handshake's state when the
// Server's VerifyConnection admits the client on conn (the net.Conn under
// its *tls.Conn, GetConfigForClient's ClientHelloInfo.Conn), until
// forgetAdmission. It is called inside the handshake, before the client
// has proven it holds the key (CertificateVerify): a handshake that then
// fails ends the connection, whose StateClosed untracks it.
func (s *Server) awaitAdmission(conn net.Conn, fn func(tls.ConnectionState)) {
	s.awaitMu.Lock()
	defer s.awaitMu.Unlock()
	if s.awaiting == nil {
		s.awaiting = map[net.Conn][]func(tls.ConnectionState){}
	}
	s.awaiting[conn] = append(s.awaiting[conn], fn)
}

// forgetAdmission drops what awaits conn's admission: it is closing.
func (s *Server) forgetAdmission(conn net.Conn) {
	s.awaitMu.Lock()
	delete(s.awaiting, conn)
	s.awaitMu.Unlock()
}

// admitted calls, once, what awaits conn's admission, its handshake
// having given cs.
func (s *Server) admitted(conn net.Conn, cs tls.ConnectionState) {
	s.awaitMu.Lock()
	fns := s.awaiting[conn]
	delete(s.awaiting, conn)
	s.awaitMu.Unlock()
	for _, fn := range fns {
		fn(cs)
	}
}

// Track is TrackConn for a Server's connection: conn, whose handshake
// gave cs.
func (l *LiveConns) Track(conn net.Conn, cs tls.ConnectionState) (untrack func()) {
	return l.TrackConn(Tracked{Conn: conn, State: cs})
}

// Tracked is a connection for TrackConn.
type Tracked struct {
	// Conn is the connection; Close closes its underlying net.Conn
	// (without waiting on a TLS close_notify a stalled peer would not
	// read), unless Close is set. Its remote address is the client's for
	// a Server's "from" networks.
	Conn net.Conn
	// State is the state of the handshake Conn completed.
	State tls.ConnectionState
	// Addr is, for a Client's connection, the address it dialled
	// ("host:port", as its pins are looked up). Required there.
	Addr string
	// Close, if set, ends the connection in place of closing Conn (a
	// proxy that also closes the other side); reason says why.
	Close func(reason error)
	// Attrs, if set, are the log line's attributes (before "reason") in
	// place of remote, fingerprint and name or addr.
	Attrs []any
}

// TrackConn decides the peer key of an established connection once more:
// if the handshake would refuse it now, the connection is closed at once;
// else it is decided again until it is closed by LiveConns or until
// untrack. Call untrack when the connection ends.
//
// Server side, a client let in unauthenticated (ServerOptions.AllowUnknown),
// never admitted by a key, is closed only if its key is revoked —
// Server.RequireAuthenticated turns its requests away — and is decided as
// the others once its key is admitted. Client side, a server whose key was
// not pinned at the handshake (admitted by its CA, accepted once, the
// Insecure policy) is closed by the final refusals only (revoked, changed,
// skipped) and, if its CA admitted it, by its CA's refusal; once its key
// is pinned, it is closed if the pin goes.
//
// Which server-side clients were let in unauthenticated is known from
// TrackConn's own first decision: one whose key stopped being admitted
// between the caller's decision and TrackConn looks let in so. A caller
// under AllowUnknown that serves only authenticated clients without
// deciding each request again (a TCP proxy) decides once more after
// TrackConn (Server.Peer), as keytool proxy does.
func (l *LiveConns) TrackConn(c Tracked) (untrack func()) {
	var sum [32]byte
	if len(c.State.PeerCertificates) > 0 {
		sum = sha256.Sum256(c.State.PeerCertificates[0].RawSubjectPublicKeyInfo)
	}
	// The decision depends on the chain the peer showed and where it is:
	// connections that share them share a sweep's decision (live.Memo).
	h := sha256.New()
	for _, cert := range c.State.PeerCertificates {
		h.Write(cert.Raw)
	}
	var chain [32]byte
	h.Sum(chain[:0])
	lc := &live.Conn{Close: c.Close, Attrs: c.Attrs}
	if lc.Close == nil {
		lc.Close = func(error) { closeUnderlying(c.Conn) }
	}
	if l.srv != nil {
		lc.Decide, lc.Attrs = l.serverDecider(c, sum, chain)
	} else {
		lc.Decide = l.clientDecider(c, sum, chain)
		if lc.Attrs == nil {
			lc.Attrs = []any{"addr", c.Addr, "remote", remoteOf(c.Conn), "fingerprint", jwk.FormatFingerprint(sum)}
		}
	}
	return l.t.Track(lc)
}

// serverDecider decides a Server's client again (Server.verify, as the
// handshake did), and makes its log attributes unless c has its own.
func (l *LiveConns) serverDecider(c Tracked, sum, chain [32]byte) (func(*live.Memo) (time.Time, error), []any) {
	remote := addrOf(c.Conn)
	var key any = serverMemoKey{chain, remote} // boxed once, not at each sweep
	var unauthenticated, first atomic.Bool
	unauthenticated.Store(true) // until the first decision says otherwise
	first.Store(true)
	attrs := c.Attrs
	name := new(atomic.Pointer[string])
	if attrs == nil {
		attrs = []any{"remote", remoteOf(c.Conn), "fingerprint", jwk.FormatFingerprint(sum), "name", slog.AnyValue(liveName{name})}
	}
	return func(memo *live.Memo) (time.Time, error) {
		r := memo.Get(key, func() any {
			p, err := l.srv.verify(c.State, remote)
			return serverMemoVal{p, err}
		}).(serverMemoVal)
		p, err := r.p, r.err
		switch {
		case err != nil:
			return time.Time{}, err
		case first.Swap(false):
			unauthenticated.Store(p.Err != nil)
		case p.Err != nil && !unauthenticated.Load():
			return time.Time{}, p.Err
		}
		if p.Err != nil {
			return time.Time{}, nil // let in unauthenticated, and still so
		}
		unauthenticated.Store(false)
		if n := p.Name(); name.Load() == nil || *name.Load() != n {
			name.Store(&n)
		}
		if p.Entry != nil {
			return p.Entry.Expires, nil
		}
		return time.Time{}, nil
	}, attrs
}

// serverMemoKey and serverMemoVal are a Server's decision on a chain
// from an address, shared by a sweep's connections (Server.verify's
// result, which they read only).
type serverMemoKey struct {
	chain  [32]byte
	remote netip.Addr
}

type serverMemoVal struct {
	p   *Peer
	err error
}

// clientMemoKey and clientMemoVal are a Client's decision on a chain at an
// address: the store's, and its CA's when the store does not know the key.
type clientMemoKey struct {
	chain            [32]byte
	addr, serverName string
}

type clientMemoVal struct {
	d   knownhosts.Decision
	pki error // the CA's verdict, for a key the store does not know, in PKI mode
}

// liveName is the name of a tracked client's entry, as last decided, for
// the log line.
type liveName struct{ p *atomic.Pointer[string] }

func (n liveName) LogValue() slog.Value {
	if s := n.p.Load(); s != nil {
		return slog.StringValue(*s)
	}
	return slog.StringValue("")
}

// errNotClientConn closes a connection given to a Client's LiveConns
// without the address it dialled.
var errNotClientConn = errors.New("tlsbridge: a client's connection was tracked without the address it dialled (Tracked.Addr)")

// clientDecider decides a Client's server key again for the address it
// dialled: nil while it is admitted. A final refusal closes it; so does
// the loss of the pin it was admitted by (or later held), and, for a
// server its CA admitted, the CA's refusal now.
func (l *LiveConns) clientDecider(c Tracked, sum, chain [32]byte) func(*live.Memo) (time.Time, error) {
	var pinned, viaCA atomic.Bool
	var key any = clientMemoKey{chain, c.Addr, c.State.ServerName}
	return func(memo *live.Memo) (time.Time, error) {
		if c.Addr == "" || len(c.State.PeerCertificates) == 0 {
			return time.Time{}, errNotClientConn
		}
		r := memo.Get(key, func() any {
			d := l.cli.hostDecision(c.Addr, sum, c.State.PeerCertificates[0])
			v := clientMemoVal{d: d}
			if d.Verdict == knownhosts.Unknown && l.cli.opts.PKI != nil {
				_, v.pki = l.cli.verifyCA(c.State, c.Addr)
			}
			return v
		}).(clientMemoVal)
		d := r.d
		switch {
		case d.Verdict == knownhosts.Pinned:
			pinned.Store(true)
			return time.Time{}, nil
		case d.Verdict != knownhosts.Unknown || pinned.Load():
			return time.Time{}, knownhosts.ErrorOf(d, c.Addr, sum)
		case l.cli.opts.PKI != nil:
			// Unknown under PKI mode: the CAs of the client's purpose
			// decide — unless there was none when it connected, and the
			// policy admitted it, as without PKI mode. A CA that admitted
			// it and is gone since no longer vouches for it.
			err := r.pki
			var none *NoCAError
			if errors.As(err, &none) && !viaCA.Load() {
				return time.Time{}, nil
			}
			if err == nil {
				viaCA.Store(true)
			}
			return time.Time{}, err
		}
		return time.Time{}, nil
	}
}

// DialContext is Client.DialContext, and the connection is tracked until
// it is closed. On a Server's LiveConns, it is an error.
func (l *LiveConns) DialContext(ctx context.Context, network, addr string) (*tls.Conn, error) {
	return l.dial(ctx, network, addr, nil)
}

// dial is DialContext offering the application protocols protos (ALPN).
func (l *LiveConns) dial(ctx context.Context, network, addr string, protos []string) (*tls.Conn, error) {
	if l.cli == nil {
		return nil, errors.New("tlsbridge: DialContext on a server's LiveConns")
	}
	cfg, err := l.cli.TLSConfig(addr)
	if err != nil {
		return nil, err
	}
	cfg.NextProtos = protos
	raw, err := (&net.Dialer{Timeout: 30 * time.Second}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &untrackOnClose{Conn: raw}
	conn := tls.Client(tc, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	cs := conn.ConnectionState()
	l.cli.LearnAnnounced(addr, cs)
	tc.set(l.TrackConn(Tracked{Conn: conn, State: cs, Addr: addr}))
	return conn, nil
}

// Transport returns an http.Transport (HTTP/2, or HTTP/1.1 with a server
// that does not speak it) whose connections are made by DialContext:
// each is closed when its server's key stops being trusted, ending every
// request on it. It goes through no proxy (*ProxySetError) and makes no
// plain-text connection (*PlainTextError), as Client.Transport.
func (l *LiveConns) Transport() *http.Transport {
	t := transport(func(ctx context.Context, network, addr string) (net.Conn, error) {
		return l.dial(ctx, network, addr, []string{"h2", "http/1.1"})
	})
	t.ForceAttemptHTTP2 = true
	return t
}

// untrackOnClose is the net.Conn under a tracked tls.Conn: closing it
// (the program, or LiveConns) stops tracking.
type untrackOnClose struct {
	net.Conn
	mu      sync.Mutex
	closed  bool
	untrack func()
}

func (c *untrackOnClose) set(untrack func()) {
	c.mu.Lock()
	closed := c.closed
	if !closed {
		c.untrack = untrack
	}
	c.mu.Unlock()
	if closed {
		untrack()
	}
}

func (c *untrackOnClose) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	untrack := c.untrack
	c.closed, c.untrack = true, nil
	c.mu.Unlock()
	if untrack != nil {
		untrack()
	}
	return err
}

// LiveStats are the counts of a LiveConns, for metrics and benchmarks.
type LiveStats struct {
	Tracked int    // connections decided again now
	Sweeps  uint64 // times the open connections were all decided again
	Closed  uint64 // connections closed because their key stopped being admitted
}

// Stats returns the counts so far.
func (l *LiveConns) Stats() LiveStats {
	s := l.t.Stats()
	return LiveStats{Tracked: s.Tracked, Sweeps: s.Sweeps, Closed: s.Closed}
}

// Close stops LiveConns: the open connections are no longer decided again
// (they stay open). It is safe to call more than once.
func (l *LiveConns) Close() error {
	l.closeOnce.Do(func() {
		if l.unsub != nil {
			l.unsub()
		}
		l.t.Stop()
	})
	return nil
}

// closeUnderlying closes c's underlying connection (a *tls.Conn's
// net.Conn, without a close_notify a stalled peer would not read).
func closeUnderlying(c net.Conn) {
	if nc, ok := c.(interface{ NetConn() net.Conn }); ok {
		_ = nc.NetConn().Close()
		return
	}
	_ = c.Close()
}

// remoteOf is c's remote address for a log line.
func remoteOf(c net.Conn) string {
	if c == nil || c.RemoteAddr() == nil {
		return ""
	}
	return c.RemoteAddr().String()
}
