package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/enroll"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// proxyOptions are the flags of keytool proxy.
type proxyOptions struct {
	listen, target   string
	client           bool
	hosts            []string
	handshakeTimeout time.Duration
	drainTimeout     time.Duration
	enroll           bool
}

// proxyCommand makes the proxy command, with flag variables of its own.
func proxyCommand() *command {
	var o proxyOptions
	return &command{
		name:    "proxy",
		args:    "--listen ADDR --target ADDR [--client | --enroll]",
		summary: "put mutual TLS in front of any TCP server (or, with --client, before any TCP client)",
		help: `Server mode (the default): accepts mutual TLS on --listen, admits the clients
whose keys the home authorizes (authorized_keys.d, authorized_keys.json;
revoked_keys.d refuses; ca.pem adds PKI mode), and connects each admitted
client to --target over plain TCP. Wraps any TCP server: an HTTP server,
Redis, a database. The trust files are watched: a key authorized, removed
or revoked applies from the next connection, without a restart.

--client: accepts plain TCP on --listen and connects each connection to
--target over mutual TLS, presenting the home's identity and checking the
target's key against trusted_hosts.d under --strict-host-keys. The target
is checked once at start, so that an unknown host's question is asked then
(on the terminal) and not in the middle of traffic; without a terminal an
unknown host is refused with the 'keytool trust-host' command to run.

Every connection is logged on standard error (log/slog text): the remote
address, the peer key's fingerprint, its authorized-keys entry name or why
it was refused, the bytes copied each way and the duration. Problems in
the trust files are logged with the file's name. The first line says
"listening" with the actual address (so --listen 127.0.0.1:0 works).

--enroll (server mode): clients whose key is not authorized may finish the
handshake, but only to enroll with a token from 'keytool invite' ('keytool
join'); any other request of theirs gets an HTTP 403 on that connection
instead of a TLS alert. Revoked keys are refused in the handshake all the
same. Off by default.

SIGTERM or SIGINT: stop accepting, let open connections finish (at most
--drain-timeout, then they are cut), exit 0. A second signal cuts them at
once.

Example:
  keytool -H /etc/keytool proxy --listen :8443 --target 127.0.0.1:8080
  keytool proxy --client --listen 127.0.0.1:8080 --target db.example:8443`,
		flags: func(fs *pflag.FlagSet, _ *cli) {
			fs.StringVar(&o.listen, "listen", "", "accept connections on `ADDR` (host:port; port 0 picks one)")
			fs.StringVar(&o.target, "target", "", "connect each connection to `ADDR` (host:port)")
			fs.BoolVar(&o.client, "client", false, "client mode: plain TCP in, mutual TLS out to --target")
			fs.StringSliceVar(&o.hosts, "host", nil, "server mode: put `NAMES` (DNS names, IPs; comma-separated) in the presented certificate")
			fs.DurationVar(&o.handshakeTimeout, "handshake-timeout", 10*time.Second, "give up on a TLS handshake after `DURATION`")
			fs.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM, wait at most `DURATION` for open connections")
			fs.BoolVar(&o.enroll, "enroll", false, "server mode: serve enrollment (keytool join) to clients whose key is not authorized")
		},
		run: func(c *cli, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			if o.listen == "" || o.target == "" {
				return usagef("--listen ADDR and --target ADDR are required")
			}
			for _, a := range []string{o.listen, o.target} {
				if _, _, err := net.SplitHostPort(a); err != nil {
					return usagef("%q is not host:port: %v", a, err)
				}
			}
			if o.client && o.enroll {
				return usagef("--enroll serves enrollment in server mode; it has no use with --client")
			}
			if o.client && len(o.hosts) > 0 {
				return usagef("--host names the server's certificate; it has no use with --client")
			}
			return c.proxy(o)
		},
	}
}

// proxy runs until a signal, then drains.
func (c *cli) proxy(o proxyOptions) error {
	log := c.logger()
	// The stores watch their files until the very end, draining included.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var (
		handle func(ctx context.Context, conn net.Conn)
		mode   string
	)
	if o.client {
		p, err := c.newProxyClient(ctx, o, log)
		if err != nil {
			return err
		}
		handle, mode = p.handle, "client"
	} else {
		p, err := c.newProxyServer(ctx, o, log)
		if err != nil {
			return err
		}
		handle, mode = p.handle, "server"
	}

	// Signals are caught from before "listening" is logged: whoever reads
	// that line may signal at once.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(signals)
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	// The goroutine counts here and when the proxy stops accepting, with
	// no connection open, are the same unless something leaked.
	log.Info("listening", "addr", ln.Addr().String(), "target", o.target, "mode", mode, "goroutines", runtime.NumGoroutine())

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		active = map[net.Conn]struct{}{}
	)
	// connCtx is cancelled to cut the connections still open after the
	// drain.
	connCtx, cut := context.WithCancel(ctx)
	defer cut()
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		var backoff time.Duration
		for {
			conn, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return // the signal
			}
			if err != nil {
				// Out of file descriptors and the like: wait, and go on
				// serving the connections already open.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				log.Error("accept failed; retrying", "error", err.Error(), "retry_in", backoff.String())
				time.Sleep(backoff)
				continue
			}
			backoff = 0
			mu.Lock()
			active[conn] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(active, conn)
					mu.Unlock()
				}()
				handle(connCtx, conn)
			}()
		}
	}()

	sig := <-signals
	ln.Close()
	<-acceptDone
	mu.Lock()
	n := len(active)
	mu.Unlock()
	log.Info("stopped accepting; draining open connections", "signal", sig.String(), "open", n, "timeout", o.drainTimeout.String(), "goroutines", runtime.NumGoroutine())

	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	timer := time.NewTimer(o.drainTimeout)
	defer timer.Stop()
	select {
	case <-drained:
		log.Info("drained; exiting")
		return nil
	case <-timer.C:
		log.Warn("drain timeout: cutting the connections still open", "timeout", o.drainTimeout.String())
	case sig = <-signals:
		log.Warn("second signal: cutting the connections still open", "signal", sig.String())
	}
	cut()
	mu.Lock()
	for conn := range active {
		conn.Close()
	}
	mu.Unlock()
	<-drained
	log.Info("exiting")
	return nil
}

// proxyServer is server mode: mutual TLS in, plain TCP out.
type proxyServer struct {
	o      proxyOptions
	log    *slog.Logger
	srv    *tlsbridge.Server
	cfg    *tls.Config
	store  *authkeys.Store
	enroll http.Handler // nil unless --enroll
}

func (c *cli) newProxyServer(ctx context.Context, o proxyOptions, log *slog.Logger) (*proxyServer, error) {
	id, err := c.loadIdentity(o.hosts...)
	if err != nil {
		return nil, err
	}
	opts := authkeys.HomeOptions(c.home)
	opts.Logger = log
	store, err := authkeys.Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	pki, err := c.pki()
	if err != nil {
		return nil, err
	}
	srv, err := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: store, PKI: pki, AllowUnknown: o.enroll})
	if err != nil {
		return nil, err
	}
	var enrollHandler http.Handler
	if o.enroll {
		h, err := enroll.NewHandler(enroll.HandlerOptions{Dir: enroll.InvitesDir(c.home), Clients: store, ServerKey: id.Key, Logger: log})
		if err != nil {
			return nil, err
		}
		enrollHandler = h
		log.Info("serving enrollment", "path", enroll.Path, "invitations", enroll.InvitesDir(c.home))
	}
	n := len(store.Entries())
	log.Info("identity", "fingerprint", id.Key.Fingerprint(), "authorized_keys", n, "pki", pki != nil)
	if n == 0 && pki == nil && !o.enroll {
		log.Warn("no client key is authorized yet: every client is refused until one is (keytool authorize --name NAME FILE)", "dir", opts.Dirs[0])
	}
	return &proxyServer{o: o, log: log, srv: srv, cfg: srv.TLSConfig(), store: store, enroll: enrollHandler}, nil
}

func (p *proxyServer) handle(ctx context.Context, raw net.Conn) {
	start := time.Now()
	defer raw.Close()
	remote := raw.RemoteAddr().String()
	conn := tls.Server(raw, p.cfg)
	// A deadline, so that a socket that never completes its handshake
	// cannot hold a goroutine (nor the drain).
	_ = raw.SetDeadline(start.Add(p.o.handshakeTimeout))
	hctx, cancel := context.WithTimeout(ctx, p.o.handshakeTimeout)
	err := conn.HandshakeContext(hctx)
	cancel()
	cs := conn.ConnectionState()
	fp := ""
	if len(cs.PeerCertificates) > 0 {
		fp = jwk.FormatFingerprint(sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo))
	}
	if err != nil {
		// Our refusal is "refused"; the client giving up (it did not
		// trust our key, or went away) or a timeout is "handshake failed".
		msg, reason := "refused", err.Error()
		var op *net.OpError
		var ne net.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
			msg, reason = "handshake failed", fmt.Sprintf("no handshake within %v (--handshake-timeout)", p.o.handshakeTimeout)
		case (errors.As(err, &op) && op.Op == "remote error") || errors.Is(err, io.EOF) ||
			errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.Canceled):
			msg = "handshake failed"
		}
		p.log.Warn(msg, "remote", remote, "fingerprint", fp, "reason", reason, "duration", time.Since(start).Round(time.Millisecond).String())
		return
	}
	_ = raw.SetDeadline(time.Time{})
	// The handshake decided; ask again for the entry it matched (and fail
	// closed if the key was removed in between).
	peer, err := p.srv.Peer(&cs, remoteAddr(raw))
	if err == nil && peer.Err != nil && p.enroll != nil {
		// --enroll: an unknown client may enroll on this connection, and
		// do nothing else.
		p.log.Info("not authorized: serving enrollment only", "remote", remote, "fingerprint", fp, "reason", peer.Err.Error())
		_ = enroll.ServeConn(ctx, conn, p.enroll)
		return
	}
	if err == nil && peer.Err != nil {
		err = peer.Err
	}
	if err != nil {
		p.log.Warn("refused", "remote", remote, "fingerprint", fp, "reason", err.Error(), "duration", time.Since(start).Round(time.Millisecond).String())
		return
	}
	name := peer.Name()
	attrs := []any{"remote", remote, "fingerprint", fp, "name", name}
	if peer.ViaCA {
		attrs = append(attrs, "via", "ca", "subject", peer.Certificate.Subject.String())
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, p.o.handshakeTimeout)
	target, err := d.DialContext(dctx, "tcp", p.o.target)
	cancel()
	if err != nil {
		p.log.Error("target unreachable", append(attrs, "target", p.o.target, "error", err.Error())...)
		return
	}
	defer target.Close()
	p.log.Info("accepted", attrs...)
	in, out := pipe(ctx, conn, target)
	p.log.Info("closed", append(attrs, "bytes_in", in, "bytes_out", out, "duration", time.Since(start).Round(time.Millisecond).String())...)
}

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// proxyClient is client mode: plain TCP in, mutual TLS out.
type proxyClient struct {
	o      proxyOptions
	log    *slog.Logger
	client *tlsbridge.Client
	id     *tlsbridge.Identity
	hosts  *knownhosts.Store
	pki    bool
	c      *cli
}

// startupPrompt asks on the terminal while the proxy starts, and refuses
// (with the trust-host command) afterwards, so that no question appears in
// the middle of traffic. A key accepted "once" at start is accepted again
// for the life of the process, and only that key.
type startupPrompt struct {
	mu      sync.Mutex
	started bool
	once    map[string]string // address → fingerprint accepted once
}

func (s *startupPrompt) AskUnknownHost(h tlsbridge.UnknownHost) (tlsbridge.Answer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fp, ok := s.once[h.Addr]; ok && fp == h.Key.Fingerprint() {
		return tlsbridge.Once, nil
	}
	if s.started {
		return tlsbridge.NonInteractive{}.AskUnknownHost(h)
	}
	a, err := tlsbridge.Terminal{}.AskUnknownHost(h)
	if err == nil && a == tlsbridge.Once {
		s.once[h.Addr] = h.Key.Fingerprint()
	}
	return a, err
}

func (c *cli) newProxyClient(ctx context.Context, o proxyOptions, log *slog.Logger) (*proxyClient, error) {
	hopts := knownhosts.HomeOptions(c.home)
	hopts.Logger = log
	hosts, err := knownhosts.Open(ctx, hopts)
	if err != nil {
		return nil, err
	}
	prompt := &startupPrompt{once: map[string]string{}}
	client, id, pki, err := c.newClient(hosts, prompt, log)
	if err != nil {
		return nil, err
	}
	p := &proxyClient{o: o, log: log, client: client, id: id, hosts: hosts, pki: pki != nil, c: c}
	log.Info("identity", "fingerprint", id.Key.Fingerprint())
	err = p.probe(ctx)
	prompt.mu.Lock()
	prompt.started = true
	prompt.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return p, nil
}

// probe connects to the target once at start: an unknown host is asked
// about now, and a host-key problem or a refusal of our key stops the
// proxy before it accepts anything. A target that cannot be reached is
// only a warning: it is checked again at each connection.
func (p *proxyClient) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*p.o.handshakeTimeout+time.Minute) // the prompt may wait for a human
	defer cancel()
	conn, err := p.client.DialContext(ctx, "tcp", p.o.target)
	if err != nil {
		if isHandshakeError(err) {
			return p.c.explainRefusal(err, p.o.target, p.id)
		}
		p.log.Warn("target unreachable at start; it will be checked at each connection", "target", p.o.target, "error", err.Error())
		return nil
	}
	defer conn.Close()
	// In TLS 1.3 the server decides on our key after our handshake is
	// done: its refusal arrives as an alert on the first read.
	if err := awaitRefusal(conn, 500*time.Millisecond); err != nil {
		return p.c.explainRefusal(err, p.o.target, p.id)
	}
	p.log.Info("target verified", "target", p.o.target, "fingerprint", serverFingerprint(conn), "trust", p.trust(conn))
	return nil
}

// awaitRefusal reads from a fresh connection for a moment: an alert is
// the server refusing us; data, the end of the stream or silence are not.
func awaitRefusal(conn *tls.Conn, wait time.Duration) error {
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	defer conn.SetReadDeadline(time.Time{})
	var b [1]byte
	_, err := conn.Read(b[:])
	var ne net.Error
	if err == nil || errors.Is(err, io.EOF) || (errors.As(err, &ne) && ne.Timeout()) {
		return nil
	}
	return err
}

// isHandshakeError tells a TLS or trust failure (final: retrying will not
// help) from a network one (the target is down, slow or went away).
func isHandshakeError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, syscall.ECONNRESET) &&
		!errors.Is(err, syscall.EPIPE) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

// serverFingerprint is the fingerprint of the key the server presented.
func serverFingerprint(conn *tls.Conn) string {
	cs := conn.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return jwk.FormatFingerprint(sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo))
}

// trust says why the server's key was accepted: pinned, by the CA (PKI),
// or not verified (insecure, or accepted once).
func (p *proxyClient) trust(conn *tls.Conn) string {
	return hostTrust(conn, p.hosts, p.o.target, p.pki, "accepted once")
}

// hostTrust says why conn's server key was accepted: "pinned", "PKI" (the
// CA), else otherwise.
func hostTrust(conn *tls.Conn, hosts *knownhosts.Store, addr string, pki bool, otherwise string) string {
	cs := conn.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return "unknown"
	}
	if hosts.CheckSPKI(addr, sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)) == nil {
		return "pinned"
	}
	if pki {
		return "PKI"
	}
	return otherwise
}

func (p *proxyClient) handle(ctx context.Context, raw net.Conn) {
	start := time.Now()
	defer raw.Close()
	attrs := []any{"remote", raw.RemoteAddr().String(), "target", p.o.target}
	dctx, cancel := context.WithTimeout(ctx, p.o.handshakeTimeout)
	conn, err := p.client.DialContext(dctx, "tcp", p.o.target)
	cancel()
	if err != nil {
		p.log.Error("target refused", append(attrs, "reason", p.c.explainRefusal(err, p.o.target, p.id).Error())...)
		return
	}
	defer conn.Close()
	attrs = append(attrs, "fingerprint", serverFingerprint(conn), "trust", p.trust(conn))
	p.log.Info("connected", attrs...)
	out, in := pipe(ctx, conn, raw)
	p.log.Info("closed", append(attrs, "bytes_in", in, "bytes_out", out, "duration", time.Since(start).Round(time.Millisecond).String())...)
}

// halfCloser is a connection whose write side can be closed alone:
// *net.TCPConn (FIN) and *tls.Conn (close_notify).
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// pipe copies a→b and b→a until both directions end, half-closing each
// destination when its source ends, and returns the bytes copied from a
// to b and from b to a. An error in either direction, or ctx ending,
// closes both connections.
func pipe(ctx context.Context, a, b net.Conn) (aToB, bToA int64) {
	var n [2]atomic.Int64
	done := make(chan error, 2)
	cp := func(dst, src net.Conn, n *atomic.Int64) {
		k, err := io.Copy(dst, src)
		n.Store(k)
		if hc, ok := dst.(halfCloser); ok && err == nil {
			if cerr := hc.CloseWrite(); cerr != nil {
				err = cerr
			}
		} else if err == nil {
			err = errors.New("cannot half-close")
		}
		done <- err
	}
	go cp(b, a, &n[0])
	go cp(a, b, &n[1])
	for i := 0; i < 2; i++ {
		select {
		case err := <-done:
			if err != nil {
				a.Close()
				b.Close()
			}
		case <-ctx.Done():
			a.Close()
			b.Close()
			i-- // still wait for both copies
			ctx = context.Background()
		}
	}
	a.Close()
	b.Close()
	return n[0].Load(), n[1].Load()
}
