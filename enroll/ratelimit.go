package enroll

import (
	"net/netip"
	"sync"
	"time"
)

// Limits bound failed enrollment attempts, per remote address and in
// total, with token buckets: a burst of failures is allowed, then one more
// per interval. While an address (or the server as a whole) has no
// failure left, every attempt is answered "rate limited" without being
// looked at — a correct secret included. An attempt holds one failure of
// its address and one of everyone's while it is examined, so that
// attempts made at once count as failures made one after the other; it
// gives them back if it does not fail (a success costs nothing) or fails
// through the server's fault.
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

// bucket is a token bucket of failures, refilled lazily.
type bucket struct {
	tokens float64
	at     time.Time
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

// maxTracked bounds the per-address table; beyond it, full buckets are
// dropped (a bucket that is not there is full).
const maxTracked = 10000

func keyOf(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	p, _ := a.Prefix(a.BitLen())
	return p
}

// take lets an attempt from remote in if both its address and everyone
// have a failure left, and reserves one of each: the attempt is charged
// before it is examined, so that attempts running at once cannot pass the
// limit together (each would see the failures of the others only once
// they ended). An attempt that turns out not to count gives its
// reservation back with refund. If the attempt may not be made, take
// reserves nothing and says how long until it may.
func (l *limiter) take(remote netip.Addr, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.refill(now, l.l.GlobalBurst, l.l.GlobalEvery)
	var wait time.Duration
	if l.global.tokens < 1 {
		wait = time.Duration((1 - l.global.tokens) * float64(l.l.GlobalEvery))
	}
	k := keyOf(remote)
	b := l.addrs[k]
	if b != nil {
		b.refill(now, l.l.PerAddressBurst, l.l.PerAddressEvery)
		if b.tokens < 1 {
			wait = max(wait, time.Duration((1-b.tokens)*float64(l.l.PerAddressEvery)))
		}
	}
	if wait > 0 {
		return false, wait
	}
	if b == nil {
		if len(l.addrs) >= maxTracked {
			l.sweep(now)
		}
		b = &bucket{}
		b.refill(now, l.l.PerAddressBurst, l.l.PerAddressEvery)
		l.addrs[k] = b
	}
	l.global.tokens--
	b.tokens--
	return true, 0
}

// refund gives back the reservation of an attempt from remote that take
// let in and that does not count: a success, or a failure of the server.
// A bucket full again is dropped, as if it had never been made, which
// keeps the table to the addresses that failed (or are being examined).
func (l *limiter) refund(remote netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.refill(now, l.l.GlobalBurst, l.l.GlobalEvery)
	l.global.tokens = min(l.global.tokens+1, float64(l.l.GlobalBurst))
	k := keyOf(remote)
	b := l.addrs[k]
	if b == nil {
		return // swept while the attempt ran: the table was full, and starts again full
	}
	b.refill(now, l.l.PerAddressBurst, l.l.PerAddressEvery)
	b.tokens = min(b.tokens+1, float64(l.l.PerAddressBurst))
	if b.tokens >= float64(l.l.PerAddressBurst) {
		delete(l.addrs, k)
	}
}

// sweep drops the buckets that have refilled completely, and if that is
// not enough, all of them (the global bucket still holds).
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.addrs {
		b.refill(now, l.l.PerAddressBurst, l.l.PerAddressEvery)
		if b.tokens >= float64(l.l.PerAddressBurst) {
			delete(l.addrs, k)
		}
	}
	if len(l.addrs) >= maxTracked {
		clear(l.addrs)
	}
}
