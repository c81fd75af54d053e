package dane_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/dane"
	"github.com/keytool/keytool/internal/dnstest"
	"github.com/miekg/dns"
)

func newSPKI(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// tlsa is dnstest.TLSA: the zone-file line publishing spki for port.
var tlsa = dnstest.TLSA

// noSearch is an empty search list: the tests that look up relative
// names ("localhost") decide as on a machine without one, whatever this
// machine's resolv.conf says (TestLookupRelativeName has the others).
var noSearch = &dane.SearchList{}

func TestRecordFor(t *testing.T) {
	spki := newSPKI(t)
	for _, mt := range []uint8{dane.MatchFull, dane.MatchSHA256, dane.MatchSHA512} {
		r, err := dane.RecordFor(spki, mt)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Matches(spki) || r.Matches(newSPKI(t)) {
			t.Errorf("matching type %d: the record matches the wrong keys", mt)
		}
		if !strings.HasPrefix(r.String(), fmt.Sprintf("3 1 %d ", mt)) {
			t.Errorf("record %q", r)
		}
		// The same data under a CA usage, or the certificate selector, names no key.
		for _, other := range []dane.Record{{Usage: 2, Selector: 1, MatchingType: mt, Data: r.Data}, {Usage: 3, Selector: 0, MatchingType: mt, Data: r.Data}} {
			if other.Matches(spki) {
				t.Errorf("record %s matched a key", other)
			}
		}
	}
	if _, err := dane.RecordFor(spki, 3); err == nil {
		t.Error("matching type 3 accepted")
	}
}

func TestName(t *testing.T) {
	for _, c := range []struct{ host, port, want string }{
		{"db.example", "8443", "_8443._tcp.db.example."},
		{"db.example.", "443", "_443._tcp.db.example."},
		{"127.0.0.1", "443", ""}, {"::1", "443", ""}, {"fe80::1%eth0", "443", ""}, {"", "443", ""}, {"db.example", "0", ""}, {"db.example", "https", ""},
		// One trailing dot roots the name; a second is an empty label.
		{"db.example..", "443", ""}, {".", "443", ""}, {"..", "443", ""},
	} {
		got, err := dane.Name(c.host, c.port)
		var ae *dane.AddressError
		if got != c.want || (c.want == "") != errors.As(err, &ae) {
			t.Errorf("Name(%q, %q) = %q, %v; want %q", c.host, c.port, got, err, c.want)
		}
	}
}

func TestParseResolvConf(t *testing.T) {
	// The system resolver's AD bit is believed exactly when the file says
	// trust-ad (glibc's rule): not for name servers on the loopback
	// interface, where a forwarder (dnsmasq --proxy-dnssec) hands on its
	// upstream's AD bit, nor for the local one a file without name
	// servers means.
	for _, c := range []struct {
		conf    string
		servers string
		trustAD bool
	}{
		{"nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n", "127.0.0.53", true},
		{"nameserver 10.0.0.1 # the router\nnameserver ::1\n", "10.0.0.1 ::1", false},
		{"nameserver 127.0.0.1\nnameserver ::1\n", "127.0.0.1 ::1", false},
		{"; options trust-ad\noptions trust-ad\noptions no-trust-ad\nnameserver resolver.lan\n", "", false},
		{"nameserver 1.1.1.1\nnameserver 1.0.0.1\nnameserver 8.8.8.8\nnameserver 127.0.0.1\n", "1.1.1.1 1.0.0.1 8.8.8.8", false},
		{"nameserver fe80::1%eth0\n", "fe80::1", false},
		{"nameserver 10.0.0.1\noptions trust-ad\n", "10.0.0.1", true},
	} {
		got := dane.ParseResolvConf([]byte(c.conf))
		var s []string
		for _, ip := range got.Servers {
			s = append(s, ip.String())
		}
		if strings.Join(s, " ") != c.servers || got.TrustAD != c.trustAD {
			t.Errorf("%q: servers %v, trust-ad %v; want %s, %v", c.conf, s, got.TrustAD, c.servers, c.trustAD)
		}
		file := t.TempDir() + "/resolv.conf"
		if err := writeFile(file, c.conf); err != nil {
			t.Fatal(err)
		}
		r, err := dane.SystemResolver(file)
		if err != nil {
			t.Fatal(err)
		}
		if r.TrustAD != c.trustAD {
			t.Errorf("%q: the system resolver's AD bit believed: %v", c.conf, r.TrustAD)
		}
	}
}

func FuzzParseResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 127.0.0.53\noptions edns0 trust-ad\n"))
	f.Add([]byte("nameserver fe80::1%eth0\n;x\n#y\noptions no-trust-ad"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := dane.ParseResolvConf(data)
		if len(c.Servers) > 3 {
			t.Fatalf("%d servers", len(c.Servers))
		}
		for _, ip := range c.Servers {
			if !ip.IsValid() || ip.Zone() != "" {
				t.Fatalf("server %v", ip)
			}
		}
	})
}

func TestNewResolver(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.1": "127.0.0.1:53", "127.0.0.1:5353": "127.0.0.1:5353", "::1": "[::1]:53", "[::1]:5353": "[::1]:5353", "[::1]": "[::1]:53"} {
		r, err := dane.NewResolver(in)
		if err != nil || r.Servers[0] != want || !r.TrustAD {
			t.Errorf("NewResolver(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for _, bad := range []string{"", "resolver", ":53", "resolver.lan:53", "127.0.0.1:0", "127.0.0.1:x"} {
		if _, err := dane.NewResolver(bad); err == nil {
			t.Errorf("NewResolver(%q) accepted", bad)
		}
	}
}

// TestLookupRealDNS asks unbound, validating a zone nsd serves, for the
// records of each case.
func TestLookupRealDNS(t *testing.T) {
	key, other := newSPKI(t), newSPKI(t)
	cases := []struct {
		name      string
		zone      dnstest.Zone
		trustAD   bool
		status    dane.Status
		validated bool
		ignored   int
	}{
		{"signed match", dnstest.Zone{Signed: true, Records: []string{tlsa(t, "443", key, 1)}}, true, dane.Match, true, 0},
		{"signed match sha512", dnstest.Zone{Signed: true, Records: []string{tlsa(t, "443", key, 2)}}, true, dane.Match, true, 0},
		{"signed match full", dnstest.Zone{Signed: true, Records: []string{tlsa(t, "443", key, 0)}}, true, dane.Match, true, 0},
		{"signed, resolver not trusted", dnstest.Zone{Signed: true, Records: []string{tlsa(t, "443", key, 1)}}, false, dane.Match, false, 0},
		{"signed, another key", dnstest.Zone{Signed: true, Records: []string{tlsa(t, "443", other, 1)}}, true, dane.NoMatch, true, 0},
		{"signed, one of two keys", dnstest.Zone{Signed: true, Records: []string{tlsa(t, "443", other, 1), tlsa(t, "443", key, 1)}}, true, dane.Match, true, 0},
		{"signed, other port", dnstest.Zone{Signed: true, Records: []string{tlsa(t, "444", key, 1)}}, true, dane.NoRecord, true, 0},
		// The key's own hash under usages 0, 1 and 2 (PKIX-TA, PKIX-EE,
		// DANE-TA: a CA) and under selector 0 (a certificate): none is
		// read as the key.
		{"signed, CA usages ignored", dnstest.Zone{Signed: true, Records: caRecords(t, "443", key)}, true, dane.NoRecord, true, 4},
		{"signed, CA usages ignored beside the key's record", dnstest.Zone{Signed: true, Records: append(caRecords(t, "443", key), tlsa(t, "443", key, 1))},
			true, dane.Match, true, 4},
		{"unsigned", dnstest.Zone{Records: []string{tlsa(t, "443", key, 1)}}, true, dane.Match, false, 0},
		{"bogus", dnstest.Zone{Signed: true, Tamper: true, Records: []string{tlsa(t, "443", key, 1)}}, true, dane.Failed, false, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := dnstest.Start(t, c.zone)
			r, err := dane.NewResolver(d.Resolver)
			if err != nil {
				t.Fatal(err)
			}
			r.TrustAD = c.trustAD
			r.Timeout = 10 * time.Second // a loaded machine; the bound is TestLookupTimeout's
			r.Search = noSearch
			res := r.Lookup(context.Background(), "localhost", "443", key)
			if res.Status != c.status || res.Validated != c.validated || len(res.Ignored) != c.ignored {
				t.Fatalf("%+v: %s; want %v, validated %v, %d ignored", res, res.Note(), c.status, c.validated, c.ignored)
			}
			if res.Proven() != (c.status == dane.Match && c.validated) {
				t.Errorf("Proven() = %v", res.Proven())
			}
			var fe *dane.FailedError
			if c.status == dane.Failed && (!errors.As(res.Err, &fe) || fe.Rcode != "SERVFAIL" || !strings.Contains(fe.Extended, "Bogus")) {
				t.Errorf("bogus zone: %v, want SERVFAIL with DNSSEC Bogus", res.Err)
			}
			if c.ignored > 0 && !strings.Contains(res.Note(), fmt.Sprintf(" (%d record(s) of a CA usage or certificate selector ignored: only usage 3, selector 1 names a key)", c.ignored)) {
				t.Errorf("the note does not say the records were ignored: %s", res.Note())
			}
			if c.ignored > 0 && c.status == dane.NoRecord && !strings.HasPrefix(res.Note(), "the TLSA records at _443._tcp.localhost. name no key (") {
				t.Errorf("note: %s", res.Note())
			}
			t.Log(res.Note())
		})
	}
}

// caRecords are dnstest.CATLSA's lines (the hash of spki under usages 0,
// 1 and 2) and the same under selector 0 (the certificate): data a
// careless reader would take for the key.
func caRecords(t testing.TB, port string, spki []byte) []string {
	return append(dnstest.CATLSA(t, port, spki), strings.Replace(tlsa(t, port, spki, 1), "TLSA 3 1 1", "TLSA 3 0 1", 1))
}

// TestLookupNextServer: a first resolver that never answers leaves time
// to ask the second, within the one timeout.
func TestLookupNextServer(t *testing.T) {
	key := newSPKI(t)
	d := dnstest.Start(t, dnstest.Zone{Signed: true, Records: []string{tlsa(t, "443", key, 1)}})
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	r := &dane.Resolver{Servers: []string{silent.LocalAddr().String(), d.Resolver}, TrustAD: true, Timeout: 10 * time.Second, Search: noSearch}
	res := r.Lookup(context.Background(), "localhost", "443", key)
	if !res.Proven() || res.Server != d.Resolver {
		t.Fatalf("%+v: %s", res, res.Note())
	}
}

// BenchmarkLookup: one TLSA lookup through unbound with its cache warm,
// over UDP on loopback — what VerifyHostKeyDNS adds to the handshake of a
// host without a pin (docs/benchmarks.md).
func BenchmarkLookup(b *testing.B) {
	key := newSPKI(b)
	d := dnstest.Start(b, dnstest.Zone{Signed: true, Records: []string{tlsa(b, "443", key, 1)}})
	r, err := dane.NewResolver(d.Resolver)
	if err != nil {
		b.Fatal(err)
	}
	r.Search = noSearch
	for b.Loop() {
		if res := r.Lookup(context.Background(), "localhost", "443", key); !res.Proven() {
			b.Fatal(res.Note())
		}
	}
}

// forgingResolver answers every query with the records given (zone-file
// lines), AD set: a resolver that is trusted but answers with records for
// names other than the one asked (a bug, or a cache poisoned by a record
// of another name).
func forgingResolver(t *testing.T, answer ...string) string {
	return stubResolver(t, func(q, m *dns.Msg) { m.AuthenticatedData = true }, answer...)
}

// stubResolver answers every query with the records given (zone-file
// lines), its flags set by flags from the query.
func stubResolver(t *testing.T, flags func(q, m *dns.Msg), answer ...string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		flags(q, m)
		for _, line := range answer {
			rr, err := dns.NewRR(line)
			if err != nil {
				t.Error(err)
				return
			}
			m.Answer = append(m.Answer, rr)
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// TestLookupNotPassedThrough: the query asks for the AD bit alone (RFC
// 6840 section 5.7), neither DO nor CD. A local stub resolver passes a
// query with DO or CD through to its upstream and hands back the
// upstream's AD bit — systemd-resolved before v257 (systemd issue 34121),
// at 127.0.0.53, whose resolv.conf says trust-ad — so that an AD bit set
// by anyone between the machine and the upstream resolver read as the
// local resolver's validation. Asked for AD alone, the stub answers with
// its own verdict, here none (DNSSEC=no, the default of Ubuntu).
func TestLookupNotPassedThrough(t *testing.T) {
	key := newSPKI(t)
	rec, err := dane.RecordFor(key, 1)
	if err != nil {
		t.Fatal(err)
	}
	bypass := func(q, m *dns.Msg) {
		opt := q.IsEdns0()
		m.AuthenticatedData = opt != nil && opt.Do() || q.CheckingDisabled // the upstream's, forged on the way
	}
	r := &dane.Resolver{Servers: []string{stubResolver(t, bypass, "_443._tcp.host.example. 60 IN TLSA "+rec.String())}, TrustAD: true, Timeout: 10 * time.Second, Search: noSearch}
	res := r.Lookup(context.Background(), "host.example", "443", key)
	if res.Status != dane.Match || res.Validated {
		t.Fatalf("%s; want a match, not validated", res.Note())
	}
}

// Only a TLSA record owned by the name asked — or by the end of the CNAME
// chain that starts at it — counts: a record for another name matching
// the key proves nothing about this one.
func TestLookupOwnerName(t *testing.T) {
	key := newSPKI(t)
	rec, err := dane.RecordFor(key, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		answer []string
		want   dane.Status
	}{
		{"the name asked", []string{"_443._tcp.host.example. 60 IN TLSA " + rec.String()}, dane.Match},
		{"the name asked, other case", []string{"_443._TCP.Host.Example. 60 IN TLSA " + rec.String()}, dane.Match},
		{"another name", []string{"_443._tcp.other.example. 60 IN TLSA " + rec.String()}, dane.NoRecord},
		{"another port", []string{"_444._tcp.host.example. 60 IN TLSA " + rec.String()}, dane.NoRecord},
		{"through a CNAME of the name asked", []string{
			"_443._tcp.host.example. 60 IN CNAME tlsa.example.",
			"tlsa.example. 60 IN TLSA " + rec.String(),
		}, dane.Match},
		{"through a CNAME of another name", []string{
			"_443._tcp.other.example. 60 IN CNAME tlsa.example.",
			"tlsa.example. 60 IN TLSA " + rec.String(),
		}, dane.NoRecord},
		{"at the start of a CNAME chain", []string{
			"_443._tcp.host.example. 60 IN CNAME tlsa.example.",
			"_443._tcp.host.example. 60 IN TLSA " + rec.String(),
		}, dane.NoRecord},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &dane.Resolver{Servers: []string{forgingResolver(t, c.answer...)}, TrustAD: true, Timeout: 10 * time.Second, Search: noSearch}
			res := r.Lookup(context.Background(), "host.example", "443", key)
			if res.Status != c.want {
				t.Errorf("status %v, want %v: %s", res.Status, c.want, res.Note())
			}
		})
	}
}

// Names compare without case as DNS compares them (RFC 4343): ASCII
// letters only. Unicode case folding would take "hoſt" (U+017F, long s)
// or "\u212Aey" (KELVIN SIGN) for "host" and "key", so a record of the
// ASCII name, in the answer for the other, would count for it.
func TestLookupOwnerNameFoldsASCIIOnly(t *testing.T) {
	key := newSPKI(t)
	rec, err := dane.RecordFor(key, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		host   string
		answer []string
	}{
		{"hoſt.example", []string{"_443._tcp.host.example. 60 IN TLSA " + rec.String()}},
		{"\u212Aey.example", []string{"_443._tcp.key.example. 60 IN TLSA " + rec.String()}},
		{"hoſt.example", []string{
			"_443._tcp.host.example. 60 IN CNAME tlsa.example.",
			"tlsa.example. 60 IN TLSA " + rec.String(),
		}},
	} {
		r := &dane.Resolver{Servers: []string{forgingResolver(t, c.answer...)}, TrustAD: true, Timeout: 10 * time.Second, Search: noSearch}
		if res := r.Lookup(context.Background(), c.host, "443", key); res.Status == dane.Match {
			t.Errorf("%s: a record of an ASCII name that folds to it counted: %s", c.host, res.Note())
		}
	}
}

// TestLookupCancelled: a lookup ends with its context, long before its
// timeout, and says the caller gave up rather than that the resolver did
// not answer.
func TestLookupCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := dane.NewResolver(dnstest.SilentHeard(t, cancel)) // cancelled once the query is on its way
	if err != nil {
		t.Fatal(err)
	}
	r.Timeout, r.Search = 30*time.Second, noSearch
	start := time.Now()
	res := r.Lookup(ctx, "localhost", "443", newSPKI(t))
	took := time.Since(start)
	if res.Status != dane.Failed || !errors.Is(res.Err, context.Canceled) || strings.Contains(res.Err.Error(), "no answer within") {
		t.Errorf("%+v: %v", res, res.Err)
	}
	if took > 5*time.Second { // far under the timeout, with slack for a loaded machine
		t.Errorf("the cancelled lookup took %v (timeout %v)", took, r.Timeout)
	}
}
