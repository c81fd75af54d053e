package tlsbridge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
)

type peerContextKey struct{}

// PeerFromContext returns the Peer that Server.Middleware or
// Server.RequireAuthenticated stored in a request's context, or nil.
func PeerFromContext(ctx context.Context) *Peer {
	p, _ := ctx.Value(peerContextKey{}).(*Peer)
	return p
}

// PeerOf returns who made an HTTP request: r.TLS's client key, decided
// against the current trust state, and r.RemoteAddr for "from" rules.
func (s *Server) PeerOf(r *http.Request) (*Peer, error) {
	var remote netip.Addr
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		remote = ap.Addr().Unmap()
	}
	return s.Peer(r.TLS, remote)
}

// Middleware stores the request's Peer in its context (PeerFromContext),
// authenticated or not, and calls next. Use it in AllowUnknown mode on
// the routes that serve unknown clients, such as enrollment.
func (s *Server) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.PeerOf(r)
		if err != nil {
			writeForbidden(w, nil, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerContextKey{}, p)))
	})
}

// RequireAuthenticated is Middleware that answers 403 Forbidden, with a
// JSON body saying why and what to do, to every peer that is not
// authenticated. The decision is taken for each request against the
// current trust state, so a long-lived connection from a key removed or
// revoked since its handshake is turned away at its next request.
func (s *Server) RequireAuthenticated(next http.Handler) http.Handler {
	return s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := PeerFromContext(r.Context()); !p.Authenticated() {
			writeForbidden(w, p, p.Err)
			return
		}
		next.ServeHTTP(w, r)
	}))
}

// ForbiddenBody is the JSON body of a 403 answer to an untrusted client.
type ForbiddenBody struct {
	Error       string `json:"error"`
	ErrorCode   int    `json:"error_code"`
	Fingerprint string `json:"fingerprint,omitempty"`
	KeyID       string `json:"key_id,omitempty"`
	Reason      string `json:"reason"`
	Hint        string `json:"hint"`
}

func writeForbidden(w http.ResponseWriter, p *Peer, reason error) {
	body := ForbiddenBody{
		Error:     "this client's key is not trusted by the server",
		ErrorCode: http.StatusForbidden,
		Hint:      "send your public key (printed by: keytool pub) to the server's administrator, who can run: keytool authorize --name NAME FILE",
	}
	if reason != nil {
		body.Reason = reason.Error()
	}
	if p != nil {
		body.Fingerprint, body.KeyID = p.Fingerprint(), p.KeyID()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusForbidden)
	_ = json.NewEncoder(w).Encode(body) // the client may be gone; nothing to do
}
