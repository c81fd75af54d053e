package netsource

import (
	"net/netip"
	"sync"
)

// Limit holds each source (Of) to Max things under way at once —
// connections in their startup (keytool proxy's MaxStartupsPerSource),
// connections open to the operators' endpoint — so that one client, or
// one IPv6 /64, cannot take what all the others need. The zero Limit
// admits nothing; set Max.
type Limit struct {
	Max int

	mu sync.Mutex
	n  map[netip.Prefix]int
}

// Start counts one more thing under way for addr's source, unless it
// has Max already. done ends it; calling it again does nothing.
func (l *Limit) Start(addr netip.Addr) (done func(), ok bool) {
	src := Of(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[src] >= l.Max {
		return nil, false
	}
	if l.n == nil {
		l.n = map[netip.Prefix]int{}
	}
	l.n[src]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.n[src]--; l.n[src] <= 0 {
				delete(l.n, src)
			}
		})
	}, true
}

// Count is how many things addr's source has under way.
func (l *Limit) Count(addr netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[Of(addr)]
}

// Sources is how many sources have something under way: none once
// everything started has ended (a source is forgotten at its last done).
func (l *Limit) Sources() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.n)
}
