package proxy

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// recheckInterval is how often the open connections are decided again
// when no change of the store says so: for a CA's CRL (read at most once
// a second by tlsbridge.PKI) and for stores whose changes the proxy is
// not told of. An entry's "expires" has a timer of its own.
const recheckInterval = time.Second

// msgNoLongerAdmitted is the line of a connection closed because its key
// stopped being admitted.
const msgNoLongerAdmitted = "closing: key no longer admitted"

// openConn is one open connection whose peer's key is decided again on
// every change of the trust store and every recheckInterval.
type openConn struct {
	// check decides the peer's key again against the current trust
	// state: nil while it is admitted, and when it expires (zero: never).
	check  func() (expires time.Time, err error)
	attrs  []any // for the log line: remote, fingerprint, name or target
	cancel context.CancelFunc
}

// revoker closes the open connections whose key is no longer admitted
// (docs/proxy.md, "Live revocation"). It holds no goroutine: a timer,
// armed only while connections are open, runs each sweep.
type revoker struct {
	log      *slog.Logger
	interval time.Duration

	mu     sync.Mutex
	conns  map[*openConn]struct{}
	timer  *time.Timer // runs sweep; nil until the first connection
	next   time.Time   // when timer fires; zero while it is stopped
	kicked bool        // a change came during a sweep: sweep again at once

	sweepMu sync.Mutex // one sweep at a time
	buf     []*openConn
	sweeps  int // completed sweeps, under sweepMu (for tests)
}

func newRevoker(log *slog.Logger) *revoker {
	return &revoker{log: log, interval: recheckInterval, conns: map[*openConn]struct{}{}}
}

// track decides c once more and, if its key is still admitted, keeps
// deciding it until untrack; else it closes it at once. It returns the
// function that stops tracking c.
func (r *revoker) track(c *openConn) (untrack func()) {
	untrack = func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.conns[c]; ok {
			delete(r.conns, c)
			if len(r.conns) == 0 {
				r.scheduleLocked(time.Time{})
			}
		}
	}
	r.mu.Lock()
	r.conns[c] = struct{}{}
	r.mu.Unlock()
	// Decided after it is in the set: a change from now on is seen by a
	// sweep, and one before by this decision.
	expires, err := c.check()
	if err != nil {
		r.closeConn(c, err)
		return untrack
	}
	r.mu.Lock()
	if next := time.Now().Add(r.interval); r.next.IsZero() || (!expires.IsZero() && expires.Before(r.next)) {
		if !expires.IsZero() && expires.Before(next) {
			next = expires
		}
		r.scheduleLocked(next)
	}
	r.mu.Unlock()
	return untrack
}

// changed is told of each change of the trust store: the open
// connections are decided again at once. It returns soon (it runs inside
// the store's reload).
func (r *revoker) changed() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kicked = true
	if len(r.conns) > 0 {
		r.scheduleLocked(time.Now())
	}
}

// scheduleLocked arms the timer for at (zero: stops it). r.mu is held.
func (r *revoker) scheduleLocked(at time.Time) {
	r.next = at
	if at.IsZero() {
		if r.timer != nil {
			r.timer.Stop()
		}
		return
	}
	if r.timer == nil {
		r.timer = time.AfterFunc(time.Until(at), r.sweep)
		return
	}
	r.timer.Reset(time.Until(at))
}

// sweep decides every open connection again, closes those whose key is
// no longer admitted, and arms the timer for the next sweep: in
// r.interval, or at the first expiry before that.
func (r *revoker) sweep() {
	r.sweepMu.Lock()
	defer r.sweepMu.Unlock()
	r.mu.Lock()
	r.kicked = false
	r.buf = r.buf[:0]
	for c := range r.conns {
		r.buf = append(r.buf, c)
	}
	r.mu.Unlock()
	next := time.Now().Add(r.interval)
	for i, c := range r.buf {
		r.buf[i] = nil
		expires, err := c.check()
		if err != nil {
			r.closeConn(c, err)
			continue
		}
		if !expires.IsZero() && expires.Before(next) {
			next = expires
		}
	}
	r.sweeps++
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case len(r.conns) == 0:
		next = time.Time{}
	case r.kicked:
		next = time.Now()
	}
	r.scheduleLocked(next)
}

// closeConn stops tracking c, logs why and ends its context (which closes
// both sides of it).
func (r *revoker) closeConn(c *openConn, err error) {
	r.mu.Lock()
	_, ok := r.conns[c]
	delete(r.conns, c)
	r.mu.Unlock()
	if !ok {
		return
	}
	r.log.Warn(msgNoLongerAdmitted, append(c.attrs[:len(c.attrs):len(c.attrs)], "reason", err.Error())...)
	c.cancel()
}
