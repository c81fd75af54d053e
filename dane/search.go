package dane

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/keytool/keytool/internal/trustfile"
)

// SearchList is how the system resolver (glibc's, and Go's, which reads
// the same file) resolves a relative host name — one without a trailing
// dot. A name with at least Ndots dots is tried as given first, and with
// each domain of the list appended if it does not resolve; a name with
// fewer, with the domains first and as given last. Either way, while the
// list has a domain, the address a dial reaches for a relative name may
// be that of the name with a domain appended ("api.dev" in a Kubernetes
// pod is api.dev.svc.cluster.local), not of the name whose TLSA records
// Lookup would ask for (_443._tcp.api.dev., in the public .dev zone), and
// so Lookup looks relative names up only when the list is empty.
// docs/dns.md ("Relative names") says why no rule finer than that is
// safe.
type SearchList struct {
	Domains []string // rooted: "svc.cluster.local."
	Ndots   int
}

// hostname is os.Hostname, for the tests.
var hostname = os.Hostname

// SystemSearch returns the search list of the system resolver: the last
// search or domain line of a resolv.conf file (path empty: ResolvConf),
// and when that leaves no domain, the domain of the machine's host name
// ("vm.corp.example": corp.example.), as glibc and Go build it. The
// LOCALDOMAIN environment variable replaces the file's list in glibc, to
// which Go's resolver then hands names — but only in a program built with
// cgo: the domains of both count. ndots is the file's, or RES_OPTIONS's
// (glibc's, with cgo) when larger; it only changes what the
// *RelativeNameError says. A missing file means no search or options
// line; one that cannot be read is an error, for which a caller assumes
// the worst.
func SystemSearch(path string) (SearchList, error) {
	if path == "" {
		path = ResolvConf
	}
	data, _, err := trustfile.Read(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return SearchList{}, fmt.Errorf("dane: reading the resolver configuration: %w", err)
	}
	return searchOf(ParseResolvConf(data)), nil
}

// searchOf is the search list of conf with the environment's and the
// host name's defaults applied.
func searchOf(conf ResolvConfig) SearchList {
	if d, ok := os.LookupEnv("LOCALDOMAIN"); ok {
		conf.Search = append(searchDomains(strings.Fields(d)), conf.Search...)
	}
	ndots := conf.Ndots
	conf.options(strings.Fields(os.Getenv("RES_OPTIONS")))
	conf.Ndots = max(conf.Ndots, ndots)
	if len(conf.Search) == 0 {
		if h, err := hostname(); err == nil {
			h = strings.TrimSuffix(h, ".")
			if i := strings.IndexByte(h, '.'); i >= 0 {
				conf.Search = searchDomains([]string{h[i+1:]})
			}
		}
	}
	return SearchList{Domains: conf.Search, Ndots: conf.Ndots}
}

// searchDomains returns the domains of a search line, rooted, without
// "." (the name as given, which is tried anyway).
func searchDomains(names []string) []string {
	var out []string
	for _, n := range names {
		if n = strings.TrimSuffix(n, ".") + "."; n != "." {
			out = append(out, n)
		}
	}
	return out
}

// RelativeNameError means a host name was not looked up because it is
// relative (no trailing dot) and the system resolver has a search list:
// the name the dial reached may not be the one whose records would have
// been asked for.
type RelativeNameError struct {
	Host   string
	Search SearchList
}

func (e *RelativeNameError) Error() string {
	when := "before trying it as given"
	if strings.Count(e.Host, ".") >= e.Search.Ndots {
		when = "if it does not resolve as given"
	}
	return fmt.Sprintf("dane: relative name %s: the system may resolve it through its search list (%s) %s; write %s. to use DNS",
		e.Host, strings.Join(e.Search.Domains, ", "), when, e.Host)
}

// relative returns a *RelativeNameError when host is relative and the
// search list has a domain: when the name the dial reached is not
// certainly the one Lookup would ask about.
func (r *Resolver) relative(host string) error {
	if strings.HasSuffix(host, ".") {
		return nil
	}
	var search SearchList
	if r.Search != nil {
		search = *r.Search
	} else {
		var err error
		if search, err = SystemSearch(""); err != nil {
			return fmt.Errorf("%w (relative name %s: whether the system resolves it through a search list is unknown; write %s. to use DNS)", err, host, host)
		}
	}
	if len(search.Domains) == 0 {
		return nil
	}
	return &RelativeNameError{Host: host, Search: search}
}
