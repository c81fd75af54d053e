// Package faillog aggregates the log lines a remote peer can make a
// server write at will — a failed handshake, a refusal by a limit — so
// that one noisy source cannot flood the log: the first line of a
// (source, message, kind) is logged in full, the next ones within an
// interval are counted and logged as one line when it ends
// (remote=SOURCE, repeated=N, in=…). A source is netsource's: an IPv4
// address, an IPv6 /64; failures due to a limit on all sources together
// are one source's, "all" (FailedAll). The proxy's failed handshakes and enrollment
// gate, and enrollment's rate-limit refusals, are logged through it.
package faillog

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/keytool/keytool/internal/netsource"
)

// Failures of one source are logged at once the first time, then at most
// once per Interval, as a count; at most MaxSources (source, message,
// kind) are remembered.
const (
	Interval   = 10 * time.Second
	MaxSources = 1024
	// MaxKindsPerSource bounds the kinds of failure told apart for one
	// source: a reason may hold what the client chose (a record length it
	// claims, the versions it offers, its certificate's subject), so
	// that each connection could be a kind of its own, logged in full.
	// The kinds past it are one: OtherKinds.
	MaxKindsPerSource = 8
)

// OtherKinds is the kind of a source's failures past MaxKindsPerSource.
const OtherKinds = "(reasons of other kinds)"

// key is one source and one kind of failure.
type key struct {
	src  netip.Prefix // netsource.Of the peer's address
	msg  string       // the log message
	kind string       // the reason, without what varies between connections
}

// state is what the log remembers of one key.
type state struct {
	since    time.Time   // when its last line was logged
	repeated int         // failures since, not logged yet
	level    slog.Level  // of the last failure
	detail   string      // attribute name of the reason: "reason" or "alert"
	timer    *time.Timer // logs the summary at since+interval; nil when none is due
}

// Log aggregates failures into a slog.Logger. Its methods may be called
// concurrently. A count still pending is logged when its interval ends
// (a timer), or by Flush.
type Log struct {
	log *slog.Logger

	mu       sync.Mutex
	interval time.Duration
	max      int
	m        map[key]*state
	kinds    map[netip.Prefix]int // how many keys of m each source has
}

// New returns a Log writing to log.
func New(log *slog.Logger) *Log {
	return &Log{log: log, interval: Interval, max: MaxSources, m: map[key]*state{}, kinds: map[netip.Prefix]int{}}
}

// SetInterval sets the interval (Interval by default): for tests, which
// set an hour so that everything is counted until Flush.
func (f *Log) SetInterval(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.interval = d
}

// forget drops k, which m holds.
func (f *Log) forget(k key) {
	delete(f.m, k)
	if f.kinds[k.src]--; f.kinds[k.src] <= 0 {
		delete(f.kinds, k.src)
	}
}

// Failed logs, or counts, one failure of ip, as one of its source's
// (netsource: an IPv6 peer may send from any address of its /64, and
// each would otherwise be logged in full as a source of its own). detail
// and kind are the reason attribute's name and its value without what
// varies between connections; attrs are the full line's.
func (f *Log) Failed(ip netip.Addr, level slog.Level, msg, detail, kind string, attrs ...any) {
	f.failed(netsource.Of(ip), level, msg, detail, kind, attrs...)
}

// everyone is the source of the failures FailedAll counts: every
// address, a prefix netsource.Of never returns. Counts say remote=all.
var everyone = netip.PrefixFrom(netip.IPv6Unspecified(), 0)

// FailedAll logs, or counts, a failure that is not its source's doing
// alone — a limit on everyone's attempts refused it — as Failed does,
// but as one source's for all sources: while such a limit holds, every
// source (each /64 of a /48, which one host may have) would otherwise
// have its first failure logged in full. The first is logged in full,
// with attrs (its own remote among them); the count line says
// remote=all.
func (f *Log) FailedAll(level slog.Level, msg, detail, kind string, attrs ...any) {
	f.failed(everyone, level, msg, detail, kind, attrs...)
}

// failed is Failed and FailedAll, for the source src.
func (f *Log) failed(src netip.Prefix, level slog.Level, msg, detail, kind string, attrs ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := key{src: src, msg: msg, kind: kind}
	now := time.Now()
	st := f.m[k]
	if st == nil && f.kinds[k.src] >= MaxKindsPerSource {
		k.kind = OtherKinds
		st = f.m[k]
	}
	if st != nil && (st.repeated > 0 || now.Sub(st.since) < f.interval) {
		st.repeated++
		st.level, st.detail = level, detail
		if st.timer == nil {
			st.timer = time.AfterFunc(st.since.Add(f.interval).Sub(now), func() { f.flush(k, st) })
		}
		return
	}
	if st == nil {
		f.makeRoom(now)
		st = &state{}
		f.m[k] = st
		f.kinds[k.src]++
	}
	st.since = now
	f.log.Log(context.Background(), level, msg, attrs...)
}

// flush logs the summary of k's failures, if st is still k's.
func (f *Log) flush(k key, st *state) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m[k] == st {
		f.summary(k, st, time.Now())
	}
}

// summary logs the failures counted for k, and starts a new interval.
func (f *Log) summary(k key, st *state, now time.Time) {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	if st.repeated == 0 {
		return
	}
	in := now.Sub(st.since)
	if in >= time.Second {
		in = in.Round(time.Second)
	}
	remote := "all"
	if k.src != everyone {
		remote = netsource.String(k.src)
	}
	f.log.Log(context.Background(), st.level, k.msg, "remote", remote, st.detail, k.kind,
		"repeated", st.repeated, "in", in.Round(time.Millisecond).String())
	st.repeated, st.since = 0, now
}

// makeRoom forgets, when the log is full, the sources whose interval has
// ended with nothing to report; failing that, the one logged longest ago
// (its count is logged first).
func (f *Log) makeRoom(now time.Time) {
	if len(f.m) < f.max {
		return
	}
	var oldest key
	var first time.Time
	for k, st := range f.m {
		if st.repeated == 0 && now.Sub(st.since) >= f.interval {
			f.forget(k)
			continue
		}
		if first.IsZero() || st.since.Before(first) {
			oldest, first = k, st.since
		}
	}
	if len(f.m) >= f.max {
		f.summary(oldest, f.m[oldest], now)
		f.forget(oldest)
	}
}

// Flush logs every count still pending and forgets every source.
func (f *Log) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for k, st := range f.m {
		f.summary(k, st, now)
		f.forget(k)
	}
}

// Pending is the number of failures of msg counted and not logged yet.
func (f *Log) Pending(msg string) (n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, st := range f.m {
		if k.msg == msg {
			n += st.repeated
		}
	}
	return n
}
