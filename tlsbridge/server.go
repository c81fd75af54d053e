package tlsbridge

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
)

// ClientKeys decides which client keys may connect: *authkeys.Store, or a
// store of your own. Its authkeys.Decision is the whole contract: a
// custom store that answers Revoked gets exactly what the built-in one
// gets (refused in the handshake even under AllowUnknown, no CA in its
// place), Unknown lets PKI mode or AllowUnknown decide, and so on
// (docs/design.md, "Decisions").
type ClientKeys interface {
	Decide(sum [32]byte, remote netip.Addr) authkeys.Decision
}

// ServerOptions configure a Server.
type ServerOptions struct {
	// Clients lists the client keys that may connect. Required.
	Clients ClientKeys
	// PKI, if set, also accepts clients whose certificate chains to its CA
	// and is not revoked by its CRL, when their key is not pinned.
	PKI *PKI
	// Purpose is what the server's connections are for: PKI mode admits
	// clients by the CAs installed for it if there are any, else by the
	// general CAs, and never by another purpose's (docs/design.md,
	// "Purposes"). "" uses the general CAs only. Authorized keys apply to
	// every purpose. A purpose is a name by ValidCAName's rule; NewServer
	// refuses another.
	Purpose string
	// AllowUnknown lets clients whose key is not authorized finish the
	// handshake; they are then marked unauthenticated (Peer.Err and
	// Peer.Verdict say why), and must be turned away by the application,
	// for instance with Server.RequireAuthenticated, which tells them why
	// in a 403. A revoked key, or a certificate its CA's CRL revokes, is
	// refused in the handshake all the same. Enrollment needs this mode,
	// and is for the clients of which Peer.MayEnroll holds only.
	AllowUnknown bool
	// Logger receives a line for each client key authorized by rotation
	// (authkeys.Entry.AcceptRotation); nil means slog.Default().
	Logger *slog.Logger
	// OnRefused, if set, is told of each client the Server refuses in a
	// handshake: its address (the zero Addr when the connection gives
	// none) and why, as the typed error the handshake fails with —
	// *authkeys.NotAuthorizedError, *authkeys.RevokedError,
	// *authkeys.ExpiredError, *authkeys.SourceNotAllowedError,
	// *CARefusedError, *RevokedCertificateError, *KeyFormError, … — where
	// net/http's ErrorLog gets only its text ("http: TLS handshake error
	// from …"). It runs inside the handshake, on its goroutine, and may be
	// called from many at once: count, log, never block. Not told: a
	// handshake crypto/tls ends before the Server decides (no certificate,
	// a protocol error) or after (a bad CertificateVerify), a refusal by a
	// VerifyConnection of the caller's, and a client AllowUnknown lets
	// finish its handshake unauthenticated (Peer.Err).
	OnRefused func(remote netip.Addr, err error)
}

// Server is the server side of keytool's mutual TLS: it presents an
// identity and decides, in VerifyConnection, which clients get in.
type Server struct {
	id   IdentitySource
	opts ServerOptions
	// rotationFailed: the clients whose next key could not be
	// authorized lately (acceptRotation).
	rotationFailed rotationBackoff
	// awaiting: the connections whose admission a LiveConns waits on
	// (awaitAdmission), by the net.Conn under their *tls.Conn.
	awaitMu  sync.Mutex
	awaiting map[net.Conn][]func(tls.ConnectionState)
}

// NewServer returns a Server presenting id and admitting the clients that
// opts allow. id is an *Identity, or an *IdentityWatcher whose current
// identity each new handshake presents (docs/design.md, "Identity
// reload").
func NewServer(id IdentitySource, opts ServerOptions) (*Server, error) {
	if !hasPrivateKey(id) {
		return nil, errors.New("tlsbridge: the server needs an identity with its private key")
	}
	if opts.Clients == nil {
		return nil, errors.New("tlsbridge: ServerOptions.Clients is required (an *authkeys.Store)")
	}
	if err := checkPurpose(opts.Purpose); err != nil {
		return nil, err
	}
	return &Server{id: id, opts: opts}, nil
}

// TLSConfig returns a configuration for tls.Listen, http.Server or gRPC's
// credentials.NewTLS. Trust changes in the stores apply from the next
// handshake on, resumed sessions included.
//
// Change the configuration returned, not a Clone of it: each handshake
// runs on a copy of this one made at that handshake (GetConfigForClient,
// which crypto/tls calls on whichever clone serves), so what a clone
// changes is not used — a clone's MinVersion TLS 1.3 still admits TLS
// 1.2 — and a clone with SessionTicketsDisabled fails every TLS 1.3
// handshake (crypto/tls takes the ticket keys from the clone). The same
// holds for a configuration given to Configure.
func (s *Server) TLSConfig() *tls.Config {
	c := &tls.Config{}
	s.configure(c) // an empty configuration has nothing to conflict with
	return c
}

// Configure adds keytool's server side to an existing configuration: the
// identity certificate, client certificates required, the TLS policy, and
// the verification. Fields the caller set are never silently replaced:
// settings that would conflict with keytool's (other certificates, CA-based
// client verification, a weaker TLS version or other cipher suites,
// renegotiation, a GetConfigForClient hook) make Configure fail and leave
// c unchanged. A VerifyConnection the caller set still runs, after
// keytool's, and so does one assigned to c after Configure (or to
// TLSConfig's result), in its place; one that calls the VerifyConnection
// Configure left on c refuses every handshake, since that one refuses.
func (s *Server) Configure(c *tls.Config) error {
	if conflicts := serverConflicts(c); len(conflicts) > 0 {
		return conflictError("server", conflicts)
	}
	s.configure(c)
	return nil
}

// hasPrivateKey reports whether src gives an identity with its private
// key.
func hasPrivateKey(src IdentitySource) bool {
	if src == nil {
		return false
	}
	id := src.CurrentIdentity()
	return id != nil && id.Key != nil && id.Key.IsPrivate()
}

// serverConflicts lists the settings of c that the server side would have
// to replace.
func serverConflicts(c *tls.Config) []string {
	var conflicts []string
	if len(c.Certificates) > 0 || c.GetCertificate != nil {
		conflicts = append(conflicts, "Certificates/GetCertificate (the server presents the identity's certificate)")
	}
	if c.ClientAuth != tls.NoClientCert && c.ClientAuth != tls.RequireAnyClientCert {
		conflicts = append(conflicts, fmt.Sprintf("ClientAuth %v (the server needs RequireAnyClientCert and verifies in VerifyConnection)", c.ClientAuth))
	}
	if c.ClientCAs != nil {
		conflicts = append(conflicts, "ClientCAs (use ServerOptions.PKI for CA-issued client certificates)")
	}
	if c.GetConfigForClient != nil {
		conflicts = append(conflicts, "GetConfigForClient (the server uses it to learn the client's address)")
	}
	return append(conflicts, policyConflicts(c)...)
}

// conflictError says which settings of a tls.Config Configure refused.
func conflictError(side string, conflicts []string) error {
	return fmt.Errorf("tlsbridge: the tls.Config conflicts with the %s settings: %s", side, strings.Join(conflicts, "; "))
}

// configure sets the server side on c, which serverConflicts accepted.
func (s *Server) configure(c *tls.Config) {
	theirs := c.VerifyConnection
	applyPolicy(c)
	// The identity of the moment: a reloaded one applies from the next
	// handshake, and open connections keep theirs.
	c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return &s.id.CurrentIdentity().Certificate, nil
	}
	c.ClientAuth = tls.RequireAnyClientCert
	// A handshake that somehow bypasses GetConfigForClient is refused.
	refuse := func(tls.ConnectionState) error { return errBypassed }
	c.VerifyConnection = refuse
	// The client's address is known only per connection; VerifyConnection
	// is set on a per-connection copy. The copy shares the session ticket
	// keys of c, so resumption works.
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		conn := hello.Conn
		remote := addrOf(conn)
		// The handshake budget of a connection accepted by a
		// BudgetListener (or put under NewBudgetConn), under whatever
		// wrappers of the caller's that look through NetConn: lifted
		// once the client is admitted, whoever drives the handshake.
		budget := budgetOf(hello.Conn)
		cc := c.Clone()
		cc.GetConfigForClient = nil
		// A VerifyConnection assigned to c since (cfg :=
		// srv.TLSConfig(); cfg.VerifyConnection = …) runs in the place
		// of the one found by Configure: the copy would skip it.
		after := cc.VerifyConnection
		if sameFunc(after, refuse) {
			after = theirs
		}
		cc.VerifyConnection = func(cs tls.ConnectionState) error {
			if _, err := s.verify(cs, remote); err != nil {
				if s.opts.OnRefused != nil {
					s.opts.OnRefused(remote, err)
				}
				return err
			}
			// No rotation is accepted here: crypto/tls calls
			// VerifyConnection before it checks the client's
			// CertificateVerify, so the client has not yet proven it
			// holds the key (Peer accepts it, on a complete handshake).
			if after != nil {
				if err := after(cs); err != nil {
					return err
				}
			}
			// Admitted: the budget is lifted, so that the application
			// data the client may send right behind its Finished is
			// read whole — net/http, which drives the handshake of a
			// tls.NewListener's connections, never tells when it is
			// done. Every handshake that completes passes here, TLS 1.2
			// and 1.3, resumed or not. What the client has left to send
			// of the handshake (TLS 1.3: CertificateVerify and
			// Finished; TLS 1.2: the same and ChangeCipherSpec) is then
			// read past the budget, but crypto/tls bounds each of those
			// messages at 64 KiB itself: only the Certificate message,
			// read by now, may be 256 KiB (docs/design.md,
			// "Connections in their handshake").
			if budget != nil {
				budget.Lift()
			}
			// A LiveConns that saw the connection open (ConnState's
			// StateNew) tracks it from here, whether or not a request
			// ever follows.
			s.admitted(conn, cs)
			return nil
		}
		return cc, nil
	}
}

// errBypassed is the refusal of the VerifyConnection a server's
// configuration holds, which runs only in a handshake that did not go
// through its GetConfigForClient hook — or when the caller's own
// VerifyConnection calls it, as a wrapper of the value it replaced.
var errBypassed = errors.New("tlsbridge: client address unknown (the handshake bypassed the configuration's GetConfigForClient, " +
	"or a VerifyConnection set on it called the VerifyConnection keytool left there: set yours without calling it); refusing")

// sameFunc reports whether f and g are the same function literal: a
// VerifyConnection still the one configure left, not the caller's.
func sameFunc(f, g func(tls.ConnectionState) error) bool {
	return f != nil && reflect.ValueOf(f).Pointer() == reflect.ValueOf(g).Pointer()
}

// policyConflicts lists the settings of c that would weaken the TLS policy.
func policyConflicts(c *tls.Config) []string {
	var out []string
	if c.MinVersion != 0 && c.MinVersion < tls.VersionTLS12 {
		out = append(out, "MinVersion below TLS 1.2")
	}
	if c.MaxVersion != 0 && c.MaxVersion < tls.VersionTLS12 {
		out = append(out, "MaxVersion below TLS 1.2")
	}
	for _, id := range c.CipherSuites {
		if !slices.Contains(cipherSuites12, id) {
			out = append(out, "cipher suite "+tls.CipherSuiteName(id)+" (only ECDHE with AEAD is allowed)")
		}
	}
	if c.Renegotiation != tls.RenegotiateNever {
		out = append(out, "Renegotiation (the policy allows none)")
	}
	return out
}

// addrOf is c's remote address, the one its "from" rules are decided
// with, in the handshake and (ConnContext) at each HTTP request; the zero
// Addr if it is not IP.
func addrOf(c net.Conn) netip.Addr {
	if c == nil || c.RemoteAddr() == nil {
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// verify decides on a client. It returns the peer; an error means the
// handshake must fail. In AllowUnknown mode, a client that is not
// authorized is returned with Peer.Err set and no error — unless it is
// Revoked, which is final.
//
// Every refusal reaches the client as the TLS alert bad_certificate (42),
// a revoked key's too: crypto/tls (Go 1.26, handshake_server*.go) sends
// that alert for any VerifyConnection error, whatever its type, and offers
// no way to send certificate_revoked (44) (golang/go#77378 considers one).
// The typed error (*authkeys.RevokedError) is the handshake's error on the
// server side, for its log.
func (s *Server) verify(cs tls.ConnectionState, remote netip.Addr) (*Peer, error) {
	p, err := s.decide(cs, remote)
	if err == nil {
		return p, nil
	}
	var (
		crlRevoked *RevokedCertificateError
		caRevoked  *RevokedCAKeyError
	)
	if s.opts.AllowUnknown && p != nil && p.Verdict != authkeys.Revoked && !errors.As(err, &crlRevoked) && !errors.As(err, &caRevoked) {
		p.Err = err
		return p, nil
	}
	return nil, err
}

// MayEnroll reports whether p is a client the server does not know at all:
// its key is in no authorized-keys file that loaded completely, and no CA
// admits it. That is the one kind of unauthenticated peer that may enroll.
// A revoked key or certificate, an expired entry, a key from a network its
// entry does not allow, or a decision the server cannot take now (skipped
// files, an unusable PKI file) is refused, not invited to enroll.
func (p *Peer) MayEnroll() bool {
	if p == nil || p.Err == nil || p.Verdict != authkeys.Unknown || p.incomplete {
		return false
	}
	var (
		notAuth *authkeys.NotAuthorizedError
		caRef   *CARefusedError
	)
	return errors.As(p.Err, &notAuth) || errors.As(p.Err, &caRef)
}

// decide applies docs/design.md's order ("Decisions", server table): the
// store's decision — revoked, authorized, expired, wrong network — and,
// for a key it does not know, the CA if PKI mode is on. The first source
// that knows the key decides, and its refusal is final; a CA never stands
// in for authorized-keys files that were skipped.
func (s *Server) decide(cs tls.ConnectionState, remote netip.Addr) (*Peer, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, &noCertificateError{}
	}
	leaf := cs.PeerCertificates[0]
	who := "client"
	if remote.IsValid() {
		who += " " + remote.String()
	}
	sum, err := peerKeySum(leaf, who)
	if err != nil {
		return nil, err // no peer: final, even under AllowUnknown
	}
	p := &Peer{Certificate: leaf, SPKIHash: sum}
	d := s.opts.Clients.Decide(p.SPKIHash, remote)
	p.Verdict, p.incomplete = d.Verdict, d.Incomplete
	switch d.Verdict {
	case authkeys.Authorized:
		p.Entry = d.Entry
		return p, nil
	case authkeys.Unknown:
		if s.opts.PKI == nil {
			return p, decisionErr(d, p)
		}
		if d.Incomplete {
			e := &SkippedTrustError{Fingerprint: p.Fingerprint()}
			var na *authkeys.NotAuthorizedError
			if errors.As(d.Err, &na) {
				e.First = na.First
			}
			return p, e
		}
		v, err := s.opts.PKI.VerifyPurpose(s.opts.Purpose, cs.PeerCertificates, x509.ExtKeyUsageClientAuth, "")
		var none *NoCAError
		if errors.As(err, &none) {
			return p, decisionErr(d, p) // no CA for this purpose: as without PKI mode
		}
		if err != nil {
			return p, err
		}
		if err := revokedInChain(v, func(sum [32]byte) (bool, error) {
			d := s.opts.Clients.Decide(sum, remote)
			return d.Verdict == authkeys.Revoked, decisionErr(d, &Peer{SPKIHash: sum})
		}); err != nil {
			return p, err
		}
		p.ViaCA, p.CA = true, v
		return p, nil
	}
	p.Entry = d.Entry
	return p, decisionErr(d, p)
}

// decisionErr is the decision's error, or for a custom store that gave
// none, the built-in store's error for the verdict.
func decisionErr(d authkeys.Decision, p *Peer) error {
	if d.Err != nil {
		return d.Err
	}
	fp := p.Fingerprint()
	switch d.Verdict {
	case authkeys.Revoked:
		return &authkeys.RevokedError{Fingerprint: fp}
	case authkeys.Expired:
		if d.Entry != nil {
			return &authkeys.ExpiredError{Entry: d.Entry, Now: time.Now()}
		}
	case authkeys.WrongNetwork:
		if d.Entry != nil {
			return &authkeys.SourceNotAllowedError{Entry: d.Entry}
		}
	case authkeys.Authorized:
		return nil
	}
	if d.Verdict == authkeys.Unknown {
		return &authkeys.NotAuthorizedError{Fingerprint: fp}
	}
	return fmt.Errorf("tlsbridge: key %s refused: %v", fp, d.Verdict)
}

// SkippedTrustError means a client key is in no authorized-keys file that
// loaded, while some were skipped (see the store's Problems): the key may
// be in one of those, with limits a CA would not apply, so PKI mode does
// not admit it in their place. Skipped trust never widens trust.
// First is the first input skipped that the key may be in, where the
// store says (authkeys.NotAuthorizedError.First); the error unwraps to it.
type SkippedTrustError struct {
	Fingerprint string
	First       *authkeys.Problem
}

func (e *SkippedTrustError) Error() string {
	msg := fmt.Sprintf("tlsbridge: key %s is in no authorized-keys file that loaded, and some were skipped: the CA may not admit it in their place", e.Fingerprint)
	if e.First != nil {
		msg += fmt.Sprintf(" (the first skipped: %v)", *e.First)
	}
	return msg
}

// Unwrap returns the problem of the first input skipped, if known.
func (e *SkippedTrustError) Unwrap() error {
	if e.First == nil {
		return nil
	}
	return *e.First
}

// Peer returns who is at the other end of an established connection, from
// the connection's state (r.TLS in an HTTP handler). The decision is taken
// again against the current trust state, so a key removed since the
// handshake is reported as not authorized. Peer.Err says why a peer is not
// authenticated; err is non-nil only if there is no client certificate.
//
// On a complete handshake of an admitted client whose entry accepts
// rotation (authkeys.Entry.AcceptRotation), Peer authorizes the next keys
// its certificate announces: only then has the client proven that it
// holds the key the certificate names (crypto/tls checks CertificateVerify
// after VerifyConnection, so a copy of the certificate passes that far).
// A server learns next keys only if it asks Peer (PeerOf, Middleware and
// RequireAuthenticated do).
func (s *Server) Peer(cs *tls.ConnectionState, remote netip.Addr) (*Peer, error) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return nil, errors.New("tlsbridge: not a TLS connection with a client certificate")
	}
	p, err := s.decide(*cs, remote)
	if p == nil {
		return nil, err
	}
	p.Err = err
	if cs.HandshakeComplete {
		s.acceptRotation(p, remote)
	}
	return p, nil
}

// noCertificateError means the client sent no certificate.
type noCertificateError struct{}

func (*noCertificateError) Error() string { return "tlsbridge: the client sent no certificate" }

// Peer is the identity of the other side of a connection.
type Peer struct {
	SPKIHash [32]byte
	// Certificate is the leaf the peer presented. Outside PKI mode
	// nobody vouches for what it says: a pinned or authorized key's
	// certificate is self-made, its subject and names whatever its
	// holder wrote. Name a peer by Name, Fingerprint or Entry, never by
	// its certificate's fields, unless ViaCA: then they are its CA's word.
	Certificate *x509.Certificate
	// Entry is the authorized-keys entry that let the client in (name,
	// comment, file); nil for a server peer or a client admitted by its CA.
	Entry *authkeys.Entry
	// ViaCA is true for a client admitted by PKI mode, and CA says which
	// CA (and purpose) admitted it. CA.Chain is shared with other
	// decisions on the same chain (PKI.VerifyPurpose): read it, do not
	// modify it.
	ViaCA bool
	CA    *CAVerified
	// Verdict is what the client-key store decided; a client admitted by
	// its CA has Verdict Unknown and ViaCA set.
	Verdict authkeys.Verdict
	// incomplete: the store said Unknown while files were skipped.
	incomplete bool
	// Err is why the peer is not authenticated; nil if it is.
	Err error
}

// Peer's methods take a nil *Peer — what PeerFromContext returns for a
// request no Middleware saw — as a peer nobody authenticated, with no key
// and no name, so that a handler calling PeerFromContext(ctx).Name()
// outside Middleware refuses rather than panics.

// Fingerprint returns the peer key's fingerprint ("SHA256:…"), or "" for
// a nil Peer.
func (p *Peer) Fingerprint() string {
	if p == nil {
		return ""
	}
	return jwk.FormatFingerprint(p.SPKIHash)
}

// KeyID returns the peer key's libtrust key ID, or "" for a nil Peer.
func (p *Peer) KeyID() string {
	if p == nil {
		return ""
	}
	return jwk.FormatKeyID(p.SPKIHash)
}

// Name returns the entry name of an authorized client, or "".
func (p *Peer) Name() string {
	if p == nil || p.Entry == nil {
		return ""
	}
	return p.Entry.Name
}

// Authenticated reports whether the peer is trusted: never a nil Peer.
func (p *Peer) Authenticated() bool { return p != nil && p.Err == nil }
