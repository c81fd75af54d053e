package dane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/keytool/keytool/internal/dnsname"
	"github.com/keytool/keytool/internal/trustfile"
)

// DefaultTimeout bounds a whole lookup when Resolver.Timeout is zero:
// short, because a client waits for it in the middle of a handshake, and
// a lookup that does not answer only means falling back to the usual
// checks.
const DefaultTimeout = 2 * time.Second

// ResolvConf is the system resolver's configuration file.
const ResolvConf = "/etc/resolv.conf"

// Resolver is the DNS resolver TLSA records are asked of.
type Resolver struct {
	// Servers are the resolvers' addresses (host:port), asked in order
	// until one answers.
	Servers []string
	// TrustAD says the answers' AD bit is believed: the resolvers
	// validate DNSSEC and the path to them cannot be tampered with. When
	// false, every answer is unvalidated.
	TrustAD bool
	// Timeout bounds a whole lookup, every server included; zero is
	// DefaultTimeout.
	Timeout time.Duration
	// Search is how the system resolves a host name written without a
	// trailing dot — the name a client dials, whichever resolver is
	// asked for TLSA records. While its list has a domain, Lookup does
	// not look up such a name: the dial may have reached the name with a
	// domain of the list appended, not the one the records would be
	// asked at (SearchList). nil: the system's (SystemSearch), read at
	// each lookup.
	Search *SearchList
}

// NewResolver returns a resolver at addr (an IP address, with :port if
// not 53) declared trustworthy: its AD bit is believed. Name only a
// validating resolver that the network cannot impersonate (on the
// loopback interface, or over a protected link).
func NewResolver(addr string) (*Resolver, error) {
	hp, err := serverAddr(addr)
	if err != nil {
		return nil, err
	}
	return &Resolver{Servers: []string{hp}, TrustAD: true}, nil
}

// serverAddr returns addr (IP or IP:port) as IP:port, port 53 by default.
func serverAddr(addr string) (string, error) {
	if ip, err := netip.ParseAddr(strings.Trim(addr, "[]")); err == nil {
		return netip.AddrPortFrom(ip, 53).String(), nil
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("dane: resolver address %q is not an IP address, with :PORT if not 53", addr)
	}
	return ap.String(), nil
}

// SystemResolver returns the resolvers of a resolv.conf file (path empty:
// ResolvConf). Their AD bit is believed only when the file says
// "options trust-ad": glibc's rule since 2.31, which believes no name
// server for being on the loopback interface — a forwarder there (dnsmasq
// with --proxy-dnssec) hands on its upstream's AD bit, which anyone on the
// network between them could have set. The local resolvers that validate
// write trust-ad in the resolv.conf they manage (systemd-resolved,
// dnssec-trigger). A missing file, or one with no name server, means the
// local one, as in glibc.
func SystemResolver(path string) (*Resolver, error) {
	if path == "" {
		path = ResolvConf
	}
	// The one bounded, non-blocking reader (docs/design.md, "One
	// file-trust rule"); the ownership rule is for keytool's own trust
	// files, not the system's.
	data, _, err := trustfile.Read(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dane: reading the resolver configuration: %w", err)
	}
	conf := ParseResolvConf(data)
	r := &Resolver{TrustAD: conf.TrustAD}
	for _, ip := range conf.Servers {
		r.Servers = append(r.Servers, netip.AddrPortFrom(ip, 53).String())
	}
	if len(r.Servers) == 0 {
		r.Servers = []string{"127.0.0.1:53", "[::1]:53"}
	}
	return r, nil
}

// ResolvConfig is what this package reads of a resolv.conf file.
type ResolvConfig struct {
	Servers []netip.Addr // the nameserver lines, in order (at most three, as glibc)
	TrustAD bool         // "options trust-ad"
	// Search is the search list of the last search or domain line, each
	// domain rooted ("cluster.local."), "." left out: the domains a
	// relative host name is tried in (SearchList).
	Search []string
	Ndots  int // "options ndots:N": 1 by default, from 0 to 15
}

// ParseResolvConf reads the nameserver lines, the search list (search and
// domain lines) and the trust-ad and ndots options of a resolv.conf file,
// as glibc does: comments start with # or ;, the last options line that
// names an option wins for it, a name server that is not an IP address is
// skipped, and only the first three count; search and domain replace each
// other, the last line winning. It applies no default search list: that
// is SystemSearch's.
func ParseResolvConf(data []byte) ResolvConfig {
	c := ResolvConfig{Ndots: 1}
	s := bufio.NewScanner(bytes.NewReader(data))
	s.Buffer(nil, 64<<10)
	for s.Scan() {
		line := s.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			ip, err := netip.ParseAddr(f[1])
			if err == nil && len(c.Servers) < 3 {
				c.Servers = append(c.Servers, ip.WithZone(""))
			}
		case "domain":
			c.Search = searchDomains(f[1:2])
		case "search":
			c.Search = searchDomains(f[1:])
		case "options":
			c.options(f[1:])
		}
	}
	return c
}

// options reads the options of an options line (or of RES_OPTIONS).
func (c *ResolvConfig) options(opts []string) {
	for _, o := range opts {
		switch {
		case o == "trust-ad":
			c.TrustAD = true
		case o == "no-trust-ad":
			c.TrustAD = false
		case strings.HasPrefix(o, "ndots:"):
			// The leading digits, as glibc's atoi and Go's resolver
			// read them (none: 0), at most glibc's 15.
			n := 0
			for _, d := range []byte(o[len("ndots:"):]) {
				if d < '0' || d > '9' || n >= 15 {
					break
				}
				n = n*10 + int(d-'0')
			}
			c.Ndots = min(n, 15)
		}
	}
}

// Status is what a lookup found.
type Status int

const (
	// NoRecord: the name has no usable TLSA record (no such name, no
	// TLSA records, or only records of usages that name a CA).
	NoRecord Status = iota
	// Match: a usable record names the key presented.
	Match
	// NoMatch: usable records exist, and none names the key presented.
	NoMatch
	// Failed: no answer (a timeout, an unreachable resolver) or an
	// error answer: SERVFAIL, which is how a validating resolver
	// answers for a zone whose signatures do not verify (bogus), or
	// REFUSED. Result.Err says which.
	Failed
)

func (s Status) String() string {
	return [...]string{"no record", "match", "no match", "failed"}[s]
}

// Result is the outcome of a lookup. Only Status Match with Validated
// proves the key; everything else is at most worth a note.
type Result struct {
	Name   string // the TLSA name asked: _PORT._tcp.HOST.
	Server string // the resolver that answered (or the last one asked)
	Status Status
	// Validated: the answer carried the AD bit from a resolver whose AD
	// bit is believed (Resolver.TrustAD), so its records, or its denial
	// that records exist, are DNSSEC-validated.
	Validated bool
	Records   []Record // the usable records found
	Ignored   []Record // the records of other usages or selectors, not read as keys
	Err       error    // why, when Status is Failed
}

// Proven reports whether the result is a DNSSEC-validated record naming
// the key: the only result that may stand in for a pin.
func (r Result) Proven() bool { return r.Status == Match && r.Validated }

// Note is the result in one line, for a log or a prompt.
func (r Result) Note() string {
	var s string
	switch {
	case r.Status == Failed && errors.As(r.Err, new(*RelativeNameError)):
		return "DNS not asked: " + strings.TrimPrefix(r.Err.Error(), "dane: ")
	case r.Status == Failed:
		return fmt.Sprintf("DNS lookup of %s failed: %v", r.Name, r.Err)
	case r.Proven():
		s = "a DNSSEC-validated TLSA record at " + r.Name + " matches the key"
	case r.Status == Match:
		s = "a TLSA record at " + r.Name + " matches the key, but the answer is not DNSSEC-validated: it proves nothing"
	case r.Status == NoMatch && r.Validated:
		s = "the DNSSEC-validated TLSA records at " + r.Name + " name another key"
	case r.Status == NoMatch:
		s = "the TLSA records at " + r.Name + " (not DNSSEC-validated) name another key"
	case len(r.Ignored) > 0:
		s = "the TLSA records at " + r.Name + " name no key"
	default:
		s = "no TLSA record at " + r.Name
	}
	if len(r.Ignored) > 0 {
		s += fmt.Sprintf(" (%d record(s) of a CA usage or certificate selector ignored: only usage 3, selector 1 names a key)", len(r.Ignored))
	}
	return s
}

// FailedError is the reason of a Failed lookup that got an answer.
type FailedError struct {
	Rcode string // SERVFAIL, REFUSED, …
	// Extended is the resolver's extended DNS error (RFC 8914), when it
	// sent one: "DNSSEC Bogus: …".
	Extended string
}

func (e *FailedError) Error() string {
	s := "dane: the resolver answered " + e.Rcode
	if e.Extended != "" {
		s += " (" + e.Extended + ")"
	}
	if e.Rcode == "SERVFAIL" {
		s += "; a validating resolver answers so when the zone's signatures do not verify (bogus)"
	}
	return s
}

// Lookup asks for the TLSA records of a TLS service at host and port and
// compares the usable ones with spki, the DER SubjectPublicKeyInfo the
// host presented. A relative host (no trailing dot) is not looked up
// while the search list has a domain: a Result with Status Failed and a
// *RelativeNameError. The servers are asked in order, each within its share
// of the time left, until one answers; the whole lookup never takes
// longer than the timeout, nor past the end of ctx, and every failure is
// a Result with Status Failed.
func (r *Resolver) Lookup(ctx context.Context, host, port string, spki []byte) Result {
	name, err := Name(host, port)
	if err != nil {
		return Result{Status: Failed, Err: err}
	}
	if err := r.relative(host); err != nil {
		// Not asked at all: the records of a name the dial may not
		// have reached prove nothing, and deny nothing either.
		return Result{Name: name, Status: Failed, Err: err}
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	res := Result{Name: name, Status: Failed, Err: errors.New("dane: no resolver configured")}
	for i, server := range r.Servers {
		// Each server gets its share of what is left, so that one that
		// does not answer leaves time to ask the next, as glibc does.
		sctx, scancel := context.WithTimeout(ctx, time.Until(deadline)/time.Duration(len(r.Servers)-i))
		var msg *dns.Msg
		res.Server = server
		msg, res.Err = exchange(sctx, name, server)
		scancel()
		if res.Err == nil {
			return r.read(res, msg, spki)
		}
		if ctx.Err() != nil {
			break
		}
	}
	switch {
	case parent.Err() != nil:
		// The caller gave up first (a dial cancelled): not the timeout.
		res.Err = fmt.Errorf("dane: the lookup was abandoned: %w", context.Cause(parent))
	case ctx.Err() != nil || timedOut(res.Err):
		res.Err = fmt.Errorf("dane: no answer within %v", timeout)
	}
	return res
}

// timedOut reports whether err is a network timeout: the deadline of
// the lookup's context, which the DNS library applies to its socket.
func timedOut(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exchange sends the query to server, over TCP when the UDP answer is
// truncated, until ctx ends; an answer other than NOERROR or NXDOMAIN is
// an error.
func exchange(ctx context.Context, name, server string) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeTLSA)
	q.RecursionDesired = true
	// Ask for the AD bit alone (RFC 6840 section 5.7), not for DNSSEC
	// records (DO) nor unchecked answers (CD): nothing here checks a
	// signature, and a local stub resolver passes a query with DO or CD
	// through to its upstream and hands back the upstream's AD bit
	// (systemd-resolved before v257), which anyone between the two
	// could have set.
	q.AuthenticatedData = true
	q.SetEdns0(1232, false) // EDNS for the size and the extended errors; DO clear
	c := &dns.Client{}
	if d, ok := ctx.Deadline(); ok {
		// The library's own bound is 2 s per read whatever the context
		// says: the lookup's time is the bound.
		c.Timeout = time.Until(d)
	}
	msg, err := exchangeOnce(ctx, c, q, server)
	if err == nil && msg.Truncated {
		c.Net = "tcp"
		msg, err = exchangeOnce(ctx, c, q, server)
	}
	if err != nil {
		return nil, fmt.Errorf("dane: asking %s: %w", server, err)
	}
	if msg.Rcode != dns.RcodeSuccess && msg.Rcode != dns.RcodeNameError {
		fe := &FailedError{Rcode: dns.RcodeToString[msg.Rcode]}
		if fe.Rcode == "" {
			fe.Rcode = fmt.Sprintf("rcode %d", msg.Rcode)
		}
		if opt := msg.IsEdns0(); opt != nil {
			for _, o := range opt.Option {
				if ede, ok := o.(*dns.EDNS0_EDE); ok {
					fe.Extended = dns.ExtendedErrorCodeToString[ede.InfoCode]
					if ede.ExtraText != "" {
						fe.Extended += ": " + ede.ExtraText
					}
				}
			}
		}
		return nil, fe
	}
	return msg, nil
}

// exchangeOnce is c.ExchangeContext, ended by ctx: the library heeds a
// context's deadline only, so its cancellation (a dial given up) closes
// the connection, which ends the wait for an answer.
func exchangeOnce(ctx context.Context, c *dns.Client, q *dns.Msg, server string) (*dns.Msg, error) {
	conn, err := c.DialContext(ctx, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	msg, _, err := c.ExchangeWithConnContext(ctx, q, conn)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return msg, err
}

// answerOwner returns the name whose records answer a query for name: the
// name itself, or the end of the chain of CNAMEs (as a resolver follows
// them, or synthesizes them from DNAMEs) in answer that starts at it.
func answerOwner(name string, answer []dns.RR) string {
	owner := dns.Fqdn(name)
	for range answer { // a chain is at most as long as the answer: no loop
		next := ""
		for _, rr := range answer {
			if c, ok := rr.(*dns.CNAME); ok && dnsname.Equal(dns.Fqdn(c.Hdr.Name), owner) {
				next = dns.Fqdn(c.Target)
				break
			}
		}
		if next == "" {
			break
		}
		owner = next
	}
	return owner
}

// read fills res from an answer. Only records owned by the name asked (or
// by the end of its CNAME chain) count.
func (r *Resolver) read(res Result, msg *dns.Msg, spki []byte) Result {
	res.Err = nil
	res.Validated = r.TrustAD && msg.AuthenticatedData
	res.Status = NoRecord
	owner := answerOwner(res.Name, msg.Answer)
	for _, rr := range msg.Answer {
		t, ok := rr.(*dns.TLSA)
		if !ok || !dnsname.Equal(dns.Fqdn(t.Hdr.Name), owner) {
			// The CNAMEs that led to the records; and records of any
			// other name, which say nothing about this one.
			continue
		}
		data, err := hex.DecodeString(t.Certificate)
		rec := Record{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data}
		if err != nil || len(data) == 0 || !rec.Usable() {
			res.Ignored = append(res.Ignored, rec)
			continue
		}
		res.Records = append(res.Records, rec)
		if rec.Matches(spki) {
			res.Status = Match
		} else if res.Status != Match {
			res.Status = NoMatch
		}
	}
	return res
}
