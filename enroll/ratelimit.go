package enroll

import (
	"net/netip"
	"sync"
	"time"

	"github.com/keytool/keytool/internal/netsource"
)

// Limits bound failed enrollment attempts, per remote address and in
// total, with token buckets: a burst of failures is allowed, then one more
// per interval. While an address (or the server as a whole) has no
// failure left, every attempt is answered "rate limited" without being
// looked at — a correct secret included.
//
// An attempt is charged when it ends, and only if it failed: a success
// costs nothing, nor does a failure of the server. But whether an attempt
// fails is known only once it has been examined, so every attempt in
// progress is assumed to fail when the next is let in: an attempt starts
// only if its address, and everyone, have a failure left beyond those in
// progress. Otherwise N guesses sent at once would all be examined before
// the first failure was counted, and parallel connections would buy an
// address as many guesses as it has connections. The price is that more
// attempts at once than a burst (5 from one address, 50 in all, by
// default) are answered "rate limited" even if none of them fails: the
// extra ones are refused until those in progress end.
type Limits struct {
	PerAddressBurst int           // failures allowed in a row from one address; default 5
	PerAddressEvery time.Duration // one more failure allowed per address after this; default 30s
	GlobalBurst     int           // failures allowed in a row from everyone; default 50
	GlobalEvery     time.Duration // one more failure allowed in total after this; default 1s
}

func (l Limits) withDefaults() Limits {
	if l.PerAddressBurst <= 0 {
		l.PerAddressBurst = 5
	}
	if l.PerAddressEvery <= 0 {
		l.PerAddressEvery = 30 * time.Second
	}
	if l.GlobalBurst <= 0 {
		l.GlobalBurst = 50
	}
	if l.GlobalEvery <= 0 {
		l.GlobalEvery = time.Second
	}
	return l
}

// bucket is a token bucket of failures, refilled lazily, and the
// attempts let in on it that have not ended yet.
type bucket struct {
	tokens   float64
	at       time.Time
	inFlight int
}

func (b *bucket) refill(now time.Time, burst int, every time.Duration) {
	if b.at.IsZero() {
		b.tokens, b.at = float64(burst), now
		return
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(burst), b.tokens+float64(d)/float64(every))
		b.at = now
	}
}

// room says whether one more attempt may start — the failures left
// exceed the attempts in progress by one at least — and if not, how long
// until it may if all those in progress fail.
func (b *bucket) room(every time.Duration) (bool, time.Duration) {
	left := b.tokens - float64(b.inFlight)
	if left >= 1 {
		return true, 0
	}
	return false, max(time.Nanosecond, time.Duration((1-left)*float64(every)))
}

// idle reports whether the bucket is full with nothing in progress: as
// good as a bucket never made.
func (b *bucket) idle(burst int) bool {
	return b.inFlight == 0 && b.tokens >= float64(burst)
}

// limiter counts failures per address (IPv6 per /64) and globally.
type limiter struct {
	l      Limits
	mu     sync.Mutex
	global bucket
	addrs  map[netip.Prefix]*bucket
}

func newLimiter(l Limits) *limiter {
	return &limiter{l: l.withDefaults(), addrs: map[netip.Prefix]*bucket{}}
}

// maxTracked bounds the per-address table; beyond it, idle buckets are
// dropped (a bucket that is not there is full).
const maxTracked = 10000

// attempt is an attempt admit let in, until end.
type attempt struct {
	key netip.Prefix
	b   *bucket
}

// admit lets an attempt from remote start if both its address and
// everyone have a failure left beyond the attempts in progress (see
// Limits), and counts it in progress on both until end. If the attempt
// may not start, admit returns nil, how long until it may, and whether
// only everyone's limit refused it (its address had a failure left):
// such refusals are no source's doing, and are logged as all sources'.
func (l *limiter) admit(remote netip.Addr, now time.Time) (a *attempt, wait time.Duration, global bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.refill(now, l.l.GlobalBurst, l.l.GlobalEvery)
	ok, wait := l.global.room(l.l.GlobalEvery)
	global = !ok
	k := netsource.Of(remote)
	b := l.addrs[k]
	if b != nil {
		b.refill(now, l.l.PerAddressBurst, l.l.PerAddressEvery)
		bok, bwait := b.room(l.l.PerAddressEvery)
		ok, wait, global = ok && bok, max(wait, bwait), global && bok
	}
	if !ok {
		return nil, wait, global
	}
	if b == nil {
		if len(l.addrs) >= maxTracked {
			l.sweep(now)
		}
		b = &bucket{}
		b.refill(now, l.l.PerAddressBurst, l.l.PerAddressEvery)
		l.addrs[k] = b
	}
	l.global.inFlight++
	b.inFlight++
	return &attempt{key: k, b: b}, 0, false
}

// end ends an attempt admit let in, at now: one that failed is charged
// to its address and to everyone, one that did not costs nothing.
// Charging only at the end, nothing is ever given back, so an attempt
// longer than a refill interval cannot earn a failure twice (once by the
// refill, once by a refund). A bucket left idle is dropped, which keeps
// the table to the addresses that failed or are being examined.
func (l *limiter) end(a *attempt, now time.Time, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.refill(now, l.l.GlobalBurst, l.l.GlobalEvery)
	a.b.refill(now, l.l.PerAddressBurst, l.l.PerAddressEvery)
	l.global.inFlight--
	a.b.inFlight--
	if failed {
		// Never below zero: admit let the attempt in with a failure
		// left beyond all those in progress, and refills only add.
		l.global.tokens--
		a.b.tokens--
	}
	if a.b.idle(l.l.PerAddressBurst) && l.addrs[a.key] == a.b {
		delete(l.addrs, a.key)
	}
}

// sweep drops the idle buckets, and if that is not enough, all those
// with no attempt in progress (the global bucket still holds). A bucket
// with attempts in progress is kept, or its address could start more at
// once than it has failures left; there are at most GlobalBurst of them.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.addrs {
		b.refill(now, l.l.PerAddressBurst, l.l.PerAddressEvery)
		if b.idle(l.l.PerAddressBurst) {
			delete(l.addrs, k)
		}
	}
	if len(l.addrs) >= maxTracked {
		for k, b := range l.addrs {
			if b.inFlight == 0 {
				delete(l.addrs, k)
			}
		}
	}
}
