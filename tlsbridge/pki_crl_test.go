package tlsbridge

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"strings"
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

// A CRL past its NextUpdate, or replaced while running by one another CA
// signed, vouches for nobody: the CA's decision fails — final on the
// client under every policy (no question, no pin) — until a current CRL
// of the CA is back.
func TestStaleOrForeignCRLFailsClosed(t *testing.T) {
	ca := newCA(t)
	cli, srv := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv.id = ca.issue(t, srv.id.Key)
	srv.authorize(t, "client", cli.id.Key)
	ts := startServer(t, srv, ServerOptions{})
	pki := ca.pki(t)
	write := func(data []byte) {
		t.Helper()
		writeFile(t, ca.crlFile(), data, 0o644)
		future := time.Now().Add(time.Duration(len(data)) * time.Minute)
		_ = os.Chtimes(ca.crlFile(), future, future)
		pki.checkedAt.Store(0)
	}
	signedBy := func(issuer *testCA, next time.Time) []byte {
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()),
			ThisUpdate: next.Add(-2 * time.Hour), NextUpdate: next}, issuer.cert, issuer.key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	asked := PromptFunc(func(UnknownHost) (Answer, error) { t.Error("asked"); return Yes, nil })
	try := func() error {
		t.Helper()
		for _, opts := range []ClientOptions{{PKI: pki, Policy: AcceptNew}, {PKI: pki, Policy: Ask, Prompt: asked}, {PKI: pki, Policy: Insecure}} {
			if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, opts), ts.addr())); err != nil {
				return err
			}
		}
		return nil
	}
	if err := try(); err != nil {
		t.Fatalf("control: %v", err)
	}
	write(signedBy(ca, time.Now().Add(-time.Minute)))
	var refused *CARefusedError
	if err := try(); !errors.As(err, &refused) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a CRL past its NextUpdate: %v, want *CARefusedError saying it expired", err)
	}
	write(signedBy(newNamedCA(t, ca.cert.Subject.CommonName), time.Now().Add(time.Hour)))
	var fileErr *PKIFileError
	if err := try(); !errors.As(err, &fileErr) || fileErr.File != ca.crlFile() {
		t.Errorf("a CRL another CA of the same name signed: %v, want *PKIFileError naming %s", err, ca.crlFile())
	}
	if files := pinFiles(t, cli); len(files) != 0 {
		t.Errorf("pinned %v", files)
	}
	write(signedBy(ca, time.Now().Add(time.Hour)))
	if err := try(); err != nil {
		t.Errorf("a current CRL again: %v", err)
	}
}
