package proxy

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
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

// MaxStartups bounds the connections in their startup (the handshake,
// and with Enroll the enrollment gate) of all sources together, as
// OpenSSH's MaxStartups start:rate:full (sshd_config(5)) does the
// connections not yet authenticated: with Start or more in their
// startup, a new connection is refused with a probability of Rate
// percent, rising linearly to 100% at Full. Refusing some early, at
// random, rather than all at Full, leaves each client that retries a
// chance while the proxy is busy, where a hard bound turns every one
// away until a slot frees. "N" is Start = Full = N: every connection past
// N is refused. ParseMaxStartups reads both forms.
type MaxStartups struct {
	Start int // connections in their startup before any is refused; at least 1
	Rate  int // percent refused at Start: 1 to 100
	Full  int // connections in their startup past which all are refused; not below Start
}

// DefaultMaxStartups is ServerOptions.MaxStartups when it is zero:
// 256:30:1024. OpenSSH's 10:30:100 is for people logging in, whose
// startup lasts up to LoginGraceTime (2 minutes, a password typed
// included); ours lasts a handshake, a round trip or two, and a proxy in
// front of a fleet of agents sees them all reconnect at once after it
// restarts. A P-256 handshake costs about 1.2 ms of a core
// (docs/benchmarks.md), so that 8 cores finish some 6,500 a second; with
// agents 25 ms away (a handshake lasts a round trip and a half) that is
// about 250 in their startup at once — Start, below which nothing is
// refused. Past it, a proxy already at
// its CPU's pace only slows every handshake toward the timeout by taking
// more, and an agent refused early retries with its backoff, spreading
// the storm; at Full, 4× Start, the proxy holds at most 1,024 goroutines
// and descriptors (and their TLS state) for HandshakeTimeout, whatever
// the number of sources. docs/design.md says more.
var DefaultMaxStartups = MaxStartups{Start: 256, Rate: 30, Full: 1024}

// ParseMaxStartups reads sshd_config's MaxStartups forms: "N" (every
// connection past N in their startup refused) or "start:rate:full". An
// *OptionError says what is wrong.
func ParseMaxStartups(s string) (MaxStartups, error) {
	bad := &OptionError{"MaxStartups", fmt.Sprintf("%q is not N or start:rate:full", s)}
	parts := strings.Split(s, ":")
	if len(parts) != 1 && len(parts) != 3 {
		return MaxStartups{}, bad
	}
	n := make([]int, len(parts))
	for i, part := range parts {
		v, err := strconv.Atoi(part)
		if err != nil {
			return MaxStartups{}, bad
		}
		n[i] = v
	}
	m := MaxStartups{Start: n[0], Rate: 100, Full: n[0]}
	if len(n) == 3 {
		m = MaxStartups{Start: n[0], Rate: n[1], Full: n[2]}
	}
	if err := m.check(); err != nil {
		return MaxStartups{}, &OptionError{"MaxStartups", fmt.Sprintf("%q: %s", s, err.Reason)}
	}
	return m, nil
}

// check says what is wrong with m, if anything.
func (m MaxStartups) check() *OptionError {
	switch {
	case m.Start < 1:
		return &OptionError{"MaxStartups", "start must be at least 1"}
	case m.Rate < 1 || m.Rate > 100:
		return &OptionError{"MaxStartups", "rate must be a percentage from 1 to 100"}
	case m.Full < m.Start:
		return &OptionError{"MaxStartups", "full must not be below start"}
	}
	return nil
}

// String is m as sshd_config writes it: "N" when Start and Full are one.
func (m MaxStartups) String() string {
	if m.Start == m.Full {
		return strconv.Itoa(m.Start)
	}
	return fmt.Sprintf("%d:%d:%d", m.Start, m.Rate, m.Full)
}

// Reasons a connection is refused with: its source has
// MaxStartupsPerSource connections in their startup already; all sources
// have MaxStartups (or past Start, the draw said so).
const (
	msgTooManyStartups      = "too many connections from this source still in their handshake"
	msgTooManyStartupsTotal = "too many connections still in their handshake"
)

// startups counts, per source (netsource: an IPv4 address, an IPv6 /64),
// the connections accepted that have not finished their startup: the
// handshake, and with Enroll the enrollment gate. Connections past it are
// not counted: a client may hold as many open as it likes. It counts
// them all together too, for MaxStartups.
type startups struct {
	perSource netsource.Limit // MaxStartupsPerSource
	limit     MaxStartups     // all together
	// rand returns a number in [0, n): rand.IntN, or a test's.
	rand func(n int) int

	mu    sync.Mutex
	total int
}

func newStartups(max int, limit MaxStartups) *startups {
	return &startups{perSource: netsource.Limit{Max: max}, limit: limit, rand: rand.IntN}
}

// startAny counts a connection in its startup among all sources', unless
// MaxStartups refuses it: always at Full, past Start with the chance
// OpenSSH's sshd gives (should_drop_connection: rate% at Start, rising
// linearly to 100% at Full, in whole percent). done ends it, and may be
// called more than once (from one goroutine).
func (s *startups) startAny() (done func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, l := s.total, s.limit; n >= l.Start {
		if n >= l.Full || l.Rate == 100 {
			return nil, false
		}
		p := (100-l.Rate)*(n-l.Start)/(l.Full-l.Start) + l.Rate
		if s.rand(100) < p {
			return nil, false
		}
	}
	s.total++
	return s.ending(func() { s.total-- }), true
}

// ending is the done of a startup: end, under s.mu, the first time it is
// called only.
func (s *startups) ending(end func()) func() {
	ended := false
	return func() {
		if ended {
			return
		}
		ended = true
		s.mu.Lock()
		defer s.mu.Unlock()
		end()
	}
}

// inTotal is the number of connections in their startup, all sources
// together.
func (s *startups) inTotal() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// start counts a connection from ip in its startup, if its source has
// fewer than MaxStartupsPerSource; done ends it, and may be called more
// than once.
func (s *startups) start(ip netip.Addr) (done func(), ok bool) { return s.perSource.Start(ip) }

// inStartup is the number of connections of ip's source in their startup.
func (s *startups) inStartup(ip netip.Addr) int { return s.perSource.Count(ip) }

// admit is the Server's listener.admit, run in the connection's own
// goroutine (listener.acceptLoop says why): a connection refused by
// MaxStartups, or whose source has MaxStartupsPerSource connections in
// their startup already, is closed before a byte is read, counted in the
// metrics and folded into the failure log (a line per refused connection
// would be the flood the limits are against) — MaxStartups' refusals
// into one line for all sources, which a peer with many addresses would
// otherwise make one each.
//
// MaxStartups is asked first, before the connection's address: a
// caller's listener that reads a PROXY protocol header answers
// RemoteAddr once the header has come, and a connection waiting for it
// holds a goroutine too. A connection without an IP address (a Unix
// socket's, an in-memory pipe's, given to Serve by its caller) counts
// there, but has no source to count it against.
func (s *Server) admit(conn net.Conn) (started func(), ok bool) {
	anyDone, ok := s.startups.startAny()
	if !ok {
		s.refuseMaxStartups(conn)
		return nil, false
	}
	ip := remoteAddr(conn)
	if !ip.IsValid() {
		return anyDone, true
	}
	if srcDone, ok := s.startups.start(ip); ok {
		return func() { srcDone(); anyDone() }, true
	}
	anyDone()
	s.metrics.handshake(resultFailed, reasonTooManyStartups)
	reason := fmt.Sprintf("%s (MaxStartupsPerSource %d)", msgTooManyStartups, s.startups.perSource.Max)
	s.l.failures.Failed(ip, slog.LevelWarn, msgRefused, "reason", reason,
		"remote", conn.RemoteAddr().String(), "reason", reason)
	return nil, false
}

// refuseMaxStartups closes a connection MaxStartups refused, then counts
// and logs it.
func (s *Server) refuseMaxStartups(conn net.Conn) {
	conn.Close() // before its address is asked for: it may wait for a header
	s.metrics.handshake(resultFailed, reasonMaxStartups)
	reason := fmt.Sprintf("%s (MaxStartups %v)", msgTooManyStartupsTotal, s.startups.limit)
	s.l.failures.FailedAll(slog.LevelWarn, msgRefused, "reason", reason,
		"remote", conn.RemoteAddr().String(), "reason", reason, "in_handshake", s.startups.inTotal())
}
