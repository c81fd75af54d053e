package dane_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/dane"
	"github.com/keytool/keytool/internal/dnstest"
	"github.com/miekg/dns"
)

// The search list and ndots are read as glibc and Go read them: search
// and domain replace each other, the last line winning; "." adds no
// domain; ndots is 1 by default, the last options line naming it wins,
// and it is held between 0 and 15.
func TestParseResolvConfSearch(t *testing.T) {
	for _, c := range []struct {
		conf   string
		search []string
		ndots  int
	}{
		{"nameserver 10.0.0.1\n", nil, 1},
		{"search default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
			[]string{"default.svc.cluster.local.", "svc.cluster.local.", "cluster.local."}, 5},
		{"domain corp.example\n", []string{"corp.example."}, 1},
		{"domain corp.example extra.example\n", []string{"corp.example."}, 1},
		{"search a.example\ndomain b.example\n", []string{"b.example."}, 1},
		{"domain b.example\nsearch a.example. c.example\n", []string{"a.example.", "c.example."}, 1},
		{"search a.example\nsearch\n", []string{"a.example."}, 1}, // a search line naming nothing changes nothing
		{"search . a.example\n", []string{"a.example."}, 1},
		{"search .\n", nil, 1},
		{"# search a.example\n; domain b.example\nsearch c.example # d.example\n", []string{"c.example."}, 1},
		{"options ndots:2\noptions ndots:3 trust-ad\n", nil, 3},
		{"options ndots:20\n", nil, 15},
		{"options ndots:-1\n", nil, 0},
		{"options ndots:x\n", nil, 0},
		{"options ndots:2\noptions edns0\n", nil, 2},
	} {
		got := dane.ParseResolvConf([]byte(c.conf))
		if !reflect.DeepEqual(got.Search, c.search) || got.Ndots != c.ndots {
			t.Errorf("%q: search %q, ndots %d; want %q, %d", c.conf, got.Search, got.Ndots, c.search, c.ndots)
		}
	}
}

// SystemSearch is the file's list and LOCALDOMAIN's: glibc searches the
// variable's instead of the file's, and Go's resolver hands names to glibc
// when it is set, but only when built with cgo — without, it searches the
// file's. RES_OPTIONS's ndots counts when larger.
func TestSystemSearch(t *testing.T) {
	file := t.TempDir() + "/resolv.conf"
	if err := writeFile(file, "search svc.cluster.local cluster.local\noptions ndots:5\n"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOCALDOMAIN", "lan.example")
	t.Setenv("RES_OPTIONS", "ndots:7 rotate")
	got, err := dane.SystemSearch(file)
	if err != nil {
		t.Fatal(err)
	}
	if want := (dane.SearchList{Domains: []string{"lan.example.", "svc.cluster.local.", "cluster.local."}, Ndots: 7}); !reflect.DeepEqual(got, want) {
		t.Errorf("SystemSearch = %+v, want %+v", got, want)
	}
	if _, err := dane.SystemSearch(t.TempDir()); err == nil {
		t.Error("a resolv.conf that cannot be read gave a search list")
	}
}

// searchResolver asks server, whose AD bit it believes, and resolves
// relative names through search with ndots.
func searchResolver(server string, ndots int, search ...string) *dane.Resolver {
	return &dane.Resolver{Servers: []string{server}, TrustAD: true, Timeout: 10 * time.Second,
		Search: &dane.SearchList{Domains: search, Ndots: ndots}}
}

// A host written without a trailing dot may be resolved by the dial
// through the search list ("api.dev" in a Kubernetes pod, ndots:5, is
// api.dev.svc.cluster.local), while its TLSA records are asked at
// _443._tcp.api.dev. — a name of the public .dev zone. So with a search
// list, a relative name is not looked up at all: no proof, no record to
// block accept-new, and a note saying to write the name rooted. Rooted,
// and without a search list, the records decide as before.
func TestLookupRelativeName(t *testing.T) {
	dnstest.Require(t)
	key := newSPKI(t)
	d := dnstest.Start(t, dnstest.Zone{Signed: true, Records: []string{tlsa(t, "443", key, 1)}})
	for _, c := range []struct {
		name   string
		host   string
		ndots  int
		search []string
		proven bool
		note   string
	}{
		{"relative, search list, fewer dots than ndots", "localhost", 5, []string{"svc.cluster.local.", "cluster.local."}, false,
			"DNS not asked: relative name localhost: the system may resolve it through its search list (svc.cluster.local., cluster.local.) before trying it as given; write localhost. to use DNS"},
		// Tried as given first, but through the search list when it
		// does not resolve: a name with no address of its own, and
		// TLSA records under it, would still prove a key for a host
		// the dial found elsewhere.
		{"relative, search list, ndots reached", "localhost", 0, []string{"lan.example."}, false,
			"DNS not asked: relative name localhost: the system may resolve it through its search list (lan.example.) if it does not resolve as given; write localhost. to use DNS"},
		{"rooted, search list", "localhost.", 5, []string{"svc.cluster.local."}, true, "a DNSSEC-validated TLSA record at _443._tcp.localhost. matches the key"},
		{"relative, no search list", "localhost", 1, nil, true, "a DNSSEC-validated TLSA record at _443._tcp.localhost. matches the key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := searchResolver(d.Resolver, c.ndots, c.search...).Lookup(context.Background(), c.host, "443", key)
			if res.Proven() != c.proven || res.Note() != c.note {
				t.Errorf("proven %v, note %q; want %v, %q", res.Proven(), res.Note(), c.proven, c.note)
			}
			var rel *dane.RelativeNameError
			if !c.proven && (res.Status != dane.Failed || !errors.As(res.Err, &rel) || rel.Host != c.host || res.Server != "") {
				t.Errorf("%+v: want Failed with a *RelativeNameError, no resolver asked", res)
			}
		})
	}
}

// The review's case, with a resolver that answers whatever is asked: a
// relative name with a search list is never asked about, so that the
// records of the public name cannot even be seen.
func TestLookupRelativeNameNotAsked(t *testing.T) {
	key := newSPKI(t)
	rec, err := dane.RecordFor(key, 1)
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	srv := stubResolver(t, func(q, m *dns.Msg) { asked.Add(1); m.AuthenticatedData = true }, "_443._tcp.api.dev. 60 IN TLSA "+rec.String())
	r := searchResolver(srv, 5, "default.svc.cluster.local.", "svc.cluster.local.", "cluster.local.")
	if res := r.Lookup(context.Background(), "api.dev", "443", key); res.Proven() || !strings.Contains(res.Note(), "write api.dev. to use DNS") {
		t.Errorf("api.dev: %s", res.Note())
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the resolver was asked %d times about a relative name", n)
	}
	if res := r.Lookup(context.Background(), "api.dev.", "443", key); !res.Proven() || res.Name != "_443._tcp.api.dev." {
		t.Errorf("api.dev.: %s", res.Note())
	}
}

// A Resolver without a Search asks the system at each lookup: a literal
// Resolver{} does not take relative names for absolute ones.
func TestLookupSearchDefaultsToTheSystem(t *testing.T) {
	t.Setenv("LOCALDOMAIN", "lan.example")
	key := newSPKI(t)
	rec, err := dane.RecordFor(key, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := &dane.Resolver{Servers: []string{forgingResolver(t, "_443._tcp.host.example. 60 IN TLSA "+rec.String())}, TrustAD: true, Timeout: 10 * time.Second}
	if res := r.Lookup(context.Background(), "host.example", "443", key); res.Proven() || !strings.Contains(res.Note(), "(lan.example.)") {
		t.Errorf("with LOCALDOMAIN set: %s", res.Note())
	}
}
