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
// looked at — a correct secret included. Successes cost nothing.
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
// dropped.
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

// allow reports whether remote may try now, and if not, how long until it
// may.
func (l *limiter) allow(remote netip.Addr, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.refill(now, l.l.GlobalBurst, l.l.GlobalEvery)
	var wait time.Duration
	if l.global.tokens < 1 {
		wait = time.Duration((1 - l.global.tokens) * float64(l.l.GlobalEvery))
	}
	if b := l.addrs[keyOf(remote)]; b != nil {
		b.refill(now, l.l.PerAddressBurst, l.l.PerAddressEvery)
		if b.tokens < 1 {
			wait = max(wait, time.Duration((1-b.tokens)*float64(l.l.PerAddressEvery)))
		}
	}
	return wait == 0, wait
}

// fail counts a failed attempt from remote.
func (l *limiter) fail(remote netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.global.refill(now, l.l.GlobalBurst, l.l.GlobalEvery)
	l.global.tokens = max(l.global.tokens-1, 0)
	k := keyOf(remote)
	b := l.addrs[k]
	if b == nil {
		if len(l.addrs) >= maxTracked {
			l.sweep(now)
		}
		b = &bucket{}
		l.addrs[k] = b
	}
	b.refill(now, l.l.PerAddressBurst, l.l.PerAddressEvery)
	b.tokens = max(b.tokens-1, 0)
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
