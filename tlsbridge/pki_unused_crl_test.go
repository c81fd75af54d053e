package tlsbridge

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// A CRL PKI mode does not use to decide — a delta CRL (its critical
// deltaCRLIndicator) or one dated in the future — is still a revocation
// its CA signed: a certificate it lists, as of a date not before the
// current full CRL's, is refused in the handshake. Before, the full CRL
// alone decided whenever there was one: a delta CRL beside it (Active
// Directory Certificate Services publishes a weekly base and a daily
// delta; an operator installs both) had its revocations ignored, and the
// certificate it revoked was admitted until the next base CRL. A delta
// older than the full CRL does not count: the full one is newer, and
// lists what is still revoked.
func TestUnusedCRLsRevocationsCount(t *testing.T) {
	ca := newCA(t)
	srv := newHome(t, jwk.EC256)
	pki := ca.pki(t)
	rs := startRecording(t, mustServer(t, srv, ServerOptions{PKI: pki}))
	cli := newHome(t, jwk.EC256)
	cli.id = ca.issue(t, cli.id.Key)
	cli.pin(t, rs.addr(), srv.id.Key)
	crl := func(number int64, this time.Time, exts []pkix.Extension, revoked ...*Identity) []byte {
		var entries []x509.RevocationListEntry
		for _, id := range revoked {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: id.Certificate.Leaf.SerialNumber, RevocationTime: this})
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: this,
			NextUpdate: this.Add(24 * time.Hour), RevokedCertificateEntries: entries, ExtraExtensions: exts}, ca.cert, ca.key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	baseNumber, _ := asn1.Marshal(1)
	delta := []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: baseNumber}} // deltaCRLIndicator
	n := 0
	publish := func(crls ...[]byte) {
		t.Helper()
		var data []byte
		for _, c := range crls {
			data = append(data, c...)
		}
		if err := os.WriteFile(ca.crlFile(), data, 0o644); err != nil {
			t.Fatal(err)
		}
		n++
		future := time.Now().Add(time.Duration(n) * time.Minute)
		_ = os.Chtimes(ca.crlFile(), future, future)
		pki.checkedAt.Store(0)
	}
	now := time.Now()
	base := crl(1, now.Add(-2*time.Hour), nil)

	publish(base, crl(2, now.Add(-time.Minute), delta, cli.id))
	rs.refusedWith(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "revoked by a delta CRL newer than the base", isA[*RevokedCertificateError])

	publish(base, crl(3, now.AddDate(0, 0, 30), nil, cli.id))
	rs.refusedWith(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "revoked by a CRL dated in the future, beside the current one", isA[*RevokedCertificateError])

	publish(crl(2, now.Add(-3*time.Hour), delta, cli.id), base)
	rs.admitted(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "listed by a delta CRL older than the base, which does not list it")

	publish(base)
	rs.admitted(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "the base alone")
}
