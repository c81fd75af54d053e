package proxy

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/keytool/keytool/internal/netsource"
)

// DefaultMaxStartupsPerSource is the number of connections one source may
// have in their startup at once when ServerOptions.MaxStartupsPerSource is
// zero. A handshake takes a round trip or two, so that a client, or an
// office behind one NAT address, seldom has more than a few at once; the
// most are a connection pool filled at start (HikariCP's default is 10,
// pgbouncer's pool 20, a browser opens 6 per host), which 64 lets through.
// One source, on the other hand, holds at most 64 descriptors and
// goroutines, where it held as many as it could open for the handshake
// timeout (and, with Enroll, the gate's 3+15+15 s). OpenSSH bounds the
// same thing: MaxStartups (10:30:100, in total) and PerSourceMaxStartups
// (none by default); its startups last as long as LoginGraceTime (2
// minutes, the password typed included), ours a handshake.
const DefaultMaxStartupsPerSource = 64

// msgTooManyStartups is the reason a connection is refused with when its
// source has MaxStartupsPerSource connections in their startup already.
const msgTooManyStartups = "too many connections from this source still in their handshake"

// startups counts, per source (netsource: an IPv4 address, an IPv6 /64),
// the connections accepted that have not finished their startup: the
// handshake, and with Enroll the enrollment gate. Connections past it are
// not counted: a client may hold as many open as it likes.
type startups struct {
	max int

	mu sync.Mutex
	n  map[netip.Prefix]int
}

func newStartups(max int) *startups {
	return &startups{max: max, n: map[netip.Prefix]int{}}
}

// start counts a connection from ip in its startup, if its source has
// fewer than max; done ends it, and may be called more than once (from
// one goroutine).
func (s *startups) start(ip netip.Addr) (done func(), ok bool) {
	src := netsource.Of(ip)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[src] >= s.max {
		return nil, false
	}
	s.n[src]++
	ended := false
	return func() {
		if ended {
			return
		}
		ended = true
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.n[src]--; s.n[src] <= 0 {
			delete(s.n, src)
		}
	}, true
}

// inStartup is the number of connections of ip's source in their startup.
func (s *startups) inStartup(ip netip.Addr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[netsource.Of(ip)]
}

// admit is the Server's listener.admit: a connection whose source has
// MaxStartupsPerSource connections in their startup already is refused —
// closed before a byte is read — counted in the metrics and folded into
// the failure log (a line per refused connection would be the flood the
// limit is against).
//
// A connection without an IP address (a Unix socket's, an in-memory
// pipe's, given to Serve by its caller) has no source to tell apart: it
// is not counted.
func (s *Server) admit(conn net.Conn) (started func(), ok bool) {
	ip := remoteAddr(conn)
	if !ip.IsValid() {
		return func() {}, true
	}
	if started, ok = s.startups.start(ip); ok {
		return started, true
	}
	s.metrics.handshake(resultFailed, reasonTooManyStartups)
	reason := fmt.Sprintf("%s (MaxStartupsPerSource %d)", msgTooManyStartups, s.startups.max)
	s.l.failures.Failed(ip, slog.LevelWarn, msgRefused, "reason", reason,
		"remote", conn.RemoteAddr().String(), "reason", reason)
	return nil, false
}
