package enroll

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/keytool/keytool/tlsbridge"
)

// WithEnrollment routes a tlsbridge server's HTTP requests: Path to the
// enrollment handler h, for any client that finished the handshake, and
// everything else to app, behind srv.RequireAuthenticated. srv must be in
// AllowUnknown mode for clients to reach h before they are authorized.
//
//	srv, _ := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: keys, AllowUnknown: true})
//	h, _ := enroll.NewHandler(enroll.HandlerOptions{Dir: enroll.InvitesDir(home), Clients: keys, ServerKey: id.Key, Logger: log})
//	httpSrv := &http.Server{Handler: enroll.WithEnrollment(srv, h, app), TLSConfig: srv.TLSConfig()}
func WithEnrollment(srv *tlsbridge.Server, h http.Handler, app http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Path, srv.Middleware(enrollGate(h)))
	mux.Handle("/", srv.RequireAuthenticated(app))
	return mux
}

// enrollGate passes to h the clients that may enroll — unknown ones
// (tlsbridge.Peer.MayEnroll), and authenticated ones, which the handler
// answers itself — and answers every other one 403 with its reason: a
// revoked, expired or wrongly placed key is not invited to enroll.
func enrollGate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := tlsbridge.PeerFromContext(r.Context())
		if p != nil && !p.Authenticated() && !p.MayEnroll() {
			tlsbridge.WriteForbidden(w, tlsbridge.ReasonOf(p.Err), &p.SPKIHash)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Timeouts of ServeConn: an unauthenticated client gets little time.
const (
	serveReadTimeout  = 15 * time.Second
	serveWriteTimeout = 15 * time.Second
)

// ServeConn serves HTTP on one connection — a *tls.Conn whose handshake is
// done, from a client that is not authenticated — with h (a *Handler),
// until the client has made one request or goes quiet, and closes conn.
// It returns when the connection is closed; cancelling ctx closes it.
//
// It is for servers that are not HTTP servers, such as a TCP proxy: the
// handshake admits unknown clients (tlsbridge.ServerOptions.AllowUnknown),
// authenticated ones get the usual service, and the others are handed to
// ServeConn, where they can enroll and nothing else. conn must be the
// *tls.Conn itself (not a wrapper), so that the handler sees the client's
// certificate in r.TLS.
func ServeConn(ctx context.Context, conn net.Conn, h http.Handler) error {
	done := make(chan struct{})
	var once sync.Once
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: serveReadTimeout,
		ReadTimeout:       serveReadTimeout,
		WriteTimeout:      serveWriteTimeout,
		IdleTimeout:       time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          log.New(io.Discard, "", 0),
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateClosed || s == http.StateHijacked {
				once.Do(func() { close(done) })
			}
		},
	}
	srv.SetKeepAlivesEnabled(false) // one request, then close
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	err := srv.Serve(&oneConnListener{conn: conn, done: done})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// oneConnListener hands out one connection, then waits for it to close.
type oneConnListener struct {
	mu   sync.Mutex
	conn net.Conn
	done chan struct{}
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.conn
	l.conn = nil
	l.mu.Unlock()
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error { return nil }

func (l *oneConnListener) Addr() net.Addr { return dummyAddr{} }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "tcp" }
func (dummyAddr) String() string  { return "enroll.ServeConn" }
