package cli

import (
	"time"

	"github.com/keytool/keytool/dane"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// hostDNSFlags are the flags of the commands that check a server's key
// (connect, proxy --client, trust-host) for host keys published in DNS
// (docs/dns.md).
type hostDNSFlags struct {
	verify   string
	resolver string
	timeout  time.Duration
}

func (f *hostDNSFlags) register(set *pflag.FlagSet) {
	set.StringVar(&f.verify, "verify-host-key-dns", "no", "`POLICY` for looking up an unknown host's key in DNS (TLSA): yes (a DNSSEC-validated match is trusted), ask (the question says what DNS said), no")
	set.StringVar(&f.resolver, "dns-resolver", "", "ask the validating resolver at `ADDR` (IP[:PORT]) and believe its AD bit (default: resolv.conf's)")
	set.DurationVar(&f.timeout, "dns-timeout", dane.DefaultTimeout, "give up on the DNS lookup after `DURATION` and fall back to the pins")
}

// trustDNS is why a server key was trusted when a validated TLSA record
// let it in (connect -v, proxy --client's trust=).
const trustDNS = "DNS (DNSSEC-validated TLSA)"

// hostDNSHelp is the paragraph of --help on the DNS flags, headed by
// title; pinned adds what yes does besides connecting (trust-host pins).
func hostDNSHelp(title, pinned string) string {
	return title + ` (docs/dns.md), for a host without a pin:
  --verify-host-key-dns yes|ask|no  look the key up as TLSA records at
                    _PORT._tcp.HOST (keytool dns-record prints them). yes: a
                    DNSSEC-validated record naming the key needs no question` + pinned + `;
                    ask: the question says "Matching host key fingerprint found
                    in DNS."; an unsigned zone's record is only a note. A pin,
                    a changed or revoked key decide first. Default no
  --dns-resolver ADDR  a validating resolver whose AD bit is believed
                    (default: resolv.conf's, believed only with "options
                    trust-ad")
  --dns-timeout D   give up on DNS after D (default 2s) and go on as without it
`
}

// inUse reports whether any of the flags was set away from its default.
func (f *hostDNSFlags) inUse() bool {
	return f.verify != "no" || f.resolver != "" || f.timeout != dane.DefaultTimeout
}

// options sets the DNS fields of opts from the flags.
func (f *hostDNSFlags) options(opts *tlsbridge.ClientOptions) error {
	v, err := tlsbridge.ParseHostKeyDNS(f.verify)
	if err != nil {
		return usagef("--verify-host-key-dns %s: use yes, ask or no", shellQuote(f.verify))
	}
	switch {
	case v == tlsbridge.DNSNo && (f.resolver != "" || f.timeout != dane.DefaultTimeout):
		return usagef("--dns-resolver and --dns-timeout have no use without --verify-host-key-dns yes or ask")
	case f.timeout <= 0:
		return usagef("--dns-timeout must be positive, not %v", f.timeout)
	case v == tlsbridge.DNSNo:
		return nil
	}
	opts.VerifyHostKeyDNS = v
	var r *dane.Resolver
	if f.resolver != "" {
		if r, err = dane.NewResolver(f.resolver); err != nil {
			return usagef("--dns-resolver %s: use an IP address, with :PORT if not 53", shellQuote(f.resolver))
		}
	} else if r, err = dane.SystemResolver(""); err != nil {
		return err
	}
	r.Timeout, r.Search = f.timeout, dnsSearch
	opts.DNS = r
	return nil
}

// dnsSearch, when not nil, is the search list with which the system is
// taken to resolve a relative host name (dane.Resolver.Search), in place
// of the system's own. Only the tests set it (TestMain), so that their
// keytool processes decide alike on a machine whose resolv.conf has a
// search list.
var dnsSearch *dane.SearchList
