package tlsbridge

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// dialBudget is the time DialContext gives the TCP connection and the
// handshake together. It was a net.Dialer's Timeout, which crypto/tls
// applies to the handshake too — and so to the Prompt that
// VerifyConnection runs within it: a person who took more than 30 seconds
// to compare a fingerprint saw the connection fail after answering, and a
// caller's longer context (trust-host gives a person two minutes) did
// not help. The budget is now a clock that stops while the question is
// asked (pausingDial). A variable for tests.
var dialBudget = 30 * time.Second

// HandshakeTimeoutError means DialContext gave up on Addr: no TLS
// handshake was complete within Within (the time a person was asked not
// counted). The server accepted no connection, or sent nothing a
// handshake needs: it may not be a TLS server, or be overloaded.
type HandshakeTimeoutError struct {
	Addr   string
	Within time.Duration
}

func (e *HandshakeTimeoutError) Error() string {
	return fmt.Sprintf("tlsbridge: no TLS handshake with %s within %s", e.Addr, e.Within)
}

// Timeout reports true: the error is a timeout, as net.Error says one.
func (e *HandshakeTimeoutError) Timeout() bool { return true }

// dialClock is a dial's budget: a timer that ends the dial's context, and
// when it is due.
type dialClock struct {
	mu    sync.Mutex
	timer *time.Timer
	due   time.Time
}

type dialClockKey struct{}

// withDialBudget returns ctx ended, with a *HandshakeTimeoutError as its
// cause, once the dial's budget has run (pausingDial stops the clock);
// stop releases it.
func withDialBudget(ctx context.Context, addr string) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	budget := dialBudget
	clk := &dialClock{due: time.Now().Add(budget)}
	clk.mu.Lock()
	defer clk.mu.Unlock()
	clk.timer = time.AfterFunc(budget, func() { cancel(&HandshakeTimeoutError{Addr: addr, Within: budget}) })
	return context.WithValue(ctx, dialClockKey{}, clk), func() { clk.timer.Stop(); cancel(nil) }
}

// pausingDial runs ask, a question put to a person, with the clock of
// ctx's dial (withDialBudget), if it has one, stopped; the dial then has
// what was left of its budget, at least a second, to finish.
func pausingDial(ctx context.Context, ask func() error) error {
	clk, _ := ctx.Value(dialClockKey{}).(*dialClock)
	if clk == nil {
		return ask()
	}
	clk.mu.Lock()
	left, running := time.Until(clk.due), clk.timer.Stop()
	clk.mu.Unlock()
	if !running {
		// The budget ran out as the question came: the connection is
		// being closed, and an answer would pin a key for a dial that
		// fails.
		return context.Cause(ctx)
	}
	err := ask()
	clk.mu.Lock()
	defer clk.mu.Unlock()
	d := max(left, time.Second)
	clk.due = time.Now().Add(d)
	clk.timer.Reset(d)
	return err
}
