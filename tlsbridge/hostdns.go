package tlsbridge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"

	"github.com/keytool/keytool/dane"
	"github.com/keytool/keytool/jwk"
)

// HostKeyDNS is what a client does with host keys published in DNS as
// TLSA records (package dane, docs/dns.md): OpenSSH's VerifyHostKeyDNS.
// DNS only ever speaks for a host without a pin: a pinned key, a changed
// key, a revoked key and a skipped trusted-hosts file decide before it,
// and PKI mode decides instead of it.
type HostKeyDNS int

const (
	// DNSNo does not look in DNS (the default).
	DNSNo HostKeyDNS = iota
	// DNSAsk looks, and only tells: the Prompt's UnknownHost.DNS says
	// what DNS said; nothing is accepted without the Policy.
	DNSAsk
	// DNSYes accepts an unknown host whose key a DNSSEC-validated TLSA
	// record names, without the Policy or the Prompt; anything less (an
	// unvalidated record, a failed lookup) only tells, as DNSAsk.
	DNSYes
)

// ParseHostKeyDNS reads OpenSSH's names: yes, ask, no.
func ParseHostKeyDNS(s string) (HostKeyDNS, error) {
	switch s {
	case "yes":
		return DNSYes, nil
	case "ask":
		return DNSAsk, nil
	case "no":
		return DNSNo, nil
	}
	return 0, fmt.Errorf("tlsbridge: unknown host-key DNS policy %q: use yes, ask or no", s)
}

func (v HostKeyDNS) String() string { return enumString(v, "HostKeyDNS", "no", "ask", "yes") }

// DNSComment is the comment of a pin made from a DNSSEC-validated TLSA
// record (ClientOptions.PinFromDNS), so that a listing of the pins tells
// it from a key a person checked.
const DNSComment = "pinned from a DNSSEC-validated TLSA record"

// lookupDNS asks DNS about the key a host presented at addr, when the
// options say to; nil when they do not, or when addr's host is an IP
// address (which has no TLSA name). A relative host name (no trailing
// dot) is not looked up while the system has a search list, through
// which the dial may have reached another name (dane.SearchList): the
// result is Failed, with the note saying to write the name rooted. The lookup ends with ctx (the
// dial's), and within the resolver's timeout in any case. A result short
// of a validated match — no record included, and an unvalidated match —
// is a warning of one line: DNS was asked to vouch for the key and did
// not, and the connection goes on to the pins and the Policy. (A warning,
// so that a caller logging only warnings, as keytool trust-host does,
// still says why DNS did not decide.)
func (c *Client) lookupDNS(ctx context.Context, addr string, key *jwk.Key) *dane.Result {
	if c.opts.VerifyHostKeyDNS == DNSNo || c.opts.Policy == Insecure {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	if _, err := netip.ParseAddr(host); err == nil { // with a zone too, which net.ParseIP refuses
		return nil
	}
	res := c.opts.DNS.Lookup(ctx, host, port, key.SPKI())
	if res.Proven() {
		c.opts.Logger.Info("host key found in DNS", "addr", addr, "fingerprint", key.Fingerprint(), "note", res.Note())
	} else {
		c.opts.Logger.Warn("host key not verified by DNS, falling back to the pins", "addr", addr, "fingerprint", key.Fingerprint(), "note", res.Note())
	}
	return &res
}

// acceptFromDNS accepts an unknown host whose key a validated record
// names, pinning it (commented DNSComment) when the options say so or
// the Policy pins new keys anyway.
func (c *Client) acceptFromDNS(addr string, key *jwk.Key, res *dane.Result) error {
	c.byDNS.Store(dnsKey{addr, key.SPKIHash()}, struct{}{})
	if !c.opts.PinFromDNS && c.opts.Policy != AcceptNew {
		return nil
	}
	k := key.PublicKey()
	if k.Attrs == nil {
		k.Attrs = jwk.Attributes{}
	}
	k.Attrs.SetString(jwk.AttrComment, fmt.Sprintf("%s at %s", DNSComment, res.Name))
	file, err := c.addPin(addr, k)
	if err != nil {
		return err
	}
	c.opts.Logger.Info("pinned the key of a new host", "addr", addr, "fingerprint", key.Fingerprint(), "file", file, "dns", res.Name)
	return nil
}

// dnsKey is a server key at an address.
type dnsKey struct {
	addr string
	sum  [32]byte
}

// AcceptedByDNS reports whether the server key of cs, at addr (as
// dialled), was let in by a DNSSEC-validated TLSA record
// (VerifyHostKeyDNS DNSYes) — for logs that say why a connection was
// trusted. A key pinned since then is reported by the pins first.
func (c *Client) AcceptedByDNS(addr string, cs tls.ConnectionState) bool {
	if len(cs.PeerCertificates) == 0 {
		return false
	}
	_, ok := c.byDNS.Load(dnsKey{addr, sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)})
	return ok
}

// DNSMismatchError means a host without a pin presented a key that the
// DNSSEC-validated TLSA records of its name do not name, under AcceptNew:
// the key is not pinned on first use against what DNS says. (OpenSSH
// warns and pins; the evidence of a validated zone is worth more than a
// warning when nobody is asked.)
type DNSMismatchError struct {
	Addr, Fingerprint string
	Name              string // the TLSA name: _PORT._tcp.HOST.
}

func (e *DNSMismatchError) Error() string {
	return fmt.Sprintf("tlsbridge: host %s presented key %s, which the DNSSEC-validated TLSA records at %s do not name: not pinned",
		e.Addr, e.Fingerprint, e.Name)
}
