package tlsbridge

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/jwk"
)

// malformedAnnouncer is an identity of k whose certificate, signed by k,
// carries an OIDSignedNextKeys extension that does not parse: a SEQUENCE
// holding an INTEGER where a key should be.
func malformedAnnouncer(t testing.TB, k *jwk.Key) *Identity {
	t.Helper()
	notKey, err := asn1.Marshal([]asn1.RawValue{{FullBytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := certTemplate(subjectFor(k))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ExtraExtensions = []pkix.Extension{{Id: OIDSignedNextKeys, Value: notKey}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: issuerFor(k)}, k.Public(), k.Signer())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := AnnouncedKeys(leaf); err == nil {
		t.Fatal("the malformed announcement parsed")
	}
	return &Identity{Key: k, Certificate: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k.Signer(), Leaf: leaf}}
}

// A client whose entry accepts rotation and whose certificate carries a
// malformed announcement is still admitted, and the failure waits
// rotationRetry as the others do: three connections, one warning saying
// when it is tried again (found by review: a warning per connection and
// per request).
func TestAcceptRotationMalformedAnnouncementWaits(t *testing.T) {
	srv, cl, ts, log := acceptingRotation(t)
	cl.pin(t, ts.addr(), srv.id.Key)
	cl.id = malformedAnnouncer(t, cl.id.Key)
	for i := range 3 {
		if _, err := roundTrip(ts.addr(), mustConfig(t, cl.client(t, ClientOptions{}), ts.addr())); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		if p := ts.lastPeer(t); p.Name() != "alice" {
			t.Fatalf("connection %d admitted as %q, want alice", i+1, p.Name())
		}
	}
	if n := strings.Count(log.String(), "ignoring the next keys a client announces"); n != 1 || !strings.Contains(log.String(), "retry_in=10s") {
		t.Errorf("%d warnings for 3 connections with a malformed announcement, want 1 (then none for %v), with retry_in:\n%s", n, rotationRetry, log.String())
	}
}

// A pinned host whose certificate carries a malformed announcement is
// still connected to, and the failure waits rotationRetry as the others
// do: three connections, one warning (found by review: one per
// connection).
func TestUpdateHostKeysMalformedAnnouncementWaits(t *testing.T) {
	srv := newHome(t, jwk.EC256)
	srv.id = malformedAnnouncer(t, srv.id.Key)
	ts := startServer(t, srv, ServerOptions{})
	cl := newHome(t, jwk.EC256)
	srv.authorize(t, "laptop", cl.id.Key)
	cl.pin(t, ts.addr(), srv.id.Key)
	var log testlog.Buffer
	client := cl.client(t, ClientOptions{UpdateHostKeys: UpdateYes, Logger: log.Logger()})
	for i := range 3 {
		if err := learnTrip(t, client, ts.addr()); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
	}
	if n := strings.Count(log.String(), "ignoring the next keys a host announces"); n != 1 || !strings.Contains(log.String(), "retry_in=10s") {
		t.Errorf("%d warnings for 3 connections with a malformed announcement, want 1 (then none for %v), with retry_in:\n%s", n, rotationRetry, log.String())
	}
}
