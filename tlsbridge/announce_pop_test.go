package tlsbridge

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/netip"
	"net/url"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// oidUnsignedNextKeys is the first form of the announcement (arc 1):
// a SEQUENCE OF SubjectPublicKeyInfo that only the current key signs.
var oidUnsignedNextKeys = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 7001, 1}

// announcerOf is an identity of k whose certificate, signed by k, carries
// exts: what a peer that holds k can make with code of its own.
func announcerOf(t testing.TB, k *jwk.Key, exts ...pkix.Extension) *Identity {
	t.Helper()
	tmpl, err := certTemplate(subjectFor(k))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.DNSNames = []string{"localhost"}
	tmpl.URIs = []*url.URL{KeyURI(k)}
	tmpl.ExtraExtensions = exts
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: issuerFor(k)}, k.Public(), k.Signer())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{Key: k, Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k.Signer(), Leaf: leaf}}
}

// unsignedAnnouncement is the extension of the first form announcing
// keys — public keys only, their private halves held by someone else.
func unsignedAnnouncement(t testing.TB, keys ...*jwk.Key) pkix.Extension {
	t.Helper()
	spkis := make([]asn1.RawValue, len(keys))
	for i, k := range keys {
		spkis[i] = asn1.RawValue{FullBytes: k.SPKI()}
	}
	val, err := asn1.Marshal(spkis)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidUnsignedNextKeys, Value: val}
}

// The hole, server side: a client whose entry accepts rotation announces
// a key whose private half it does not hold — another user's, an
// admin's, read from a pub_key file — in a certificate it signs itself.
// The key must not be authorized under the announcer's name: it would
// become that user's key under alice's attributes, and a later
// `keytool authorize` of it would find it taken.
func TestAcceptRotationNeedsTheNextKeysSignature(t *testing.T) {
	srv, cl, ts, log := acceptingRotation(t)
	cl.pin(t, ts.addr(), srv.id.Key)
	victim := mustGenerate(t, jwk.EC256).PublicKey() // bob's: alice has only its public half
	cl.id = announcerOf(t, cl.id.Key, unsignedAnnouncement(t, victim))
	if _, err := roundTrip(ts.addr(), mustConfig(t, cl.client(t, ClientOptions{}), ts.addr())); err != nil {
		t.Fatal(err)
	}
	if p := ts.lastPeer(t); p.Name() != "alice" {
		t.Fatalf("the announcer admitted as %q, want alice", p.Name())
	}
	srv.auth.Reload()
	if d := srv.auth.Decide(victim.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != authkeys.Unknown {
		t.Fatalf("a key announced without its holder's signature is %v under %q (%s)\n%s", d.Verdict, d.Entry.Name, d.Entry.File, log.String())
	}
}

// The hole, client side: a pinned host announces a key whose private
// half it does not hold (another host's) in a certificate it signs
// itself; the client must not pin it for the host's address.
func TestUpdateHostKeysNeedsTheNextKeysSignature(t *testing.T) {
	srv := newHome(t, jwk.EC256)
	victim := mustGenerate(t, jwk.EC256).PublicKey()
	srv.id = announcerOf(t, srv.id.Key, unsignedAnnouncement(t, victim))
	ts := startServer(t, srv, ServerOptions{})
	cl := newHome(t, jwk.EC256)
	srv.authorize(t, "laptop", cl.id.Key)
	cl.pin(t, ts.addr(), srv.id.Key)
	var log testlog.Buffer
	if err := learnTrip(t, cl.client(t, ClientOptions{UpdateHostKeys: UpdateYes, Logger: log.Logger()}), ts.addr()); err != nil {
		t.Fatal(err)
	}
	cl.host.Reload()
	if v := cl.host.Decide(ts.addr(), victim.SPKIHash()).Verdict; v != knownhosts.Unknown {
		t.Fatalf("a key announced without its holder's signature is %v\n%s", v, log.String())
	}
}
