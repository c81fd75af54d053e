package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/keytool/keytool/internal/faillog"
	"github.com/keytool/keytool/tlsbridge"
)

// DefaultHandshakeTimeout is the handshake timeout of a proxy whose
// options leave it zero.
const DefaultHandshakeTimeout = 10 * time.Second

// DefaultIdleTimeout is the idle timeout of a proxy whose options leave
// it zero.
const DefaultIdleTimeout = 5 * time.Minute

// DefaultResponseHeaderTimeout is HTTP mode's ResponseHeaderTimeout when
// the options leave it zero: a minute, nginx's proxy_read_timeout, which
// operators of HTTP targets know. A target that holds its answer longer
// on purpose (a long poll that sends its headers only with the result)
// needs it raised.
const DefaultResponseHeaderTimeout = time.Minute

// DefaultRequestBodyTimeout is HTTP mode's RequestBodyTimeout when the
// options leave it zero: a minute between two reads of a request's
// body, nginx's client_body_timeout.
const DefaultRequestBodyTimeout = time.Minute

// maxAcceptBackoff bounds the wait between failed Accepts.
const maxAcceptBackoff = time.Second

// listener is the part that Server and Client share: the accept loop, the
// set of open connections, the drain and the cut. handle serves one
// accepted connection and closes it; it must return soon after its
// context ends.
type listener struct {
	log    *slog.Logger
	mode   string // "server" or "client", for the logs
	target string
	handle func(ctx context.Context, conn net.Conn, started func())
	// admit, if set, is asked about each connection first thing in its
	// goroutine (acceptLoop says why not in the loop): if it says no, the
	// connection is closed at once. Otherwise started, given to handle,
	// tells it that the connection is past its startup (Server: the
	// handshake, the enrollment gate); it is called at least once, and
	// only from handle's goroutine.
	admit func(conn net.Conn) (started func(), ok bool)
	// store, if set, has its reloads logged while serving, its keys
	// called what ("authorized", "pinned").
	store    TrustStore
	what     string
	failures *faillog.Log
	// newLive, if set, makes the live revocation of a Serve's
	// connections (startLive); live is it while serving.
	newLive      func(tlsbridge.LiveOptions) *tlsbridge.LiveConns
	live         *tlsbridge.LiveConns
	stopLiveOnce sync.Once

	mu         sync.Mutex
	closed     bool                  // Shutdown, Close or the end of Serve's context: no more accepting
	ln         net.Listener          // set by Serve
	acceptDone chan struct{}         // closed when the accept loop has ended; set with ln
	cut        context.CancelFunc    // ends the connections' context; set with ln
	active     map[net.Conn]struct{} // the connections whose handler runs
	wg         sync.WaitGroup        // one per handler; Add only in the accept loop
}

func newListener(log *slog.Logger, mode, target string, handle func(context.Context, net.Conn, func())) *listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &listener{log: log, mode: mode, target: target, handle: handle, active: map[net.Conn]struct{}{}, failures: faillog.New(log)}
}

// serve is Server.Serve and Client.Serve.
func (l *listener) serve(ctx context.Context, ln net.Listener) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	if l.ln != nil {
		l.mu.Unlock()
		return ErrServing
	}
	// The connections outlive Serve when Shutdown drains them: their
	// context ends with cutAll, or at the end of the drain.
	connCtx, cut := context.WithCancel(ctx)
	l.ln, l.cut, l.acceptDone = ln, cut, make(chan struct{})
	l.mu.Unlock()

	// Counted before this proxy starts any goroutine: with no connection
	// open, the count logged when it stops accepting is the same unless
	// something leaked.
	l.log.Info("listening", "addr", ln.Addr().String(), "target", l.target, "mode", l.mode, "goroutines", runtime.NumGoroutine())
	// The end of ctx stops accepting (no goroutine waits for it).
	stop := context.AfterFunc(ctx, l.stopAccepting)
	defer stop()
	if l.store != nil {
		defer l.store.OnChange(logReloads(l.log, l.what))()
	}
	// Kept past Serve's return: the connections that Shutdown drains are
	// still closed when their key is revoked.
	l.startLive()
	defer l.failures.Flush()

	err := l.acceptLoop(connCtx, ln)
	close(l.acceptDone)
	if ctx.Err() != nil {
		l.cutAll()
		l.wg.Wait()
		l.stopLive()
		return ctx.Err()
	}
	return err
}

// acceptLoop accepts until the listener is closed by stopAccepting
// (ErrServerClosed) or by someone else (that error).
func (l *listener) acceptLoop(ctx context.Context, ln net.Listener) error {
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait, and go on
			// serving the connections already open.
			backoff = min(max(2*backoff, 5*time.Millisecond), maxAcceptBackoff)
			l.log.Error("accept failed; retrying", "error", err.Error(), "retry_in", backoff.String())
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		l.mu.Lock()
		l.active[conn] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer func() {
				l.mu.Lock()
				delete(l.active, conn)
				l.mu.Unlock()
			}()
			// The source is asked for here, not in the accept loop: a
			// listener that reads a PROXY protocol header (a caller's
			// net.Listener) answers RemoteAddr once the header has come,
			// so a client that sends nothing would hold the loop, and
			// every connection behind it, for the header's timeout.
			started := func() {}
			if l.admit != nil {
				var ok bool
				if started, ok = l.admit(conn); !ok {
					conn.Close()
					return
				}
			}
			defer started()
			l.handle(ctx, conn, started)
		}()
	}
}

// stopAccepting closes the listener and returns when the accept loop has
// ended; from then on, no connection is added.
func (l *listener) stopAccepting() {
	l.mu.Lock()
	l.closed = true
	ln, done := l.ln, l.acceptDone
	l.mu.Unlock()
	if ln != nil {
		ln.Close()
		<-done
	}
}

// open is the number of connections whose handler runs.
func (l *listener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.active)
}

// cutAll ends the connections' context and closes every open connection.
func (l *listener) cutAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut != nil {
		l.cut()
	}
	for conn := range l.active {
		conn.Close()
	}
}

// shutdown is Server.Shutdown and Client.Shutdown.
func (l *listener) shutdown(ctx context.Context, attrs ...any) error {
	// The time left is read first, and to 10 ms, so that a context made
	// just before the call logs the timeout it was made with: to the
	// millisecond, a goroutine that waited for a core between the two
	// (under the race detector, on a loaded machine) logged 999ms for a
	// drain of 1s.
	deadline, hasDeadline := ctx.Deadline()
	timeout := time.Until(deadline).Round(10 * time.Millisecond)
	l.stopAccepting()
	args := append(append(make([]any, 0, len(attrs)+6), attrs...), "open", l.open())
	if hasDeadline {
		args = append(args, "timeout", timeout.String())
	}
	// Counted before the goroutine below: see serve.
	args = append(args, "goroutines", runtime.NumGoroutine())
	l.log.Info("stopped accepting; draining open connections", args...)

	drained := make(chan struct{})
	go func() { l.wg.Wait(); close(drained) }()
	select {
	case <-drained:
		l.cutAll() // nothing is left to cut: this releases the connections' context
		l.stopLive()
		return nil
	case <-ctx.Done():
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		l.log.Warn("drain timeout: cutting the connections still open", "timeout", timeout.String())
	}
	l.cutAll()
	<-drained
	l.stopLive()
	return ctx.Err()
}

// close is Server.Close and Client.Close.
func (l *listener) close() {
	l.stopAccepting()
	l.cutAll()
	l.wg.Wait()
	l.stopLive()
}
