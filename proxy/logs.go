package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/keytool/keytool/authkeys"
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
		if c.Generation <= 1 {
			// The first load (a store authkeys.OpenEarly made publishes
			// it while serving): the start's own lines say what it read.
			return
		}
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
// failed". result is the error's refusalReason, which the caller has
// counted.
func handshakeFailure(err error, result, fp string, timeout time.Duration) (msg, detail, reason, kind string) {
	var op *net.OpError
	var ne net.Error
	isOp := errors.As(err, &op)
	switch {
	case result == resultRefused:
		// The trust decision's refusal, first: the problem of a skipped
		// input it names (authkeys.NotAuthorizedError.First,
		// tlsbridge.SkippedTrustError.First) may itself be a timeout, an
		// EOF, a cancelled context, which is no failed handshake.
		msg = msgRefused
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
