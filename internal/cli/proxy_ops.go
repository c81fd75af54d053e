package cli

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keytool/keytool/internal/netsource"
	"github.com/keytool/keytool/internal/sdnotify"
	"github.com/keytool/keytool/proxy"
	"golang.org/x/net/netutil"
)

// proxyOps is what keytool proxy tells operators: /healthz, /readyz and
// /metrics on --metrics-listen, and systemd's readiness protocol
// ($NOTIFY_SOCKET: READY=1 once the trust is loaded and the proxy
// listens, STOPPING=1 when it starts draining, WATCHDOG=1 while it is
// ready or draining).
type proxyOps struct {
	log     *slog.Logger
	health  *proxy.Health
	metrics *proxy.Metrics // nil without --metrics-listen
	addr    string
	ln      net.Listener
	srv     *http.Server
	stopDog chan struct{}
	drain   atomic.Bool // the drain has begun
	closers []io.Closer // closed by stop: the enrollment handler, whose pending counts of refusals are logged then
	// afterDrain runs once the drain has ended, with what is left of it
	// (--drain-timeout; a second signal ends it): the admin index's write.
	afterDrain []func(context.Context)
	// The bounds of the operators' endpoint (opsBounds), but in tests.
	bounds opsBounds
}

// opsBounds bound --metrics-listen's server, which anyone who reaches it
// may use, no key asked. Without them a keep-alive connection left idle
// was held for ever, each a descriptor of the proxy's own; and a bound on
// connections alone is held by whoever keeps that many open, so that a
// health probe waits behind them and the orchestrator restarts a healthy
// proxy (found by review, 2026-12-05). So: a connection serves one
// request and is closed (Prometheus and probes ask once a connection
// anyway); one source (netsource: an IPv4 address, an IPv6 /64) has at
// most perSource open, the next closed at once; all together at most
// total, the next waiting in the kernel's queue; a request's head must
// come within header.
type opsBounds struct {
	total, perSource int
	header           time.Duration
}

var defaultOpsBounds = opsBounds{total: 256, perSource: 8, header: 5 * time.Second}

func newProxyOps(addr string, log *slog.Logger) *proxyOps {
	o := &proxyOps{log: log, addr: addr, health: proxy.NewHealth(), bounds: defaultOpsBounds}
	if addr != "" {
		o.metrics = proxy.NewMetrics()
	}
	return o
}

// store adds a trust store to the readiness check and the metrics.
func (o *proxyOps) store(name string, s proxy.StoreStatus) {
	o.health.AddStore(name, s)
	if o.metrics != nil {
		o.metrics.WatchStore(name, s)
	}
}

// follower adds the metrics of --store's live view, if it has any (a
// MeteredFollower: etcd's staleness), to /metrics.
func (o *proxyOps) follower(f Follower) error {
	m, ok := f.(MeteredFollower)
	if !ok || o.metrics == nil {
		return nil
	}
	return o.metrics.Register(m.Collector())
}

// identity adds the identity's certificate to the readiness check.
func (o *proxyOps) identity(cert *tls.Certificate) {
	o.health.SetIdentity(proxy.CertificateValid(cert))
}

// listen opens --metrics-listen before the proxy's own listener, so that
// a port taken is an error at start.
func (o *proxyOps) listen() error {
	if o.addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	o.ln = ln
	return nil
}

// start serves the operators' endpoints and tells systemd the proxy is
// ready; the proxy listens from now on. Its goroutines live until stop,
// after the drain (the goroutine counts of "listening" and "stopped
// accepting" include them both times).
func (o *proxyOps) start() {
	o.health.SetServing(true)
	if o.ln != nil {
		o.srv = &http.Server{
			Handler:           proxy.OpsHandler(o.health, o.metrics),
			ReadHeaderTimeout: o.bounds.header,
			WriteTimeout:      10 * time.Second,
			MaxHeaderBytes:    16 << 10,
		}
		o.srv.SetKeepAlivesEnabled(false)
		ln := netutil.LimitListener(&perSourceListener{Listener: o.ln, max: netsource.Limit{Max: o.bounds.perSource}}, o.bounds.total)
		go func() { _ = o.srv.Serve(ln) }()
		o.log.Info("serving health and metrics", "addr", o.ln.Addr().String(), "paths", "/healthz /readyz /metrics")
	}
	o.notify(sdnotify.Ready, "STATUS=listening")
	if every := sdnotify.WatchdogInterval(); every > 0 {
		o.stopDog = make(chan struct{})
		go o.watchdog(every / 2)
	}
}

// watchdog tells systemd the proxy is healthy, every interval, while it
// is ready (Health.Ready: trust loaded, no revocation input failing
// closed, the identity's certificate valid, listening) or draining. A
// proxy not ready for a whole WatchdogSec= — refusing every client, with
// no prospect of that changing by itself — is left to systemd's watchdog
// action and Restart=, which start it again from its files (and tell the
// operator). The first ping skipped, and the first after, are logged.
func (o *proxyOps) watchdog(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	skipping := false
	for {
		select {
		case <-o.stopDog:
			return
		case <-t.C:
		}
		if err := o.health.Ready(); err != nil && !o.drain.Load() {
			if !skipping {
				o.log.Warn("not ready: not telling systemd's watchdog the proxy is healthy", "reason", strings.ReplaceAll(err.Error(), "\n", "; "))
				skipping = true
			}
			continue
		}
		if skipping {
			o.log.Info("ready again: telling systemd's watchdog the proxy is healthy")
			skipping = false
		}
		o.notify(sdnotify.Watchdog)
	}
}

// draining is called when the drain begins: not ready any more.
func (o *proxyOps) draining() {
	o.drain.Store(true)
	o.health.SetServing(false)
	o.notify(sdnotify.Stopping, "STATUS=draining")
}

// stop closes the closers, and ends the operators' endpoints and the watchdog.
func (o *proxyOps) stop() {
	for _, c := range o.closers {
		_ = c.Close()
	}
	if o.stopDog != nil {
		close(o.stopDog)
	}
	if o.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = o.srv.Shutdown(ctx)
	} else if o.ln != nil {
		o.ln.Close()
	}
}

func (o *proxyOps) notify(state ...string) {
	if _, err := sdnotify.Notify(state...); err != nil {
		o.log.Warn("cannot notify systemd", "socket_env", "NOTIFY_SOCKET", "error", err.Error())
	}
}

// opsRunner is the proxy with its drain announced first: /readyz fails
// and systemd hears STOPPING=1 as soon as the proxy stops accepting.
type opsRunner struct {
	runner
	ops *proxyOps
}

func (r opsRunner) Shutdown(ctx context.Context, attrs ...any) error {
	r.ops.draining()
	err := r.runner.Shutdown(ctx, attrs...)
	for _, f := range r.ops.afterDrain {
		f(ctx)
	}
	return err
}

// perSourceListener closes at once a connection whose source has
// max.Max open already.
type perSourceListener struct {
	net.Listener
	max netsource.Limit
}

func (l *perSourceListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, perr := netip.ParseAddrPort(c.RemoteAddr().String())
		if perr != nil {
			return c, nil // no IP address: nothing to count it against
		}
		done, ok := l.max.Start(ap.Addr())
		if !ok {
			c.Close()
			continue
		}
		return &sourceConn{Conn: c, done: done}, nil
	}
}

// sourceConn is a connection perSourceListener counts until it is closed.
type sourceConn struct {
	net.Conn
	done func() // netsource.Limit's: once, however often called
}

func (c *sourceConn) Close() error {
	err := c.Conn.Close()
	c.done()
	return err
}
