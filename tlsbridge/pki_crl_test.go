package tlsbridge

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// A CRL file may hold several CRLs of one CA (concatenated by a script,
// an old one left at the top): the newest decides, so that a revocation
// only the newer one lists is not ignored.
func TestNewestCRLDecides(t *testing.T) {
	ca := newCA(t)
	cli := newHome(t, jwk.EC256)
	id := ca.issue(t, cli.id.Key)
	crl := func(this time.Time, number int64, revoked ...*Identity) []byte {
		var entries []x509.RevocationListEntry
		for _, r := range revoked {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: r.Certificate.Leaf.SerialNumber, RevocationTime: this})
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: this,
			NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: entries}, ca.cert, ca.key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	old := crl(time.Now().Add(-2*time.Hour), 1)
	newer := crl(time.Now().Add(-time.Minute), 2, id)
	if err := os.WriteFile(ca.crlFile(), append(old, newer...), 0o644); err != nil {
		t.Fatal(err)
	}
	p := ca.pki(t)
	var revoked *RevokedCertificateError
	if err := p.Verify([]*x509.Certificate{id.Certificate.Leaf}, x509.ExtKeyUsageClientAuth, ""); !errors.As(err, &revoked) {
		t.Fatalf("a certificate the newer CRL revokes: %v, want *RevokedCertificateError", err)
	}
}
