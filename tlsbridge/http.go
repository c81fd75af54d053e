package tlsbridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
)

type peerContextKey struct{}

// PeerFromContext returns the Peer that Server.Middleware or
// Server.RequireAuthenticated stored in a request's context, or nil.
func PeerFromContext(ctx context.Context) *Peer {
	p, _ := ctx.Value(peerContextKey{}).(*Peer)
	return p
}

// connAddrKey holds, in a request's context, the remote address of the
// connection it came on (ConnContext).
type connAddrKey struct{}

// ConnContext is the hook for http.Server.ConnContext that PeerOf (and so
// Middleware, RequireAuthenticated and enrollment's rate limits) needs to
// check an entry's "from" networks: it records the remote address of each
// connection — the one its handshake was decided with — in the context of
// every request on it, HTTP/1.1 and HTTP/2 alike.
//
// r.RemoteAddr cannot serve: middleware that an application puts in front
// of its handlers (chi's middleware.RealIP, gorilla's
// handlers.ProxyHeaders) sets it from X-Real-IP or X-Forwarded-For, which
// the client writes, so that a key allowed only from 10.0.0.0/8 would get
// in from anywhere with "X-Real-IP: 10.0.0.1". Nothing a request carries
// changes its context's value.
//
// A server with a ConnContext of its own uses HookConnContext.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connAddrKey{}, addrOf(c))
}

// HookConnContext installs ConnContext on hs, which has not started
// serving. A ConnContext hs already has is kept and runs first: keytool's
// records the address in the context it returns.
func HookConnContext(hs *http.Server) {
	theirs := hs.ConnContext
	if theirs == nil {
		hs.ConnContext = ConnContext
		return
	}
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return ConnContext(theirs(ctx, c), c)
	}
}

// RemoteAddrFromContext returns the remote address of the connection a
// request came on, as ConnContext recorded it in the request's context,
// and whether it did. The address is the zero Addr for a connection that
// is not IP (a Unix socket), as in the handshake.
func RemoteAddrFromContext(ctx context.Context) (netip.Addr, bool) {
	a, ok := ctx.Value(connAddrKey{}).(netip.Addr)
	return a, ok
}

// PeerOf returns who made an HTTP request: r.TLS's client key, decided
// against the current trust state, with "from" rules checked against the
// address of the request's connection that ConnContext recorded — never
// r.RemoteAddr, which middleware rewrites from the client's headers (see
// ConnContext). On an http.Server without ConnContext, a key with "from"
// networks is not authenticated (Peer.Err is a *NoConnContextError, the
// client told source_not_allowed); other keys are decided as usual.
func (s *Server) PeerOf(r *http.Request) (*Peer, error) {
	remote, known := RemoteAddrFromContext(r.Context())
	p, err := s.Peer(r.TLS, remote)
	if err == nil && !known && p.Verdict == authkeys.WrongNetwork {
		p.Err = &NoConnContextError{Err: p.Err}
	}
	return p, err
}

// NoConnContextError means a request's client key may connect only from
// some networks ("from") and its connection's address is unknown: the
// http.Server serving it has no ConnContext. r.RemoteAddr is not used in
// its place (see ConnContext). Err is the store's refusal for an unknown
// address.
type NoConnContextError struct {
	Err error
}

func (e *NoConnContextError) Error() string {
	return fmt.Sprintf("tlsbridge: the request's connection address is unknown, as its http.Server has no tlsbridge.ConnContext "+
		"(set ConnContext: tlsbridge.ConnContext, or call tlsbridge.HookConnContext; r.RemoteAddr is not used, since middleware sets it from the client's headers): %v", e.Err)
}

func (e *NoConnContextError) Unwrap() error { return e.Err }

// Middleware stores the request's Peer in its context (PeerFromContext),
// authenticated or not, and calls next. Use it in AllowUnknown mode on
// the routes that serve unknown clients, such as enrollment. A request
// without a client certificate is answered 403 (ReasonNoCertificate).
func (s *Server) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.PeerOf(r)
		if err != nil {
			WriteForbidden(w, ReasonNoCertificate, nil)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerContextKey{}, p)))
	})
}

// RequireAuthenticated is Middleware that answers 403 Forbidden, with a
// ForbiddenBody, to every peer that is not authenticated. The decision is
// taken for each request against the current trust state, so a
// long-lived connection from a key removed or revoked since its handshake
// is turned away at its next request.
//
// The body is for the remote client, whom the server does not trust: it
// holds a reason code and the client's own fingerprint and key ID, never
// the server's files, entries, networks or commands. Why exactly the
// client was refused is in Peer.Err, for the server's log.
func (s *Server) RequireAuthenticated(next http.Handler) http.Handler {
	return s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := PeerFromContext(r.Context()); !p.Authenticated() {
			WriteForbidden(w, p.reason(), &p.SPKIHash)
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// ForbiddenReason says, in ForbiddenBody, why a client was turned away: a
// fixed code for programs, which tells the client nothing about the
// server's configuration.
type ForbiddenReason string

// The reasons of ForbiddenBody.
const (
	// ReasonNotAuthorized: the client's key is not authorized (and, in
	// PKI mode, was not considered by the CA: it is the catch-all for a
	// refusal of another kind).
	ReasonNotAuthorized ForbiddenReason = "not_authorized"
	// ReasonRevoked: the client's key, or in PKI mode its certificate, is
	// revoked.
	ReasonRevoked ForbiddenReason = "revoked"
	// ReasonExpired: the authorization of the client's key has expired.
	ReasonExpired ForbiddenReason = "expired"
	// ReasonSourceNotAllowed: the key may not connect from the client's
	// address.
	ReasonSourceNotAllowed ForbiddenReason = "source_not_allowed"
	// ReasonCARefused: in PKI mode, the client's certificate does not
	// verify against the CA, or the CRL cannot vouch for it.
	ReasonCARefused ForbiddenReason = "ca_refused"
	// ReasonNoCertificate: the client presented no certificate.
	ReasonNoCertificate ForbiddenReason = "no_certificate"
	// ReasonUnavailable: the server cannot decide now — a revocation list
	// or a file of PKI mode cannot be used — and refuses everyone until
	// its administrator fixes it.
	ReasonUnavailable ForbiddenReason = "unavailable"
)

// forbiddenMessages are the fixed sentences of ForbiddenBody.Message.
var forbiddenMessages = map[ForbiddenReason]string{
	ReasonNotAuthorized:    "This client's key is not authorized by the server.",
	ReasonRevoked:          "This client's key or certificate is revoked on the server.",
	ReasonExpired:          "The authorization of this client's key has expired.",
	ReasonSourceNotAllowed: "This client's key may not connect from this client's address.",
	ReasonCARefused:        "This client's certificate is not accepted by the server's certificate authority.",
	ReasonNoCertificate:    "This client presented no certificate: the server admits clients by their key.",
	ReasonUnavailable:      "The server cannot check client keys right now and refuses every client.",
}

// Reason is the code for why p is not authenticated, as
// RequireAuthenticated sends it to the client (ForbiddenBody.Reason), for
// a program that answers its refusals itself with WriteForbidden. A nil
// Peer (a request no Middleware saw) is ReasonNoCertificate.
func (p *Peer) Reason() ForbiddenReason {
	if p == nil {
		return ReasonNoCertificate
	}
	return p.reason()
}

// reason is the code for why p is not authenticated: from the store's
// verdict when it is final (so a custom store's own errors map too), else
// from the error.
func (p *Peer) reason() ForbiddenReason {
	switch p.Verdict {
	case authkeys.Revoked:
		if r := ReasonOf(p.Err); r == ReasonUnavailable {
			return r
		}
		return ReasonRevoked
	case authkeys.Expired:
		return ReasonExpired
	case authkeys.WrongNetwork:
		return ReasonSourceNotAllowed
	}
	return ReasonOf(p.Err)
}

// ReasonOf returns the reason code for why a peer is not authenticated
// (Peer.Err), as RequireAuthenticated sends it to the client.
func ReasonOf(err error) ForbiddenReason {
	var (
		revoked  *authkeys.RevokedError
		expired  *authkeys.ExpiredError
		source   *authkeys.SourceNotAllowedError
		certRev  *RevokedCertificateError
		caRef    *CARefusedError
		pkiFile  *PKIFileError
		noClient *noCertificateError
		skipped  *SkippedTrustError
		entry    *authkeys.SkippedEntryError
	)
	switch {
	case errors.As(err, &noClient):
		return ReasonNoCertificate
	case errors.As(err, &revoked):
		if revoked.Err != nil {
			return ReasonUnavailable
		}
		return ReasonRevoked
	case errors.As(err, &certRev):
		return ReasonRevoked
	case errors.As(err, &expired):
		return ReasonExpired
	case errors.As(err, &source):
		return ReasonSourceNotAllowed
	case errors.As(err, &pkiFile), errors.As(err, &skipped), errors.As(err, &entry):
		return ReasonUnavailable
	case errors.As(err, &caRef):
		return ReasonCARefused
	}
	return ReasonNotAuthorized
}

// ForbiddenBody is the JSON body of a 403 answer to an untrusted client.
// It says nothing of the server but the reason code and a fixed sentence
// for it; the fingerprint and key ID are the client's own, so that it can
// tell the server's administrator which key to authorize.
type ForbiddenBody struct {
	Error       string          `json:"error"` // always "forbidden"
	Reason      ForbiddenReason `json:"reason"`
	Message     string          `json:"message"` // the reason's fixed sentence
	Fingerprint string          `json:"fingerprint,omitempty"`
	KeyID       string          `json:"key_id,omitempty"`
}

// Message is the fixed sentence of ForbiddenBody.Message for r, and
// whether r is one of the reasons above: a client can tell keytool's
// refusal from a look-alike, and never prints a reason it does not know.
func (r ForbiddenReason) Message() (string, bool) {
	msg, ok := forbiddenMessages[r]
	return msg, ok
}

// WriteForbidden answers 403 Forbidden with the ForbiddenBody for reason
// and, when known, the SHA-256 of the client's SubjectPublicKeyInfo.
func WriteForbidden(w http.ResponseWriter, reason ForbiddenReason, spkiHash *[32]byte) {
	setForbiddenHeader(w.Header())
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(forbiddenBody(reason, spkiHash)) // the client may be gone; nothing to do
}

// WriteForbiddenResponse writes to w, a connection on which no HTTP
// server runs, the whole HTTP/1.1 answer that WriteForbidden gives, with
// "Connection: close": for a server that turns away a client which did
// not send an HTTP request (enroll.ServeConn), so that the client can
// still tell keytool's refusal of its key from any other answer.
func WriteForbiddenResponse(w io.Writer, reason ForbiddenReason, spkiHash *[32]byte) error {
	body, err := json.Marshal(forbiddenBody(reason, spkiHash))
	if err != nil {
		return err // unreachable: the body is strings
	}
	body = append(body, '\n') // as json.Encoder ends it
	resp := &http.Response{
		StatusCode: http.StatusForbidden, ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Close: true,
	}
	setForbiddenHeader(resp.Header)
	return resp.Write(w)
}

// forbiddenBody is the ForbiddenBody for reason (an unknown one is
// ReasonNotAuthorized, the catch-all) and the client's key, when known.
func forbiddenBody(reason ForbiddenReason, spkiHash *[32]byte) ForbiddenBody {
	msg, ok := forbiddenMessages[reason]
	if !ok {
		reason, msg = ReasonNotAuthorized, forbiddenMessages[ReasonNotAuthorized]
	}
	body := ForbiddenBody{Error: "forbidden", Reason: reason, Message: msg}
	if spkiHash != nil {
		body.Fingerprint, body.KeyID = jwk.FormatFingerprint(*spkiHash), jwk.FormatKeyID(*spkiHash)
	}
	return body
}

func setForbiddenHeader(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
}
