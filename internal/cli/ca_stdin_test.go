package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/trustfile"
)

// ca add - reads standard input bounded as trust files are: more than
// trustfile.MaxSize is refused, not cut there silently — a CA's file cut
// short installs what came before the cut (a CRL file so cut: its older
// CRLs, without the newest).
func TestCAAddRefusesOversizedStandardInput(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	cert, _ := newTestCA(t)
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	oversized := ca + strings.Repeat("\n", trustfile.MaxSize+1-len(ca))
	_, errOut, code := runKeytool(t, oversized, "-H", home, "ca", "add", "-")
	if code != 1 || !strings.Contains(errOut, "standard input") || !strings.Contains(errOut, "64 MiB") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("ca add - with MaxSize+1 bytes: exit %d, %q; want 1 and one line naming standard input and the limit", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(home, "ca.d")); err == nil {
		t.Errorf("ca add - with MaxSize+1 bytes installed something")
	}
	if _, errOut, code := runKeytool(t, oversized[:trustfile.MaxSize], "-H", home, "ca", "add", "-"); code != 0 {
		t.Errorf("control: ca add - with MaxSize bytes: exit %d, %q", code, errOut)
	}
}

// ca list shows the next update of the CRLs PKI mode may use: a CRL dated
// a year ahead (a CA's wrong clock), which PKI mode does not use, does not
// make the CA's CRL look current until then.
func TestCAListLeavesOutFutureDatedCRL(t *testing.T) {
	cert, key := newTestCA(t)
	now := time.Now().Truncate(time.Second)
	var crls []byte
	for _, this := range []time.Time{now.Add(-time.Minute), now.AddDate(1, 0, 0)} {
		crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(this.Unix()), ThisUpdate: this, NextUpdate: this.Add(time.Hour)}, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		crls = append(crls, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl})...)
	}
	file := filepath.Join(t.TempDir(), "crl.pem")
	if err := os.WriteFile(file, crls, 0o644); err != nil {
		t.Fatal(err)
	}
	next := crlNextUpdates(file, []*x509.Certificate{cert})
	if got, want := next[string(cert.RawSubject)], now.Add(-time.Minute).Add(time.Hour); !got.Equal(want) {
		t.Errorf("the CRL's next update: %v, want %v (the current CRL's, not the future one's)", got, want)
	}
}

// newTestCA makes a self-signed CA certificate, "Test CA", and its key.
func newTestCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
