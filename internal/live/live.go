// Package live is the one mechanism that keeps deciding open connections
// after their handshake (docs/design.md, "Live revocation"): a Tracker
// holds each open connection with a function that decides its peer's key
// again, decides them all when told that the trust state changed, at the
// earliest expiry of an admission, and — only where a decision can change
// without anyone saying so, such as a CA's CRL — every Interval; it ends
// the connections whose key is no longer admitted, logging each.
//
// A Tracker holds no goroutine: one timer, armed only while connections
// are tracked and a decision is due, runs each sweep; while one is due
// it wakes at least once a minute to read the wall clock again, since an
// expiry is a time of the wall clock and the timer counts monotonic time. tlsbridge.LiveConns
// (Go servers and clients, and through it the proxy) is built on it; it
// knows nothing of TLS or stores.
package live

import (
	"log/slog"
	"sync"
	"time"
)

// Msg is the message of the line logged for each connection a Tracker
// ends.
const Msg = "closing: key no longer admitted"

// Conn is one open connection a Tracker decides again.
type Conn struct {
	// Decide decides the peer's key again against the current trust
	// state: nil while it is admitted, with the time its admission ends
	// (zero: no end known); an error says why it is no longer admitted.
	// What several connections share (the same certificate from the same
	// address) it takes from memo, so that a sweep decides it once.
	Decide func(memo *Memo) (expires time.Time, err error)
	// Close ends the connection; reason is Decide's error. It is called
	// at most once, and must return soon.
	Close func(reason error)
	// Attrs are the log line's attributes, before "reason".
	Attrs []any
}

// Memo holds the decisions the connections of one sweep share: a sweep
// over 10,000 connections of 1,000 keys decides 1,000 times. Outside a
// sweep (the decision at Track) it is nil, and Get computes.
type Memo struct{ m map[any]any }

// Get returns the value computed for key in this sweep, computing it with
// f the first time. key must be comparable.
func (m *Memo) Get(key any, f func() any) any {
	if m == nil {
		return f()
	}
	if v, ok := m.m[key]; ok {
		return v
	}
	v := f()
	m.m[key] = v
	return v
}

// maxTimerWait: see scheduleLocked.
const maxTimerWait = time.Minute

// Options configure a Tracker.
type Options struct {
	// Interval, if positive, decides every connection again that often
	// as well as on Changed and at expiries: for a decision that can
	// change without a change being told (a CA's CRL, read at most once
	// a second; a store that does not tell of its changes). Zero: only
	// on Changed and at expiries.
	Interval time.Duration
	// Logger receives a warning (Msg) for each connection ended; nil
	// discards them.
	Logger *slog.Logger
}

// Tracker decides the open connections again and ends those whose key
// is no longer admitted. Its methods are safe for concurrent use.
type Tracker struct {
	log      *slog.Logger
	interval time.Duration
	// now is the clock (time.Now; a test's may step); the timer never
	// waits longer than maxWait (maxTimerWait) before looking at it again
	// (scheduleLocked).
	now     func() time.Time
	maxWait time.Duration

	mu     sync.Mutex
	conns  map[*Conn]struct{}
	timer  *time.Timer // runs sweep; nil until the first connection
	next   time.Time   // when timer fires; zero while it is stopped
	kicked bool        // a change came during a sweep: sweep again at once
	// sweeping: a sweep has copied the set and not yet re-armed the
	// timer; extra is the soonest decision due of the connections
	// tracked meanwhile.
	sweeping bool
	extra    time.Time
	stopped  bool   // Stop was called
	closed   uint64 // connections ended

	sweepMu sync.Mutex // one sweep at a time
	buf     []*Conn
	memo    Memo   // cleared at each sweep
	sweeps  uint64 // completed sweeps, under sweepMu
}

// New returns a Tracker; it starts nothing until a connection is tracked.
func New(opts Options) *Tracker {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{log: log, interval: opts.Interval, now: time.Now, maxWait: maxTimerWait,
		conns: map[*Conn]struct{}{}, memo: Memo{m: map[any]any{}}}
}

// Track decides c once more and, if its key is still admitted, keeps
// deciding it until untrack is called or the Tracker ends it; if not, it
// ends it before returning. After Stop, c is neither decided nor kept.
func (t *Tracker) Track(c *Conn) (untrack func()) {
	untrack = func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if _, ok := t.conns[c]; ok {
			delete(t.conns, c)
			if len(t.conns) == 0 {
				t.scheduleLocked(time.Time{})
			}
		}
	}
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return func() {}
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	// Decided after it is in the set: a change from now on is seen by a
	// sweep, and one before by this decision. Its expiry is compared with
	// the time the decision began, as a sweep's: one that passes while it
	// decides is due at once, not taken for one long past.
	now := t.now()
	expires, err := c.Decide(nil)
	if err != nil {
		t.end(c, err)
		return untrack
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	next := t.due(now, expires)
	switch {
	case next.IsZero():
	case t.sweeping:
		// The sweep under way may not have seen c: it arms the timer
		// for the sooner of its next and c's.
		if t.extra.IsZero() || next.Before(t.extra) {
			t.extra = next
		}
	case t.next.IsZero() || next.Before(t.next):
		t.scheduleLocked(next)
	}
	return untrack
}

// due is when a connection decided at now, admitted until expires, must
// be decided next: at the interval, or at its expiry if sooner; zero:
// only on a change. An expiry already past (a store that admits an
// expired entry) is no reason to sweep again and again.
func (t *Tracker) due(now, expires time.Time) time.Time {
	var next time.Time
	if t.interval > 0 {
		next = now.Add(t.interval)
	}
	if expires.After(now) && (next.IsZero() || expires.Before(next)) {
		next = expires
	}
	return next
}

// Changed is told of each change of the trust state: the open
// connections are decided again at once, on the timer's goroutine. It
// returns soon (it may run inside a store's reload).
func (t *Tracker) Changed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.kicked = true
	if len(t.conns) > 0 && !t.stopped {
		t.scheduleLocked(t.now())
	}
}

// Stop ends the tracking: the open connections are no longer decided
// again (they stay open), and the timer is stopped. A sweep under way
// finishes.
func (t *Tracker) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	clear(t.conns)
	t.scheduleLocked(time.Time{})
}

// Stats are a Tracker's counts.
type Stats struct {
	Tracked int    // connections decided again now
	Sweeps  uint64 // sweeps completed
	Closed  uint64 // connections ended
}

// Stats returns the counts so far.
func (t *Tracker) Stats() Stats {
	t.sweepMu.Lock()
	sweeps := t.sweeps
	t.sweepMu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{Tracked: len(t.conns), Sweeps: sweeps, Closed: t.closed}
}

// scheduleLocked arms the timer for at (zero: stops it). t.mu is held.
//
// An expiry is a time of the wall clock (an entry's "expires", read from
// a file), and a timer counts monotonic time: armed once for the whole
// wait, it would fire as late as the wall clock stepped forward meanwhile
// (NTP, a suspend and resume), and an expired entry's connections would
// stay open that much past its end. So the timer waits at most maxWait
// (a minute) and fire compares the clock with at again; a time taken from
// time.Now (an interval, a change) keeps its monotonic reading and is met
// exactly.
func (t *Tracker) scheduleLocked(at time.Time) {
	t.next = at
	if at.IsZero() {
		if t.timer != nil {
			t.timer.Stop()
		}
		return
	}
	wait := min(at.Sub(t.now()), t.maxWait)
	if t.timer == nil {
		t.timer = time.AfterFunc(wait, t.fire)
		return
	}
	t.timer.Reset(wait)
}

// fire runs a sweep when the decision due is, by the clock, due; else it
// waits again (scheduleLocked).
func (t *Tracker) fire() {
	t.mu.Lock()
	if !t.next.IsZero() && t.now().Before(t.next) {
		t.scheduleLocked(t.next)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	t.sweep()
}

// Sweep decides every open connection now, on the caller's goroutine (a
// benchmark's measure of what a change costs), as a change would.
func (t *Tracker) Sweep() { t.sweep() }

// sweep decides every open connection again, ends those whose key is no
// longer admitted, and arms the timer for the next decision due.
func (t *Tracker) sweep() {
	t.sweepMu.Lock()
	defer t.sweepMu.Unlock()
	t.mu.Lock()
	t.kicked, t.sweeping, t.extra = false, true, time.Time{}
	t.buf = t.buf[:0]
	for c := range t.conns {
		t.buf = append(t.buf, c)
	}
	t.mu.Unlock()
	start := t.now()
	var next time.Time
	for i, c := range t.buf {
		t.buf[i] = nil
		expires, err := c.Decide(&t.memo)
		if err != nil {
			t.end(c, err)
			continue
		}
		if d := t.due(start, expires); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	clear(t.memo.m) // nothing kept from one sweep to the next
	t.sweeps++
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweeping = false
	switch {
	case len(t.conns) == 0 || t.stopped:
		next = time.Time{}
	case t.kicked:
		next = t.now()
	case !t.extra.IsZero() && (next.IsZero() || t.extra.Before(next)):
		next = t.extra // a connection tracked during the sweep is due sooner
	}
	t.scheduleLocked(next)
}

// end stops tracking c, logs why and ends it, once.
func (t *Tracker) end(c *Conn, reason error) {
	t.mu.Lock()
	_, ok := t.conns[c]
	delete(t.conns, c)
	if ok {
		t.closed++
	}
	t.mu.Unlock()
	if !ok {
		return
	}
	t.log.Warn(Msg, append(c.Attrs[:len(c.Attrs):len(c.Attrs)], "reason", reason.Error())...)
	c.Close(reason)
}
