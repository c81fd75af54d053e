package dane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"testing"

	"github.com/miekg/dns"

	"github.com/keytool/keytool/internal/dnsname"
)

// FuzzReadAnswer fuzzes what a resolver sends back, from the wire: the
// library's unpacking and read's choice of records, which any resolver
// on the path reaches (an unbelieved one too). It checks that nothing
// panics and that:
//   - Match holds only if a usable record of the result names the key,
//     and NoMatch only with usable records none of which does;
//   - every record kept is usable, and every record counted (kept or
//     ignored) is a TLSA record of the answer owned by the name asked or
//     by the end of its CNAME chain;
//   - the AD bit counts only from a resolver whose AD bit is believed.
func FuzzReadAnswer(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	const name = "_443._tcp.host.example."
	rec, err := RecordFor(spki, MatchSHA256)
	if err != nil {
		f.Fatal(err)
	}
	for _, answer := range [][]string{
		{name + " 60 IN TLSA " + rec.String()},
		{"_443._TCP.Host.Example. 60 IN TLSA " + rec.String()},
		{"_443._tcp.other.example. 60 IN TLSA " + rec.String()},
		{name + " 60 IN CNAME tlsa.example.", "tlsa.example. 60 IN TLSA " + rec.String()},
		{name + " 60 IN CNAME a.example.", "a.example. 60 IN CNAME " + name, "a.example. 60 IN TLSA " + rec.String()},
		{name + " 60 IN TLSA 3 1 2 " + rec.String()[6:], name + " 60 IN TLSA 2 1 1 " + rec.String()[6:]},
		{name + " 60 IN TLSA 3 0 0 00", name + " 60 IN TLSA 3 1 0 3000"},
	} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeTLSA)
		m.Response, m.AuthenticatedData = true, true
		for _, line := range answer {
			rr, err := dns.NewRR(line)
			if err != nil {
				f.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		wire, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire, true)
	}
	f.Fuzz(func(t *testing.T, wire []byte, trustAD bool) {
		msg := new(dns.Msg)
		if err := msg.Unpack(wire); err != nil {
			return
		}
		r := &Resolver{TrustAD: trustAD}
		res := r.read(Result{Name: name}, msg, spki)
		if res.Validated && (!trustAD || !msg.AuthenticatedData) {
			t.Fatalf("validated: trust %v, AD %v", trustAD, msg.AuthenticatedData)
		}
		matches := false
		for _, rec := range res.Records {
			if !rec.Usable() {
				t.Fatalf("unusable record kept: %v", rec)
			}
			matches = matches || rec.Matches(spki)
		}
		switch res.Status {
		case Match:
			if !matches {
				t.Fatal("Match without a record naming the key")
			}
		case NoMatch:
			if matches || len(res.Records) == 0 {
				t.Fatalf("NoMatch with %d records, matching: %v", len(res.Records), matches)
			}
		case NoRecord:
			if len(res.Records) != 0 {
				t.Fatalf("NoRecord with %d usable records", len(res.Records))
			}
		default:
			t.Fatalf("status %v", res.Status)
		}
		owner := answerOwner(name, msg.Answer)
		owned := 0
		for _, rr := range msg.Answer {
			if tl, ok := rr.(*dns.TLSA); ok && dnsname.Equal(dns.Fqdn(tl.Hdr.Name), owner) {
				owned++
			}
		}
		if n := len(res.Records) + len(res.Ignored); n != owned {
			t.Fatalf("%d records counted, %d owned by %s", n, owned, owner)
		}
	})
}
