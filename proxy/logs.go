package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/netsource"
)

// TrustStore is a trust store whose reloads a proxy logs ("trust
// reloaded"): the *authkeys.Store a Server's TLS decides with, the
// *knownhosts.Store of a Client's.
type TrustStore interface {
	OnChange(fn func(authkeys.Change)) (stop func())
}

// logReloads logs what each reload of a trust store changed: what names
// the store's keys ("authorized", "pinned").
func logReloads(log *slog.Logger, what string) func(authkeys.Change) {
	return func(c authkeys.Change) {
		attrs := []any{
			what, fmt.Sprintf("+%d/-%d", c.Added, c.Removed),
			"revoked", fmt.Sprintf("+%d/-%d", c.Revoked, c.Unrevoked),
			"skipped", c.Skipped, "keys", c.Keys,
		}
		if c.RevocationFailed {
			attrs = append(attrs, "revocation_failed", true)
		}
		log.Info("trust reloaded", append(attrs, "took", c.Took.Round(time.Microsecond).String())...)
	}
}

// Failures of one source are logged at once the first time, then at most
// once per failureInterval, as a count; at most maxFailureSources (source,
// kind) pairs are remembered.
const (
	failureInterval   = 10 * time.Second
	maxFailureSources = 1024
	// maxKindsPerSource bounds the kinds of failure told apart for one
	// source: a reason holds what the client chose (a record length it
	// claims, the versions it offers, its certificate's subject), so
	// that each connection could be a kind of its own, logged in full.
	// The kinds past it are one: otherKinds.
	maxKindsPerSource = 8
)

// otherKinds is the kind of a source's failures past maxKindsPerSource.
const otherKinds = "(reasons of other kinds)"

// failureKey is one source and one kind of failure.
type failureKey struct {
	src  netip.Prefix // netsource.Of the client's address
	msg  string       // the log message
	kind string       // the reason, without what varies between connections
}

// failureState is what the log remembers of one failureKey.
type failureState struct {
	since    time.Time   // when its last line was logged
	repeated int         // failures since, not logged yet
	level    slog.Level  // of the last failure
	detail   string      // attribute name of the reason: "reason" or "alert"
	timer    *time.Timer // logs the summary at since+interval; nil when none is due
}

// failureLog aggregates the lines a remote peer can make the proxy log
// per connection — failed handshakes, and with Enroll the gate's lines
// about unknown keys — so that one noisy client cannot flood the log: the
// first line of a (source, kind) is logged in full, the next ones within
// the interval are counted and logged as one line (remote=IP,
// repeated=N, in=…) when it ends.
type failureLog struct {
	log      *slog.Logger
	interval time.Duration
	max      int

	mu    sync.Mutex
	m     map[failureKey]*failureState
	kinds map[netip.Prefix]int // how many keys of m each source has
}

func newFailureLog(log *slog.Logger) *failureLog {
	return &failureLog{log: log, interval: failureInterval, max: maxFailureSources, m: map[failureKey]*failureState{}, kinds: map[netip.Prefix]int{}}
}

// forget drops k, which m holds.
func (f *failureLog) forget(k failureKey) {
	delete(f.m, k)
	if f.kinds[k.src]--; f.kinds[k.src] <= 0 {
		delete(f.kinds, k.src)
	}
}

// failed logs, or counts, one failure of ip, as one of its source's
// (netsource: an IPv6 client may send from any address of its /64, and
// each would otherwise be logged in full as a source of its own). detail
// and kind are the
// reason attribute's name and its value without what varies between
// connections; attrs are the full line's.
func (f *failureLog) failed(ip netip.Addr, level slog.Level, msg, detail, kind string, attrs ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := failureKey{src: netsource.Of(ip), msg: msg, kind: kind}
	now := time.Now()
	st := f.m[k]
	if st == nil && f.kinds[k.src] >= maxKindsPerSource {
		k.kind = otherKinds
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
		st = &failureState{}
		f.m[k] = st
		f.kinds[k.src]++
	}
	st.since = now
	f.log.Log(context.Background(), level, msg, attrs...)
}

// flush logs the summary of k's failures, if st is still k's.
func (f *failureLog) flush(k failureKey, st *failureState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m[k] == st {
		f.summary(k, st, time.Now())
	}
}

// summary logs the failures counted for k, and starts a new interval.
func (f *failureLog) summary(k failureKey, st *failureState, now time.Time) {
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
	f.log.Log(context.Background(), st.level, k.msg, "remote", netsource.String(k.src), st.detail, k.kind,
		"repeated", st.repeated, "in", in.Round(time.Millisecond).String())
	st.repeated, st.since = 0, now
}

// makeRoom forgets, when the log is full, the sources whose interval has
// ended with nothing to report; failing that, the one logged longest ago
// (its count is logged first).
func (f *failureLog) makeRoom(now time.Time) {
	if len(f.m) < f.max {
		return
	}
	var oldest failureKey
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

// flushAll logs every count still pending and forgets every source.
func (f *failureLog) flushAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for k, st := range f.m {
		f.summary(k, st, now)
		f.forget(k)
	}
}

// Messages of failed handshakes, and of the enrollment gate.
const (
	msgRefused      = "refused"
	msgFailed       = "handshake failed"
	msgKeyRefused   = "client refused this server's key"
	alertTextPrefix = "tls: "
	msgEnrollOnly   = "not authorized: serving enrollment only"
	msgNoRequest    = "not authorized: no HTTP request, answered 403"
)

// keyAlerts are the alerts a TLS client sends when it does not accept the
// server's certificate (as crypto/tls words them).
var keyAlerts = map[string]bool{
	"tls: bad certificate": true, "tls: unsupported certificate": true, "tls: revoked certificate": true,
	"tls: expired certificate": true, "tls: unknown certificate": true, "tls: unknown certificate authority": true,
}

// handshakeFailure says how to log a failed handshake: the message, the
// reason attribute's name and value, and the reason without what varies
// between connections (addresses, ports). Our refusal of the client's key
// is "refused"; the client refusing ours (an alert about certificates
// before it showed its own) is "client refused this server's key"; the
// client giving up otherwise, going away, or a timeout is "handshake
// failed".
func handshakeFailure(err error, fp string, timeout time.Duration) (msg, detail, reason, kind string) {
	var op *net.OpError
	var ne net.Error
	isOp := errors.As(err, &op)
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		reason = fmt.Sprintf("no handshake within %v", timeout)
		return msgFailed, "reason", reason, reason
	case isOp && op.Op == "remote error" && fp == "" && keyAlerts[op.Err.Error()]:
		alert := strings.TrimPrefix(op.Err.Error(), alertTextPrefix)
		return msgKeyRefused, "alert", alert, alert
	case (isOp && op.Op == "remote error") || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, context.Canceled):
		msg = msgFailed
	default:
		msg = msgRefused
	}
	kind = err.Error()
	if isOp && op.Err != nil {
		kind = op.Err.Error() // without the addresses
	}
	return msg, "reason", err.Error(), withoutFingerprints(kind)
}

// withoutFingerprints is a reason with the keys' fingerprints left out,
// as a kind of failure: a client trying one key after another is one
// source of one kind.
func withoutFingerprints(reason string) string {
	return fingerprints.ReplaceAllLiteralString(reason, "SHA256:…")
}

// fingerprints matches the keys' fingerprints in a reason.
var fingerprints = regexp.MustCompile(`SHA256:[A-Za-z0-9+/]{43}`)

// alertConn remembers the last bytes read during the handshake, to find
// the alert of a client that refused our key in TLS 1.3 before it had
// its handshake keys: OpenSSL then sends the alert in clear, which
// crypto/tls, expecting an encrypted record, reports as its own "bad
// record MAC".
type alertConn struct {
	net.Conn
	tail [7]byte // the last bytes read: tail[:n]
	n    int
	done bool // the handshake is over: nothing more to remember
}

func (c *alertConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.done && n > 0 {
		var buf [2 * len(c.tail)]byte
		m := copy(buf[:], c.tail[:c.n])
		b := p[:n]
		if len(b) > len(c.tail) {
			b = b[len(b)-len(c.tail):]
		}
		m += copy(buf[m:], b)
		c.n = copy(c.tail[:], buf[max(0, m-len(c.tail)):m])
	}
	return n, err
}

// clearAlert is the alert that the last record read held, if it was a
// fatal alert in clear (content type 21, length 2, level 2).
func (c *alertConn) clearAlert() (tls.AlertError, bool) {
	t := c.tail
	if c.n < len(t) || t[0] != 21 || t[1] != 3 || t[3] != 0 || t[4] != 2 || t[5] != 2 {
		return 0, false
	}
	return tls.AlertError(t[6]), true
}

// clientAlert turns a handshake error that is our failure to decrypt a
// record the client sent in clear, an alert, into that alert (as a remote
// error); other errors are returned as they are.
func (c *alertConn) clientAlert(err error) error {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "local error" || op.Err.Error() != "tls: bad record MAC" {
		return err
	}
	if a, ok := c.clearAlert(); ok {
		return &net.OpError{Op: "remote error", Err: a}
	}
	return err
}
