package tlsbridge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// dialBudget is the time DialContext gives the TCP connection and the
// handshake together unless ClientOptions.HandshakeTimeout says
// otherwise. It was a net.Dialer's Timeout, which crypto/tls applies to
// the handshake too — and so to the Prompt that VerifyConnection runs
// within it: a person who took more than 30 seconds to compare a
// fingerprint saw the connection fail after answering, and a caller's
// longer context (trust-host gives a person two minutes) did not help.
// The budget is now a clock that stops while the question is asked
// (pausingDial). A variable for tests.
var dialBudget = 30 * time.Second

// HandshakeTimeoutError means DialContext gave up on Addr: no TLS
// handshake was complete within Within (the time a person was asked not
// counted). Connected says how far it got: false, no TCP connection was
// made (a wrong address, a host down, a firewall dropping packets); true,
// the server accepted the connection and sent nothing a handshake needs
// (it may not be a TLS server, or be overloaded).
type HandshakeTimeoutError struct {
	Addr      string
	Within    time.Duration
	Connected bool
}

func (e *HandshakeTimeoutError) Error() string {
	if !e.Connected {
		return fmt.Sprintf("tlsbridge: could not connect to %s within %s", e.Addr, e.Within)
	}
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
// cause, once budget has run (pausingDial stops the clock); stop
// releases it.
func withDialBudget(ctx context.Context, addr string, budget time.Duration) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
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

// budgetSpent returns the *HandshakeTimeoutError that ended bctx, a
// dial's budget over the caller's ctx, as the error of a step that failed
// with err — connected saying whether the TCP connection was made — or
// err itself when something else ended the dial (the caller's context
// included: its cause is the caller's to report).
func budgetSpent(ctx, bctx context.Context, err error, connected bool) error {
	var te *HandshakeTimeoutError
	if !errors.As(context.Cause(bctx), &te) || ctx.Err() != nil {
		return err
	}
	spent := *te
	spent.Connected = connected
	return &spent
}
