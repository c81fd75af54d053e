package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// TestRefusalReason: each trust decision's typed error — as crypto/tls
// returns it from VerifyConnection, wrapped or not — counts under its own
// reason, and failures that are not decisions under how they failed.
func TestRefusalReason(t *testing.T) {
	entry := &authkeys.Entry{Name: "alice"}
	for _, c := range []struct {
		err            error
		result, reason string
	}{
		{&authkeys.NotAuthorizedError{}, resultRefused, reasonUnknown},
		{fmt.Errorf("tls: %w", &authkeys.NotAuthorizedError{}), resultRefused, reasonUnknown},
		{&authkeys.RevokedError{File: "r.json"}, resultRefused, reasonRevoked},
		{&authkeys.RevokedError{Err: errors.New("unreadable")}, resultRefused, reasonRevocationFailed},
		{&knownhosts.RevokedError{Err: errors.New("unreadable")}, resultRefused, reasonRevocationFailed},
		{&tlsbridge.RevokedCertificateError{}, resultRefused, reasonRevoked},
		{&authkeys.ExpiredError{Entry: entry}, resultRefused, reasonExpired},
		{&authkeys.SourceNotAllowedError{Entry: entry}, resultRefused, reasonFrom},
		{&knownhosts.KeyChangedError{}, resultRefused, reasonChanged},
		{&knownhosts.UnknownHostError{}, resultRefused, reasonUnknown},
		{&tlsbridge.SkippedTrustError{}, resultRefused, reasonSkipped},
		// Not authorized while a file it may be in is skipped, the file's
		// problem a timeout: skipped, not a failed handshake.
		{fmt.Errorf("tls: %w", &authkeys.NotAuthorizedError{Skipped: 1, First: &authkeys.Problem{Path: "f.jwk", Err: context.DeadlineExceeded}}), resultRefused, reasonSkipped},
		{&tlsbridge.CARefusedError{}, resultRefused, reasonCARefused},
		{context.DeadlineExceeded, resultFailed, reasonTimeout},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: unknown certificate authority")}, resultFailed, reasonKeyRefused},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: protocol version not supported")}, resultFailed, reasonTLS},
		{io.EOF, resultFailed, reasonTLS},
	} {
		if r, why := refusalReason(c.err); r != c.result || why != c.reason {
			t.Errorf("%T %v: %s/%s, want %s/%s", c.err, c.err, r, why, c.result, c.reason)
		}
	}
}

// TestMetricsExposition: every handshake series exists at zero from the
// start, counts go where they are told, and a nil *Metrics counts nothing
// without failing.
func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	m.handshake(resultRefused, reasonExpired)
	m.opened()
	m.closed(10, 20)
	var nilMetrics *Metrics
	nilMetrics.handshake(resultAdmitted, reasonKey)
	nilMetrics.opened()
	nilMetrics.closed(1, 1)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`keytool_proxy_handshakes_total{reason="expired",result="refused"} 1`,
		`keytool_proxy_handshakes_total{reason="key",result="admitted"} 0`,
		`keytool_proxy_handshakes_total{reason="from",result="refused"} 0`,
		`keytool_proxy_handshakes_total{reason="tls_error",result="failed"} 0`,
		`keytool_proxy_open_connections 0`,
		`keytool_proxy_target_errors_total{reason="response_timeout"} 0`,
		`keytool_proxy_target_errors_total{reason="unreachable"} 0`,
		`keytool_proxy_target_errors_total{reason="connect_timeout"} 0`,
		`keytool_proxy_target_errors_total{reason="bad_response"} 0`,
		`keytool_proxy_target_errors_total{reason="truncated_response"} 0`,
		`keytool_proxy_requests_refused_total{reason="connect"} 0`,
		`keytool_proxy_requests_refused_total{reason="revoked"} 0`,
		`keytool_proxy_requests_refused_total{reason="tls_error"} 0`,
		`keytool_proxy_bytes_total{direction="in"} 10`,
		`keytool_proxy_bytes_total{direction="out"} 20`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
