package etcdtest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Relay forwards loopback TCP connections to an etcd member, and can make
// the member unreachable in the ways a network does (SetCut, SetHung,
// SetDropped), for a client behind it while others are not.
type Relay struct {
	l       net.Listener
	target  string
	mu      sync.Mutex
	resumed *sync.Cond // broadcast when hung turns false
	cut     bool
	hung    bool // forwarding nothing either way, connections kept: a frozen member
	dropped bool // new connections swallowed, never answered: packets dropped
	conns   map[net.Conn]struct{}
	failed  []time.Time    // when each connection made while cut or dropped came: refused or swallowed
	wg      sync.WaitGroup // serve and the copies it starts: the test's cleanup waits for them
}

// NewRelay starts a relay to target (host:port) on 127.0.0.1, closed at
// the end of the test.
func NewRelay(tb testing.TB, target string) *Relay {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Relay{l: l, target: target, conns: map[net.Conn]struct{}{}}
	p.resumed = sync.NewCond(&p.mu)
	tb.Cleanup(func() {
		l.Close()
		p.SetHung(false)
		p.SetCut(true)
		p.wg.Wait()
	})
	p.wg.Go(p.serve)
	return p
}

// Endpoint is the relay's address as an etcd client endpoint.
func (p *Relay) Endpoint() string { return "http://" + p.Addr() }

// Addr is the relay's address, host:port (what --store etcd://… takes).
func (p *Relay) Addr() string { return p.l.Addr().String() }

func (p *Relay) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		if !p.forwards(c) {
			continue
		}
		u, err := net.Dial("tcp", p.target) // not under mu: a slow target holds no Set*
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut || p.dropped { // while it dialled: as if after
			p.mu.Unlock()
			c.Close()
			u.Close()
			continue
		}
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(u, c) })
		p.wg.Go(func() { p.pipe(c, u) })
	}
}

// forwards reports whether a new connection is to be forwarded: not
// while the path is cut (it is refused) or dropped (swallowed, never
// answered, even once the path is back: what an attempt whose packets
// were dropped meets).
func (p *Relay) forwards(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.cut:
		p.failed = append(p.failed, time.Now())
		c.Close()
		return false
	case p.dropped:
		p.failed = append(p.failed, time.Now())
		p.conns[c] = struct{}{}
		p.wg.Go(func() { io.Copy(io.Discard, c) })
		return false
	}
	return true
}

// pipe copies from to to, holding what it read while the relay is hung,
// and closes to at the end.
func (p *Relay) pipe(to, from net.Conn) {
	defer to.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for p.hung {
				p.resumed.Wait()
			}
			p.mu.Unlock()
			if _, err := to.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// SetHung stops forwarding (every connection kept open, new ones
// accepted) or resumes it: a member frozen, as a stopped process or a
// paused machine, whose connections neither answer nor fail.
func (p *Relay) SetHung(hung bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = hung
	if !hung {
		p.resumed.Broadcast()
	}
}

// SetCut cuts (and closes every connection) or restores the path: new
// connections are refused meanwhile.
func (p *Relay) SetCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		p.closeAll()
	}
}

// SetDropped drops the path (every connection closed, as by a cut; the
// new ones swallowed and never answered, even after) or restores it for
// new connections: a network that drops packets, then heals.
func (p *Relay) SetDropped(dropped bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropped = dropped
	if dropped {
		p.closeAll()
	}
}

func (p *Relay) closeAll() {
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// FailedSince is how many connections the relay refused (cut) or
// swallowed (dropped) since t: a client's attempts to connect that failed.
func (p *Relay) FailedSince(t time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, at := range p.failed {
		if !at.Before(t) {
			n++
		}
	}
	return n
}

// Eventually polls cond every 5 ms until it holds, or fails the test
// after d, saying what.
func Eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
