package tlsbridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/keytool/keytool/dane"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// HostKeys says which key each address must present: *knownhosts.Store,
// or a store of your own. Its knownhosts.Decision is the whole contract:
// Pinned connects, PinnedIfNamed connects if the server's certificate
// names the dialled host (knownhosts.WithCertificate), Unknown lets PKI
// mode or the Policy decide, and every other verdict is final — never a
// prompt, a new pin or a CA in its place (docs/design.md, "Decisions").
// Add pins a key (Ask, AcceptNew).
type HostKeys interface {
	Decide(addr string, sum [32]byte) knownhosts.Decision
	Add(addr string, key *jwk.Key) (string, error)
}

// Policy is what a client does with a host whose key is not pinned.
type Policy int

const (
	// Strict refuses unknown hosts (OpenSSH's StrictHostKeyChecking=yes).
	Strict Policy = iota
	// Ask asks the Prompt (StrictHostKeyChecking=ask).
	Ask
	// AcceptNew pins the key of an unknown host and goes on
	// (StrictHostKeyChecking=accept-new). A changed key is still refused.
	AcceptNew
	// Insecure accepts the key of any host that has no pin, without asking
	// or pinning it, and logs a warning for every such connection. A pinned
	// key that changed and a revoked key are still refused: a pin is a
	// statement the user made, which this policy does not overrule. For
	// tests and emergencies.
	Insecure
)

// ParsePolicy reads OpenSSH's names: yes, ask, accept-new, no (and strict,
// insecure).
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "yes", "strict":
		return Strict, nil
	case "ask":
		return Ask, nil
	case "accept-new":
		return AcceptNew, nil
	case "no", "insecure":
		return Insecure, nil
	}
	return 0, fmt.Errorf("unknown host-key policy %q: use yes, ask, accept-new or no", s)
}

// String returns OpenSSH's name of p (yes, ask, accept-new, no), or
// Policy(N) for a value that is none of them.
func (p Policy) String() string {
	return enumString(p, "Policy", "yes", "ask", "accept-new", "no")
}

// enumString returns names[v], or TYPE(v) for a value out of range: an
// option's String never panics and never passes an invalid value off as a
// valid one.
func enumString[T ~int](v T, typ string, names ...string) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, int(v))
}

// ClientOptions configure a Client.
type ClientOptions struct {
	// Hosts holds the pinned host keys. Required.
	Hosts HostKeys
	// Policy for hosts without a pin (and, in PKI mode, without a CA
	// certificate).
	Policy Policy
	// Prompt decides under Ask. Nil refuses, as NonInteractive does.
	Prompt Prompt
	// PKI, if set, verifies hosts without a pin by chain, host name and
	// CRL; its failure is final (no prompt, no bypass). When it holds no
	// CA for the Purpose nor a general one, the Policy decides.
	PKI *PKI
	// Purpose is what this client's connections are for (XAPI's
	// purposes: "pool", "ldap", "appliance"…): PKI mode verifies the
	// servers with the CAs installed for it if there are any, else with
	// the general CAs, and never with another purpose's (docs/design.md,
	// "Purposes"). "" uses the general CAs only. Pins without a "purpose"
	// member apply to every purpose; a store that implements
	// PurposeHostKeys leaves out the pins for other purposes, and a pin
	// this client writes is for its Purpose only. A store that wraps a
	// *knownhosts.Store must pass DecidePurpose through: its Decide has
	// no purpose, and a pin for some purposes — those this client writes
	// — does not admit a connection without one, so every connection
	// would be refused, the first one's new pin included. A purpose is
	// a name by ValidCAName's rule; NewClient refuses another. For
	// several purposes, make one Client each: they may share the stores
	// and the PKI.
	Purpose string
	// ConfirmCA asks the Prompt about a server that a CA verified, before
	// connecting (libvirt's validator): UnknownHost.CA says which CA.
	// Yes pins the key for the address (from then on the pin decides,
	// without the CA or a question), Once connects and pins nothing, No
	// refuses. It applies whatever the Policy, which decides only about
	// servers no CA verified.
	ConfirmCA bool
	// UpdateHostKeys says whether to pin the next keys a pinned host
	// announces (OpenSSH's UpdateHostKeys; the zero value is UpdateNo).
	UpdateHostKeys UpdateHostKeys
	// Logger receives the warnings of AcceptNew and Insecure, and the
	// notes of VerifyHostKeyDNS.
	Logger *slog.Logger

	// VerifyHostKeyDNS looks up the key of a host without a pin in DNS
	// (TLSA records, docs/dns.md); DNSYes lets a DNSSEC-validated record
	// naming the key stand in for a pin. It never overrules a pin, a
	// revocation, a skipped trusted-hosts file or PKI mode, which decide
	// first; under Insecure, DNS is not asked.
	VerifyHostKeyDNS HostKeyDNS
	// DNS is the resolver asked; nil: the system's (dane.SystemResolver),
	// whose answers count as validated only when resolv.conf says
	// "options trust-ad" (glibc's rule; a resolver on the loopback
	// interface is not believed for that alone).
	DNS *dane.Resolver
	// PinFromDNS pins a key that a validated record let in (with the
	// comment DNSComment), for callers whose purpose is to pin.
	PinFromDNS bool

	// HandshakeTimeout bounds DialContext: the TCP connection and the
	// TLS handshake together, the time the Prompt spends asking a person
	// not counted. Zero: 30 seconds. Connections made from TLSConfig or
	// Configure are the caller's to bound.
	HandshakeTimeout time.Duration
}

// Client is the client side of keytool's mutual TLS: it presents an
// identity and checks each server's key against the pins for the address
// it dialled.
type Client struct {
	id     IdentitySource
	opts   ClientOptions
	prompt sync.Mutex // one question on the terminal at a time
	// byDNS holds the hosts (dnsKey) a validated TLSA record let in,
	// for AcceptedByDNS.
	byDNS sync.Map
	// announcing holds the leaves (weak pointers) that announce next keys
	// and whose key a pin for an address admitted, until the leaf is
	// collected (awaitHandshake).
	announcing sync.Map
	// announceFailed: the addresses whose next keys could not be pinned
	// lately (learnAnnounced).
	announceFailed rotationBackoff
}

// NewClient returns a Client presenting id: an *Identity, or an
// *IdentityWatcher whose current identity each new handshake presents.
func NewClient(id IdentitySource, opts ClientOptions) (*Client, error) {
	if !hasPrivateKey(id) {
		return nil, errors.New("tlsbridge: the client needs an identity with its private key")
	}
	if opts.Hosts == nil {
		return nil, errors.New("tlsbridge: ClientOptions.Hosts is required (a *knownhosts.Store)")
	}
	if err := checkPurpose(opts.Purpose); err != nil {
		return nil, err
	}
	if opts.HandshakeTimeout < 0 {
		return nil, fmt.Errorf("tlsbridge: ClientOptions.HandshakeTimeout is negative (%s)", opts.HandshakeTimeout)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Prompt == nil {
		opts.Prompt = NonInteractive{}
	}
	if opts.VerifyHostKeyDNS != DNSNo && opts.DNS == nil {
		r, err := dane.SystemResolver("")
		if err != nil {
			return nil, fmt.Errorf("tlsbridge: the DNS resolver for host keys: %w", err)
		}
		opts.DNS = r
	}
	if opts.Policy == Insecure {
		opts.Logger.Warn("host keys are NOT verified (insecure mode): anyone can impersonate the servers this client connects to")
	}
	return &Client{id: id, opts: opts}, nil
}

// TLSConfig returns a configuration for connecting to addr ("host:port",
// the address as dialled: pins are looked up under it). An address that
// is not host:port is an *AddressError. keytool checks the server's key
// in its VerifyPeerCertificate and VerifyConnection, with
// InsecureSkipVerify set. To add a check of your own, set it in a
// tls.Config and call Configure: a VerifyConnection assigned to this one
// replaces keytool's, which then checks full handshakes only (in
// VerifyPeerCertificate), not resumed ones.
func (c *Client) TLSConfig(addr string) (*tls.Config, error) {
	return c.tlsConfig(context.Background(), addr)
}

// tlsConfig is TLSConfig for the handshakes of one dial: a DNS lookup
// they make (VerifyHostKeyDNS) ends when ctx does.
func (c *Client) tlsConfig(ctx context.Context, addr string) (*tls.Config, error) {
	host, err := splitAddr(addr)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{}
	c.configure(ctx, cfg, addr, host) // an empty configuration has nothing to conflict with
	return cfg, nil
}

// Configure adds keytool's client side for addr to an existing
// configuration, under the same rules as Server.Configure: conflicting
// settings (other client certificates, RootCAs, a weaker policy,
// renegotiation) are an error, and so is an address that is not host:port (*AddressError);
// either leaves cfg unchanged. A VerifyConnection or
// VerifyPeerCertificate the caller set still runs, after keytool's; set
// it before calling Configure: one assigned after replaces keytool's.
//
// Configure sets InsecureSkipVerify, because Go's chain verification must
// not run for pinned keys; keytool's verification replaces it in
// VerifyConnection, which runs on every handshake, resumed ones included,
// and in VerifyPeerCertificate, which runs on full handshakes only: the
// key is decided once a handshake (the second takes the first's decision),
// and still checked on full handshakes if VerifyConnection is replaced.
func (c *Client) Configure(cfg *tls.Config, addr string) error {
	var conflicts []string
	if len(cfg.Certificates) > 0 || cfg.GetClientCertificate != nil {
		conflicts = append(conflicts, "Certificates/GetClientCertificate (the client presents the identity's certificate)")
	}
	if cfg.RootCAs != nil {
		conflicts = append(conflicts, "RootCAs (use ClientOptions.PKI for CA-issued server certificates)")
	}
	if cfg.InsecureSkipVerify {
		conflicts = append(conflicts, "InsecureSkipVerify (use the Insecure policy)")
	}
	conflicts = append(conflicts, policyConflicts(cfg)...)
	if len(conflicts) > 0 {
		return conflictError("client", conflicts)
	}
	host, err := splitAddr(addr)
	if err != nil {
		return err
	}
	c.configure(context.Background(), cfg, addr, host)
	return nil
}

// AddressError means an address to connect to is not host:port.
type AddressError struct {
	Addr string
	Err  error // what is wrong with it
}

func (e *AddressError) Error() string {
	return fmt.Sprintf("tlsbridge: address %q is not host:port: %v", e.Addr, e.Err)
}

func (e *AddressError) Unwrap() error { return e.Err }

// splitAddr returns the host of addr, which must be host:port.
func splitAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err) // without the address, which AddressError names
		}
		return "", &AddressError{Addr: addr, Err: err}
	}
	if port == "" {
		return "", &AddressError{Addr: addr, Err: errors.New("missing port")}
	}
	if strings.ContainsAny(host, "*?") || strings.HasPrefix(host, "!") {
		// A pattern of pins (docs/trust-stores.md), which no host is: a
		// first contact would pin the key shown for every host it
		// matches, and a wildcard pin of a key admits it over their
		// exact pins of other keys.
		return "", &AddressError{Addr: addr, Err: errors.New("the host is a pattern ('*', '?', a leading '!'), not a host to connect to")}
	}
	return host, nil
}

// configure sets the client side for addr (whose host is host) on cfg,
// which Configure accepted; ctx bounds the DNS lookups of its handshakes
// (crypto/tls gives VerifyConnection no context of its own).
func (c *Client) configure(ctx context.Context, cfg *tls.Config, addr, host string) {
	theirs := cfg.VerifyConnection
	applyPolicy(cfg)
	// Always present the identity, even when the server's request lists
	// CA names it is not under (nginx with a per-key bundle): Go would
	// otherwise send no certificate, and the server could not say whose
	// key it refused.
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &c.id.CurrentIdentity().Certificate, nil
	}
	cfg.InsecureSkipVerify = true
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	// Decided twice over (clientcheck.go): a VerifyConnection assigned
	// over keytool's must not leave the server's key unchecked.
	theirsPeer := cfg.VerifyPeerCertificate
	checked := new(peerChecked)
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		// The name this configuration sends: tls.Config's rule is that it
		// is not changed once in use (a Clone's own ServerName is not
		// seen here, and its VerifyConnection then decides again).
		return c.verifyPeer(ctx, raw, sniName(cfg.ServerName), addr, checked, theirsPeer)
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := c.verifyConnection(ctx, cs, addr, checked); err != nil {
			return err
		}
		if theirs != nil {
			return theirs(cs)
		}
		return nil
	}
}

// hostDecision is the store's decision on the server key sum, whose
// certificate is leaf, for addr: the handshake's and, while the
// connection is open, LiveConns'. With a Purpose, a store that can tell
// (PurposeHostKeys) leaves out the pins for other purposes.
func (c *Client) hostDecision(addr string, sum [32]byte, leaf *x509.Certificate) knownhosts.Decision {
	return knownhosts.WithCertificate(c.storeDecision(addr, sum), addr, leaf)
}

// storeDecision is hostDecision before the certificate is looked at: a
// key pinned without an address is still PinnedIfNamed.
func (c *Client) storeDecision(addr string, sum [32]byte) knownhosts.Decision {
	if p, ok := c.opts.Hosts.(PurposeHostKeys); ok && c.opts.Purpose != "" {
		return p.DecidePurpose(addr, c.opts.Purpose, sum)
	}
	return c.opts.Hosts.Decide(addr, sum)
}

// PurposeHostKeys is a HostKeys whose pins may be for some purposes only
// (*knownhosts.Store: the "purpose" member of a pin). DecidePurpose
// decides as Decide with the pins for other purposes left out: they
// neither admit the key nor make another key a changed one.
type PurposeHostKeys interface {
	HostKeys
	DecidePurpose(addr, purpose string, sum [32]byte) knownhosts.Decision
}

// verify decides on a server (docs/design.md, "Decisions", client table);
// ctx is the dial's, which a DNS lookup heeds. pinned says whether a pin
// for addr admitted it as it stood before the handshake: only then may
// the next keys the server announces be learned (awaitAnnounced).
func (c *Client) verify(ctx context.Context, cs tls.ConnectionState, addr string) (pinned bool, err error) {
	stored, d, sum, err := c.storeVerdict(cs, addr)
	if err != nil || d.Verdict != knownhosts.Unknown {
		return err == nil && stored.Verdict == knownhosts.Pinned, err
	}
	return false, c.verifyUnknown(ctx, cs, addr, d, sum)
}

// storeVerdict is what the store says of the server of cs, a connection
// to addr: stored, its decision on the key (sum) for the address, and d,
// that decision once the certificate is looked at. err is the refusal
// of a verdict other than Pinned and Unknown, which is final: a key
// changed, revoked, skipped or refused.
func (c *Client) storeVerdict(cs tls.ConnectionState, addr string) (stored, d knownhosts.Decision, sum [32]byte, err error) {
	if len(cs.PeerCertificates) == 0 {
		return stored, d, sum, errors.New("tlsbridge: the server sent no certificate")
	}
	leaf := cs.PeerCertificates[0]
	if sum, err = peerKeySum(leaf, "host "+addr); err != nil {
		return stored, d, sum, err // before the revocations: the hash would not be the key's
	}
	stored = c.storeDecision(addr, sum)
	d = knownhosts.WithCertificate(stored, addr, leaf)
	if d.Verdict != knownhosts.Unknown {
		err = knownhosts.ErrorOf(d, addr, sum) // nil: pinned
	}
	return stored, d, sum, err
}

// awaitAnnounced is what a handshake admitted by a pin for its address (verify's
// pinned) leaves for LearnAnnounced: only a pin for the address — a key
// pinned without one (admitted by its certificate's names) binds its
// holder to no address, and an announcement must not make it one
// (docs/design.md, "Announced rotation"). Learned once the handshake is
// complete, when the server has proved it holds the key.
func (c *Client) awaitAnnounced(pinned bool, leaf *x509.Certificate) {
	if pinned {
		c.awaitHandshake(leaf)
	}
}

// verifyUnknown decides on a server whose key the store does not know
// (d, the key's sum): PKI mode, DNS, then the Policy.
func (c *Client) verifyUnknown(ctx context.Context, cs tls.ConnectionState, addr string, d knownhosts.Decision, sum [32]byte) error {
	err := knownhosts.ErrorOf(d, addr, sum)
	leaf := cs.PeerCertificates[0]
	if c.opts.PKI != nil {
		v, err := c.verifyCA(cs, addr)
		var none *NoCAError
		switch {
		case errors.As(err, &none):
			// No CA for this connection: decided as without PKI mode.
		case err != nil:
			return err
		case !c.opts.ConfirmCA:
			return nil
		default:
			key, err := jwk.NewPublicKey(leaf.PublicKey)
			if err != nil {
				return fmt.Errorf("tlsbridge: host %s presented a key that cannot be used: %w", addr, err)
			}
			return pausingDial(ctx, func() error { return c.ask(addr, key, cs.PeerCertificates, v, nil) })
		}
	}
	key, kerr := jwk.NewPublicKey(leaf.PublicKey)
	if kerr != nil {
		return fmt.Errorf("tlsbridge: host %s presented a key that cannot be used: %w", addr, kerr)
	}
	dns := c.lookupDNS(ctx, addr, key)
	if err := ctx.Err(); err != nil {
		// The dial was given up while DNS was asked: nobody waits for
		// a question, and nothing is pinned.
		return fmt.Errorf("tlsbridge: host %s: %w", addr, err)
	}
	if c.opts.VerifyHostKeyDNS == DNSYes && dns != nil && dns.Proven() {
		return c.acceptFromDNS(addr, key, dns)
	}
	switch c.opts.Policy {
	case Insecure:
		c.opts.Logger.Warn("accepting an unverified host key (insecure mode)", "addr", addr, "fingerprint", key.Fingerprint())
		return nil
	case AcceptNew:
		if dns != nil && dns.Status == dane.NoMatch && dns.Validated {
			return &DNSMismatchError{Addr: addr, Fingerprint: key.Fingerprint(), Name: dns.Name}
		}
		return c.pin(addr, key, "accept-new")
	case Ask:
		return pausingDial(ctx, func() error { return c.ask(addr, key, cs.PeerCertificates, nil, dns) })
	}
	return err
}

// verifyCA is PKI mode's verdict on the server's chain in cs, for the
// host the client dialled at addr: the name it sent (SNI), or for an IP
// literal, for which crypto/tls sends none and leaves cs.ServerName
// empty, the address's host — never no name at all, which x509 would
// take as "any host".
func (c *Client) verifyCA(cs tls.ConnectionState, addr string) (*CAVerified, error) {
	name := cs.ServerName
	if name == "" {
		name, _ = splitAddr(addr)
	}
	if name == "" {
		return nil, &AddressError{Addr: addr, Err: errors.New("no host to verify the server's certificate for")}
	}
	v, err := c.opts.PKI.VerifyPurpose(c.opts.Purpose, cs.PeerCertificates, x509.ExtKeyUsageServerAuth, name)
	if err != nil {
		return nil, err
	}
	if err := revokedInChain(v, func(sum [32]byte) (bool, error) {
		d := c.storeDecision(addr, sum)
		return d.Verdict == knownhosts.Revoked, knownhosts.ErrorOf(d, addr, sum)
	}); err != nil {
		return nil, err
	}
	return v, nil
}

func (c *Client) pin(addr string, key *jwk.Key, why string) error {
	file, err := c.addPin(addr, key)
	if err != nil {
		return err
	}
	c.opts.Logger.Warn("pinned the key of a new host", "addr", addr, "fingerprint", key.Fingerprint(), "file", file, "policy", why)
	return nil
}

// addPin pins key for addr in the store. With a Purpose, the pin is for
// that purpose only (its "purpose" member): a key accepted for one kind of
// connection is not thereby trusted for the others (docs/design.md,
// "Purposes").
func (c *Client) addPin(addr string, key *jwk.Key) (string, error) {
	if c.opts.Purpose != "" {
		key = key.PublicKey()
		if key.Attrs == nil {
			key.Attrs = jwk.Attributes{}
		}
		key.Attrs.SetList(jwk.AttrPurpose, []string{c.opts.Purpose})
	}
	return c.opts.Hosts.Add(addr, key)
}

// ask puts the question to the Prompt, one connection at a time, about
// the server's key and chain, the CA that verified it (nil: none) and
// what DNS said of it (nil: not asked); a host pinned while this one
// waited is not asked about again.
func (c *Client) ask(addr string, key *jwk.Key, chain []*x509.Certificate, ca *CAVerified, dns *dane.Result) error {
	c.prompt.Lock()
	defer c.prompt.Unlock()
	var leaf *x509.Certificate
	if len(chain) > 0 {
		leaf = chain[0]
	}
	if d := c.hostDecision(addr, key.SPKIHash(), leaf); d.Verdict != knownhosts.Unknown {
		return knownhosts.ErrorOf(d, addr, key.SPKIHash())
	}
	h := UnknownHost{Addr: addr, Key: key, Chain: chain, CA: ca, Purpose: c.opts.Purpose, DNS: dns}
	if store, ok := c.opts.Hosts.(interface{ AddressesOf(sum [32]byte) []string }); ok {
		norm, _ := knownhosts.NormalizeAddr(addr)
		for _, a := range store.AddressesOf(key.SPKIHash()) {
			if a != norm {
				h.OtherAddresses = append(h.OtherAddresses, a)
			}
		}
	}
	answer, err := c.opts.Prompt.AskUnknownHost(h)
	if err != nil {
		return err
	}
	switch answer {
	case Yes:
		file, err := c.addPin(addr, key)
		if err != nil {
			return err
		}
		c.opts.Logger.Info("pinned the key of a new host", "addr", addr, "fingerprint", key.Fingerprint(), "file", file)
		return nil
	case Once:
		return nil
	}
	return &RefusedHostError{Addr: addr, Fingerprint: key.Fingerprint()}
}

// RefusedHostError means the user answered no to an unknown host.
type RefusedHostError struct{ Addr, Fingerprint string }

func (e *RefusedHostError) Error() string {
	return fmt.Sprintf("tlsbridge: host %s (key %s) was not accepted", e.Addr, e.Fingerprint)
}

// DialContext connects to addr ("host:port") over TCP and completes a
// handshake under the client's policy. An address that is not host:port
// is an *AddressError, and nothing is dialled. Both steps together have
// ClientOptions.HandshakeTimeout (30 seconds unless set), or what ctx
// leaves if it ends sooner; the time the Prompt spends asking a person
// (and waiting for another connection's question) is not counted. Past
// them the error is a *HandshakeTimeoutError, which says whether the TCP
// connection was made.
//
// The pause is the client's only: a server's own handshake timeout (a
// keytool proxy's is 10 seconds) runs on while the person reads, and a
// server that gave up meanwhile has closed the connection by the time
// the answer is sent — the key is pinned all the same, and the next
// connection is made without a question (docs/cli.md, connect).
func (c *Client) DialContext(ctx context.Context, network, addr string) (*tls.Conn, error) {
	bctx, stop := withDialBudget(ctx, addr, c.handshakeTimeout())
	defer stop()
	cfg, err := c.tlsConfig(bctx, addr)
	if err != nil {
		return nil, err
	}
	// What tls.Dialer does, in two steps, so that a timeout can say
	// which one it ended.
	raw, err := new(net.Dialer).DialContext(bctx, network, addr)
	if err != nil {
		return nil, budgetSpent(ctx, bctx, err, false)
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(bctx); err != nil {
		raw.Close()
		return nil, budgetSpent(ctx, bctx, err, true)
	}
	c.LearnAnnounced(addr, conn.ConnectionState())
	return conn, nil
}

// IsRemoteAlert reports whether err carries a TLS alert the peer sent
// (crypto/tls's "remote error: tls: …", which has no type of its own):
// for a client, the server refused its certificate or the handshake.
func IsRemoteAlert(err error) bool {
	return err != nil && strings.Contains(err.Error(), "remote error: tls:")
}

// handshakeTimeout is the budget of DialContext.
func (c *Client) handshakeTimeout() time.Duration {
	if c.opts.HandshakeTimeout > 0 {
		return c.opts.HandshakeTimeout
	}
	return dialBudget
}

// Transport returns an http.Transport whose TLS connections are made by
// c: each request's "host:port" is checked against its pins. It goes
// through no proxy, whatever the environment says (HTTPS_PROXY), and
// makes no plain-text connection: a request to an http:// URL, or a
// redirect to one, fails with a *PlainTextError. Its Proxy must stay nil:
// set, every request fails with a *ProxySetError.
func (c *Client) Transport() *http.Transport {
	return transport(func(ctx context.Context, network, addr string) (net.Conn, error) {
		return c.DialContext(ctx, network, addr)
	})
}

// transport is http.DefaultTransport's settings with dial making the TLS
// connections, and no proxy: through one, net/http would make the
// target's TLS connection itself, with its own configuration (the
// system's CAs, no pin, no client key) — keytool's would never run. A
// Proxy the caller sets on it anyway is refused at every dial, TLS or
// not (*ProxySetError): an https:// proxy's own connection goes through
// dial, which checks only the proxy's key, and the target's after
// CONNECT would be net/http's (found by review). Nor is any plain-text
// connection made, which net/http makes with DialContext for an http://
// URL: no key would be checked, and the request (with the headers a
// same-host redirect keeps) would go to whoever answers.
func transport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if t.Proxy != nil {
			return nil, &ProxySetError{Addr: addr}
		}
		return dial(ctx, network, addr)
	}
	t.DialContext = func(_ context.Context, _, addr string) (net.Conn, error) {
		if t.Proxy != nil {
			return nil, &ProxySetError{Addr: addr} // net/http dials an http:// proxy here
		}
		return nil, &PlainTextError{Addr: addr}
	}
	return t
}

// PlainTextError means a request of a keytool transport (Client.Transport,
// LiveConns.Transport) asked for a plain-text connection — an http://
// URL, or a redirect to one — which it never makes: nothing would check
// the server's key. Nothing was dialled.
type PlainTextError struct {
	Addr string // the address asked for
}

func (e *PlainTextError) Error() string {
	return fmt.Sprintf("tlsbridge: not connecting to %s in plain text (an http:// URL): this transport makes only TLS connections that check the server's key; use https://", e.Addr)
}

// ProxySetError means the Proxy field of a keytool transport was set by
// its caller: through a proxy, net/http would make the server's TLS
// connection itself, with no pin and no client key, so the transport
// makes no connection at all while it is set. Nothing was dialled.
type ProxySetError struct {
	Addr string // the address asked for: the proxy's, or the server's
}

func (e *ProxySetError) Error() string {
	return fmt.Sprintf("tlsbridge: not connecting to %s: the transport's Proxy is set, and through a proxy the server's key would not be checked; this transport connects only directly: leave Proxy unset", e.Addr)
}
