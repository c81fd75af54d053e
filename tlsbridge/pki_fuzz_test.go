package tlsbridge

import (
	"crypto/x509"
	"os"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// FuzzParsePKI: CA and CRL bytes given in memory (libvirt's AddCertData)
// or to InstallCA never panic, and a PKI that loads verifies without
// panicking.
func FuzzParsePKI(f *testing.F) {
	ca := newCA(f)
	caPEM, _ := os.ReadFile(ca.caFile())
	crlPEM, _ := os.ReadFile(ca.crlFile())
	f.Add(caPEM, crlPEM)
	f.Add(caPEM, []byte(nil))
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), []byte("\x30\x00"))
	leaf := ca.issue(f, mustGenerate(f, jwk.EC256)).Certificate.Leaf
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, caData, crlData []byte) {
		if p, err := ParsePKI(caData, crlData); err == nil {
			_, _ = p.VerifyPurpose("ldap", []*x509.Certificate{leaf}, x509.ExtKeyUsageServerAuth, "")
		}
		if got, err := InstallCA(dir, CAInstall{CA: caData, CRL: crlData, Name: "fuzz"}); err == nil {
			if _, err := UninstallCA(dir, "", got.Name); err != nil {
				t.Fatal(err)
			}
		}
	})
}
