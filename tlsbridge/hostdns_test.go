package tlsbridge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"

	"github.com/keytool/keytool/dane"
	"github.com/keytool/keytool/internal/dnstest"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// noSearch is an empty search list: the tests dialling a relative name
// (localhost:PORT) decide as on a machine without one, whatever this
// machine's resolv.conf says (TestVerifyHostKeyDNSRelativeName has the
// others).
var noSearch = &dane.SearchList{}

// tlsaLine is the zone-file line publishing k for port in dnstest.Origin.
func tlsaLine(t *testing.T, port string, k *jwk.Key) string {
	return dnstest.TLSA(t, port, k.SPKI(), dane.MatchSHA256)
}

// TestVerifyHostKeyDNS connects to a server at localhost:PORT whose TLSA
// records nsd serves and unbound validates (internal/dnstest), under each
// case of docs/dns.md.
func TestVerifyHostKeyDNS(t *testing.T) {
	dnstest.Require(t)
	type prompted struct {
		asked bool
		dns   *dane.Result
	}
	cases := []struct {
		name string
		// zone: whether signed, tampered, and whose key the record names
		signed, tamper, otherKey, noRecord bool
		caOnly                             bool // only the key's hash under usages 0-2 (a CA)
		silent                             bool // the resolver never answers
		untrusted                          bool // the resolver's AD bit is not believed
		opts                               ClientOptions
		setup                              func(t *testing.T, cli *home, addr string, srv *home)
		connect, pinned, asked             bool
		pinnedBy                           string      // "accept-new": a pin without the DNS comment
		status                             dane.Status // the prompt's DNS result, when asked
		validated                          bool
		errAs                              any
		log                                string
	}{
		{name: "signed yes", signed: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Strict}, connect: true, log: "host key found in DNS"},
		{name: "signed yes ask-policy no prompt", signed: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Ask}, connect: true},
		{name: "signed yes pin", signed: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Strict, PinFromDNS: true}, connect: true, pinned: true},
		{name: "signed yes accept-new pins", signed: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: AcceptNew}, connect: true, pinned: true},
		{name: "signed ask", signed: true, opts: ClientOptions{VerifyHostKeyDNS: DNSAsk, Policy: Ask}, asked: true, status: dane.Match, validated: true,
			errAs: new(*RefusedHostError)},
		{name: "signed no", signed: true, opts: ClientOptions{VerifyHostKeyDNS: DNSNo, Policy: Strict}, errAs: new(*knownhosts.UnknownHostError)},
		{name: "signed, resolver not trusted", signed: true, untrusted: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Ask},
			asked: true, status: dane.Match, errAs: new(*RefusedHostError)},
		{name: "unsigned yes strict", opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Strict}, errAs: new(*knownhosts.UnknownHostError)},
		{name: "unsigned yes ask", opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Ask}, asked: true, status: dane.Match, errAs: new(*RefusedHostError)},
		{name: "bogus", signed: true, tamper: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Ask}, asked: true, status: dane.Failed,
			errAs: new(*RefusedHostError), log: "DNSSEC Bogus"},
		{name: "another key", signed: true, otherKey: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Ask}, asked: true, status: dane.NoMatch,
			validated: true, errAs: new(*RefusedHostError), log: "name another key"},
		{name: "another key, accept-new", signed: true, otherKey: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: AcceptNew},
			errAs: new(*DNSMismatchError)},
		{name: "another key, unsigned, accept-new", otherKey: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: AcceptNew},
			connect: true, pinned: true, pinnedBy: "accept-new"},
		{name: "no record", signed: true, noRecord: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Strict}, errAs: new(*knownhosts.UnknownHostError),
			log: `level=WARN msg="host key not verified by DNS, falling back to the pins" addr=localhost:PORT fingerprint=FP note="no TLSA record at _PORT._tcp.localhost."`},
		{name: "no record, ask", signed: true, noRecord: true, opts: ClientOptions{VerifyHostKeyDNS: DNSAsk, Policy: Ask}, asked: true, status: dane.NoRecord,
			validated: true, errAs: new(*RefusedHostError), log: `note="no TLSA record at _PORT._tcp.localhost."`},
		// Usages 0-2 name a CA: the key's hash under them is not read as
		// the key, under yes (strict: refused; ask: the question) nor
		// under accept-new (pinned on first use, not from DNS).
		{name: "CA usages only, strict", signed: true, caOnly: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Strict}, errAs: new(*knownhosts.UnknownHostError),
			log: `level=WARN msg="host key not verified by DNS, falling back to the pins" addr=localhost:PORT fingerprint=FP note="the TLSA records at _PORT._tcp.localhost. name no key (3 record(s) of a CA usage or certificate selector ignored: only usage 3, selector 1 names a key)"`},
		{name: "CA usages only, ask", signed: true, caOnly: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Ask}, asked: true, status: dane.NoRecord,
			validated: true, errAs: new(*RefusedHostError), log: "3 record(s) of a CA usage or certificate selector ignored"},
		{name: "CA usages only, accept-new", signed: true, caOnly: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: AcceptNew},
			connect: true, pinned: true, pinnedBy: "accept-new", log: "3 record(s) of a CA usage or certificate selector ignored"},
		{name: "another key pinned", signed: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Ask},
			setup: func(t *testing.T, cli *home, addr string, _ *home) { cli.pin(t, addr, mustGenerate(t, jwk.EC256)) },
			errAs: new(*knownhosts.KeyChangedError)},
		{name: "revoked", signed: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Ask},
			setup: func(t *testing.T, cli *home, _ string, srv *home) { cli.revoke(t, srv.id.Key) },
			errAs: new(*knownhosts.RevokedError)},
		{name: "trusted-hosts file skipped", signed: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Ask},
			setup: func(t *testing.T, cli *home, _ string, _ *home) {
				dir := filepath.Join(cli.dir, "trusted_hosts.d")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("{not json"), 0o644); err != nil {
					t.Fatal(err)
				}
				cli.host.Reload()
			},
			errAs: new(*knownhosts.SkippedFilesError)},
		{name: "resolver down", silent: true, opts: ClientOptions{VerifyHostKeyDNS: DNSYes, Policy: Ask}, asked: true, status: dane.Failed,
			errAs: new(*RefusedHostError), log: "no answer within 1s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cli := newHome(t, jwk.EC256)
			srv, ts := serverFor(t, cli)
			_, port, _ := net.SplitHostPort(ts.addr())
			addr := net.JoinHostPort("localhost", port)
			published := srv.id.Key
			if c.otherKey {
				published = mustGenerate(t, jwk.EC256)
			}
			zone := dnstest.Zone{Signed: c.signed, Tamper: c.tamper, Records: []string{tlsaLine(t, port, published)}}
			if c.noRecord {
				zone.Records = []string{tlsaLine(t, "1", published)}
			}
			if c.caOnly {
				zone.Records = dnstest.CATLSA(t, port, published.SPKI())
			}
			var resolver string
			if c.silent {
				resolver = dnstest.Silent(t)
			} else {
				resolver = dnstest.Start(t, zone).Resolver
			}
			if c.setup != nil {
				c.setup(t, cli, addr, srv)
			}
			r, err := dane.NewResolver(resolver)
			if err != nil {
				t.Fatal(err)
			}
			r.TrustAD = !c.untrusted
			r.Timeout = 10 * time.Second // a loaded machine; the resolver-down case sets its bound
			r.Search = noSearch
			if c.silent {
				r.Timeout = time.Second
			}
			var log testlog.Buffer
			var p prompted
			opts := c.opts
			opts.DNS = r
			opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
			opts.Prompt = PromptFunc(func(h UnknownHost) (Answer, error) {
				p = prompted{true, h.DNS}
				return No, nil
			})
			start := time.Now()
			client := cli.client(t, opts)
			cs, err := roundTrip(addr, mustConfig(t, client, addr))
			took := time.Since(start)
			// AcceptedByDNS: only a validated record's key, not pinned
			// before (accept-new pins it after DNS let it in).
			if byDNS := err == nil && opts.VerifyHostKeyDNS == DNSYes && c.signed && !c.untrusted && c.pinnedBy == ""; client.AcceptedByDNS(addr, cs) != byDNS {
				t.Errorf("AcceptedByDNS = %v, want %v", !byDNS, byDNS)
			}
			if (err == nil) != c.connect {
				t.Fatalf("connected = %v (%v), want %v; log:\n%s", err == nil, err, c.connect, log.String())
			}
			if c.errAs != nil && !errors.As(err, c.errAs) {
				t.Errorf("err = %v, want %T", err, c.errAs)
			}
			if p.asked != c.asked {
				t.Fatalf("prompt asked = %v, want %v; log:\n%s", p.asked, c.asked, log.String())
			}
			if c.asked && (p.dns == nil || p.dns.Status != c.status || p.dns.Validated != c.validated) {
				t.Errorf("the prompt's DNS result = %+v, want %v, validated %v", p.dns, c.status, c.validated)
			}
			files := pinFiles(t, cli)
			if c.pinned {
				if len(files) != 1 {
					t.Fatalf("pin files %v, want one", files)
				}
				keys, err := jwk.ReadFile(files[0])
				want := DNSComment + " at _" + port + "._tcp.localhost."
				if c.pinnedBy == "accept-new" {
					want = ""
				}
				if err != nil || !keys[0].Equal(srv.id.Key) || keys[0].Attrs.Comment() != want {
					t.Errorf("pin %v (%v), comment %q", keys, err, keys[0].Attrs.Comment())
				}
			} else if c.setup == nil && len(files) != 0 {
				t.Errorf("pinned %v", files)
			}
			if want := strings.NewReplacer("PORT", port, "FP", srv.id.Key.Fingerprint()).Replace(c.log); !strings.Contains(log.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, log.String())
			}
			if c.silent && took > time.Second+5*time.Second { // the bound, and slack for a loaded machine
				t.Errorf("with the resolver down, the handshake took %v", took)
			}
		})
	}
}

// TestVerifyHostKeyDNSDialCancelled: the DNS lookup of a handshake ends
// with the dial's context: a caller that gives up does not wait for the
// resolver's timeout, and no prompt is asked.
func TestVerifyHostKeyDNSDialCancelled(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	_, ts := serverFor(t, cli)
	_, port, _ := net.SplitHostPort(ts.addr())
	addr := net.JoinHostPort("localhost", port)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := dane.NewResolver(dnstest.SilentHeard(t, cancel)) // the dial is given up once the query is on its way
	if err != nil {
		t.Fatal(err)
	}
	r.Timeout, r.Search = 30*time.Second, noSearch
	var log testlog.Buffer
	asked := false
	client := cli.client(t, ClientOptions{VerifyHostKeyDNS: DNSYes, DNS: r, Policy: Ask,
		Logger: slog.New(slog.NewTextHandler(&log, nil)),
		Prompt: PromptFunc(func(UnknownHost) (Answer, error) { asked = true; return Yes, nil })})
	start := time.Now()
	conn, err := client.DialContext(ctx, "tcp", addr)
	took := time.Since(start)
	if err == nil {
		conn.Close()
		t.Fatal("the cancelled dial connected")
	}
	if took > 5*time.Second { // far under the timeout, with slack for a loaded machine
		t.Errorf("the cancelled dial took %v (DNS timeout %v): %v", took, r.Timeout, err)
	}
	if !strings.Contains(log.String(), "the lookup was abandoned: context canceled") {
		t.Errorf("log lacks the abandoned lookup:\n%s", log.String())
	}
	if asked || len(pinFiles(t, cli)) != 0 {
		t.Errorf("asked %v, pins %v", asked, pinFiles(t, cli))
	}
}

// TestVerifyHostKeyDNSRelativeName: with a search list, a relative host
// (localhost:PORT) may be reached through it — in a Kubernetes pod
// "api.dev" is api.dev.svc.cluster.local — while its TLSA records would be
// asked at the absolute name, so DNS is not asked: a validated record of
// the absolute name lets nothing in, and one naming another key does not
// stop accept-new from pinning (docs/dns.md, "Relative names"). The same
// host written rooted (localhost.:PORT) is what DNS answers for.
func TestVerifyHostKeyDNSRelativeName(t *testing.T) {
	dnstest.Require(t)
	search := &dane.SearchList{Domains: []string{"svc.cluster.local.", "cluster.local."}, Ndots: 5}
	for _, c := range []struct {
		name     string
		host     string
		policy   Policy
		otherKey bool // the record names another key
		connect  bool
		errAs    any
		log      string
	}{
		{name: "relative", host: "localhost", policy: Strict, errAs: new(*knownhosts.UnknownHostError),
			log: `level=WARN msg="host key not verified by DNS, falling back to the pins" addr=localhost:PORT fingerprint=FP note="DNS not asked: relative name localhost: the system may resolve it through its search list (svc.cluster.local., cluster.local.) before trying it as given; write localhost. to use DNS"`},
		{name: "relative, another key, accept-new", host: "localhost", policy: AcceptNew, otherKey: true, connect: true, log: "DNS not asked: relative name localhost"},
		{name: "rooted", host: "localhost.", policy: Strict, connect: true, log: `msg="host key found in DNS" addr=localhost.:PORT`},
		{name: "rooted, another key, accept-new", host: "localhost.", policy: AcceptNew, otherKey: true, errAs: new(*DNSMismatchError)},
	} {
		t.Run(c.name, func(t *testing.T) {
			cli := newHome(t, jwk.EC256)
			srv, ts := serverFor(t, cli)
			_, port, _ := net.SplitHostPort(ts.addr())
			addr := net.JoinHostPort(c.host, port)
			published := srv.id.Key
			if c.otherKey {
				published = mustGenerate(t, jwk.EC256)
			}
			r, err := dane.NewResolver(dnstest.Start(t, dnstest.Zone{Signed: true, Records: []string{tlsaLine(t, port, published)}}).Resolver)
			if err != nil {
				t.Fatal(err)
			}
			r.Timeout, r.Search = 10*time.Second, search
			var log testlog.Buffer
			client := cli.client(t, ClientOptions{VerifyHostKeyDNS: DNSYes, DNS: r, Policy: c.policy, Logger: slog.New(slog.NewTextHandler(&log, nil))})
			// Connected to the server's IP address, checked for addr:
			// the system's resolver need not know the rooted name
			// localhost. (this machine's /etc/hosts says localhost).
			cs, err := roundTrip(ts.addr(), mustConfig(t, client, addr))
			if (err == nil) != c.connect {
				t.Fatalf("connected = %v (%v), want %v; log:\n%s", err == nil, err, c.connect, log.String())
			}
			if c.errAs != nil && !errors.As(err, c.errAs) {
				t.Errorf("err = %v, want %T", err, c.errAs)
			}
			if byDNS := c.connect && c.policy == Strict; client.AcceptedByDNS(addr, cs) != byDNS {
				t.Errorf("AcceptedByDNS = %v, want %v", !byDNS, byDNS)
			}
			if want := strings.NewReplacer("PORT", port, "FP", srv.id.Key.Fingerprint()).Replace(c.log); !strings.Contains(log.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, log.String())
			}
		})
	}
}

// TestVerifyHostKeyDNSIPLiteral: an IP address has no TLSA name, and the
// resolver is not asked (nor a note logged) — with a zone too.
func TestVerifyHostKeyDNSIPLiteral(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	_, ts := serverFor(t, cli)
	var heard atomic.Bool
	r, err := dane.NewResolver(dnstest.SilentHeard(t, func() { heard.Store(true) }))
	if err != nil {
		t.Fatal(err)
	}
	r.Timeout = time.Second
	var log testlog.Buffer
	client := cli.client(t, ClientOptions{VerifyHostKeyDNS: DNSYes, DNS: r, Policy: Strict, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if _, err := roundTrip(ts.addr(), mustConfig(t, client, ts.addr())); !errors.As(err, new(*knownhosts.UnknownHostError)) {
		t.Errorf("%s: err = %v, want an unknown host", ts.addr(), err)
	}
	for _, addr := range []string{ts.addr(), "[fe80::1%lo]:443", "[::1]:443"} {
		if res := client.lookupDNS(context.Background(), addr, cli.id.Key); res != nil {
			t.Errorf("%s: DNS asked: %s", addr, res.Note())
		}
	}
	if heard.Load() || strings.Contains(log.String(), "DNS") {
		t.Errorf("DNS asked about an IP address (heard %v):\n%s", heard.Load(), log.String())
	}
}

// The terminal says what DNS said, in OpenSSH's words for a validated
// match, and at most a note for anything else.
func TestTerminalPromptDNS(t *testing.T) {
	k := mustGenerate(t, jwk.EC256)
	for _, c := range []struct {
		res  *dane.Result
		want string
	}{
		{&dane.Result{Name: "_443._tcp.db.example.", Status: dane.Match, Validated: true}, "\nMatching host key fingerprint found in DNS.\n"},
		{&dane.Result{Name: "_443._tcp.db.example.", Status: dane.Match}, "\nA matching host key fingerprint was found in DNS, but the answer is not DNSSEC-validated: it proves nothing.\n"},
		{&dane.Result{Name: "_443._tcp.db.example.", Status: dane.NoMatch, Validated: true}, "\nWARNING: the host key fingerprint published in DNS is not this key's (the DNSSEC-validated TLSA records at _443._tcp.db.example. name another key).\n"},
		{&dane.Result{Name: "_443._tcp.db.example.", Status: dane.Failed, Err: &dane.FailedError{Rcode: "SERVFAIL"}}, "\nNothing was learned from DNS: DNS lookup of _443._tcp.db.example. failed: "},
		// OpenSSH's line when nothing matches: DNS was asked, and the
		// question says it did not vouch for the key.
		{&dane.Result{Name: "_443._tcp.db.example.", Status: dane.NoRecord, Validated: true}, "\nNo matching host key fingerprint found in DNS.\n"},
		// Records of CA usages (0, 1, 2) are ignored, and the question
		// says so, in its one line; the same data under usage 3 would
		// have matched.
		{&dane.Result{Name: "_443._tcp.db.example.", Status: dane.NoRecord, Validated: true, Ignored: caUsages(t, k)},
			"\nNo matching host key fingerprint found in DNS: the TLSA records at _443._tcp.db.example. name no key (3 record(s) of a CA usage or certificate selector ignored: only usage 3, selector 1 names a key).\n"},
		{nil, ""},
	} {
		var out strings.Builder
		if _, err := (Terminal{In: strings.NewReader("no\n"), Out: &out}).AskUnknownHost(UnknownHost{Addr: "db.example:443", Key: k, DNS: c.res}); err != nil {
			t.Fatal(err)
		}
		if c.want == "" && strings.Contains(out.String(), "DNS") || !strings.Contains(out.String(), c.want) {
			t.Errorf("%+v: prompt lacks %q:\n%s", c.res, c.want, out.String())
		}
		lines := 0
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, "DNS") {
				lines++
			}
		}
		if c.want != "" && lines != 1 {
			t.Errorf("%+v: %d lines about DNS, want one:\n%s", c.res, lines, out.String())
		}
	}
}

// caUsages are records of k's SHA-256 under the usages that name a CA.
func caUsages(t *testing.T, k *jwk.Key) []dane.Record {
	r, err := dane.RecordFor(k.SPKI(), dane.MatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	var recs []dane.Record
	for _, u := range []uint8{0, 1, 2} {
		recs = append(recs, dane.Record{Usage: u, Selector: r.Selector, MatchingType: r.MatchingType, Data: r.Data})
	}
	return recs
}

func TestParseHostKeyDNS(t *testing.T) {
	for _, s := range []string{"yes", "ask", "no"} {
		v, err := ParseHostKeyDNS(s)
		if err != nil || v.String() != s {
			t.Errorf("%s: %v, %v", s, v, err)
		}
	}
	if _, err := ParseHostKeyDNS("accept-new"); err == nil {
		t.Error("accept-new accepted")
	}
}

// BenchmarkHostKeyDNS: the handshake of a host accepted by a validated
// TLSA record (one query to unbound, its cache warm) against the same
// handshake with the key pinned (no DNS): what VerifyHostKeyDNS costs a
// connection to a host without a pin. Numbers: docs/benchmarks.md.
func BenchmarkHostKeyDNS(b *testing.B) {
	dnstest.Require(b)
	key := func() *Identity {
		k, err := jwk.Generate(jwk.EC256)
		if err != nil {
			b.Fatal(err)
		}
		id, err := NewIdentity(k, CertOptions{})
		if err != nil {
			b.Fatal(err)
		}
		return id
	}
	srvID, cliID := key(), key()
	clients := authkeys.Load(authkeys.HomeOptions(b.TempDir()))
	if _, err := clients.Add(cliID.Key.PublicKey(), "client", authkeys.AddNew); err != nil {
		b.Fatal(err)
	}
	srv, err := NewServer(srvID, ServerOptions{Clients: clients})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		b.Fatal(err)
	}
	testnet.ServeEach(b, ln, func(c net.Conn) {
		if c.(*tls.Conn).Handshake() == nil {
			_, _ = io.WriteString(c, "ok\n")
		}
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	addr := net.JoinHostPort("localhost", port)
	d := dnstest.Start(b, dnstest.Zone{Signed: true, Records: []string{dnstest.TLSA(b, port, srvID.Key.SPKI(), dane.MatchSHA256)}})
	res, err := dane.NewResolver(d.Resolver)
	if err != nil {
		b.Fatal(err)
	}
	res.Search = noSearch
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, c := range []struct {
		name string
		opts ClientOptions
		pin  bool
	}{
		{"trust=pinned", ClientOptions{Policy: Strict}, true},
		{"trust=dns", ClientOptions{Policy: Strict, VerifyHostKeyDNS: DNSYes, DNS: res}, false},
	} {
		hosts := knownhosts.Load(knownhosts.HomeOptions(b.TempDir()))
		if c.pin {
			if _, err := hosts.Add(addr, srvID.Key.PublicKey()); err != nil {
				b.Fatal(err)
			}
		}
		c.opts.Hosts, c.opts.Logger = hosts, quiet
		client, err := NewClient(cliID, c.opts)
		if err != nil {
			b.Fatal(err)
		}
		cfg := mustConfig(b, client, addr)
		cfg.ClientSessionCache = nil // full handshakes
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := roundTrip(addr, cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
