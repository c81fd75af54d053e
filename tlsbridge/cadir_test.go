package tlsbridge

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// TestInstallCA: install and uninstall by the API (seed 004's
// install_trusted_certificate / uninstall_trusted_certificate), in the
// ca.d layout, and a running PKI follows without a restart.
func TestInstallCA(t *testing.T) {
	home := t.TempDir()
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, "ca.d")
	general, ldap := newCA(t), newCA(t)
	caPEM := func(ca *testCA) []byte { b, _ := os.ReadFile(ca.caFile()); return b }
	crlPEM := func(ca *testCA) []byte { b, _ := os.ReadFile(ca.crlFile()); return b }

	got, err := InstallCA(dir, CAInstall{CA: caPEM(general)})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "example-org-ca" || got.File != filepath.Join(dir, "example-org-ca.pem") || got.CRLFile != "" {
		t.Errorf("installed %+v: want the name from the common name, no CRL", got)
	}
	if got, err = InstallCA(dir, CAInstall{CA: caPEM(ldap), CRL: crlPEM(ldap), Purpose: "ldap", Name: "corp"}); err != nil {
		t.Fatal(err)
	}
	if got.File != filepath.Join(dir, "ldap", "corp.pem") || got.CRLFile != filepath.Join(dir, "ldap", "corp.crl.pem") {
		t.Errorf("installed %+v", got)
	}
	// The same CA again is a no-op; another under the name is refused.
	if _, err := InstallCA(dir, CAInstall{CA: caPEM(ldap), Purpose: "ldap", Name: "corp"}); err != nil {
		t.Errorf("installing the same CA again: %v", err)
	}
	var exists *CAExistsError
	if _, err := InstallCA(dir, CAInstall{CA: caPEM(general), Purpose: "ldap", Name: "corp"}); !errors.As(err, &exists) {
		t.Errorf("another CA under a taken name: err = %v", err)
	}
	// A leaf is not a CA, a CRL must be the CA's, a purpose must be a name.
	leaf := ldap.issue(t, mustGenerate(t, jwk.EC256))
	var notCA *NotCAError
	if _, err := InstallCA(dir, CAInstall{CA: leaf.CertificatePEM()}); !errors.As(err, &notCA) {
		t.Errorf("a leaf installed as a CA: err = %v", err)
	}
	if _, err := InstallCA(dir, CAInstall{CA: caPEM(general), CRL: crlPEM(ldap), Name: "x"}); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("a CRL of another CA: err = %v", err)
	}
	// The errors about the input name it as the caller says it came.
	in := CAInstall{CA: caPEM(general), CRL: crlPEM(ldap), Name: "x", CAFrom: "general.pem", CRLFrom: "ldap.crl"}
	if _, err := InstallCA(dir, in); err == nil || err.Error() != "tlsbridge: ldap.crl: a CRL is not signed by any CA in general.pem" {
		t.Errorf("a CRL of another CA, from named files: err = %v", err)
	}
	in = CAInstall{CA: crlPEM(ldap), CAFrom: "ldap.crl"}
	if _, err := InstallCA(dir, in); err == nil || err.Error() != "tlsbridge: ldap.crl: holds no CERTIFICATE" {
		t.Errorf("a CRL given as the CA: err = %v", err)
	}
	in = CAInstall{CA: caPEM(general), CRL: caPEM(general), CRLFrom: "general.pem"}
	if _, err := InstallCA(dir, in); err == nil || err.Error() != "tlsbridge: general.pem: holds no X509 CRL" {
		t.Errorf("a CA given as the CRL: err = %v", err)
	}
	if _, err := InstallCA(dir, CAInstall{CA: caPEM(general), Purpose: "../etc"}); err == nil {
		t.Error("a purpose that is a path was accepted")
	}

	// A CRL left behind by a CA deleted by hand is not adopted by another.
	stale := filepath.Join(dir, "stale.crl.pem")
	if err := os.WriteFile(stale, crlPEM(ldap), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallCA(dir, CAInstall{CA: caPEM(general), Name: "stale"}); err == nil || !strings.Contains(err.Error(), "not a CRL of this CA") {
		t.Errorf("a stale CRL of another CA: err = %v", err)
	}
	if err := os.Remove(stale); err != nil {
		t.Fatal(err)
	}

	cas, err := ListCAs(dir, home)
	if err != nil || len(cas) != 2 || cas[0].Purpose != "" || cas[1].Purpose != "ldap" || len(cas[1].Certificates) != 1 {
		t.Fatalf("ListCAs = %+v, %v", cas, err)
	}

	// A running PKI follows installs and uninstalls.
	pki, err := LoadPKI(PKIOptions{Dir: dir, Home: home})
	if err != nil {
		t.Fatal(err)
	}
	id := ldap.issue(t, mustGenerate(t, jwk.EC256))
	chain := []*x509.Certificate{id.Certificate.Leaf}
	if v, err := pki.VerifyPurpose("ldap", chain, x509.ExtKeyUsageServerAuth, ""); err != nil || v.Name != "corp" || v.Purpose != "ldap" {
		t.Fatalf("VerifyPurpose = %+v, %v", v, err)
	}
	gone, err := UninstallCA(dir, home, ldap.cert.Subject.CommonName)
	var none *NoSuchCAError
	if !errors.As(err, &none) || gone != nil {
		t.Errorf("uninstall by a name no CA has: %v, %v", gone, err)
	}
	k, _ := jwk.NewPublicKey(ldap.cert.PublicKey)
	if gone, err = UninstallCA(dir, home, k.Fingerprint()); err != nil || len(gone) != 1 || gone[0].Name != "corp" {
		t.Fatalf("uninstall by fingerprint: %+v, %v", gone, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "ldap", "corp.crl.pem")); !os.IsNotExist(err) {
		t.Errorf("the CRL outlived its CA: %v", err)
	}
	pki.checkedAt.Store(0)
	var refused *CARefusedError
	if _, err := pki.VerifyPurpose("ldap", chain, x509.ExtKeyUsageServerAuth, ""); !errors.As(err, &refused) {
		t.Fatalf("after the ldap CA was uninstalled, the general CA must decide and refuse: %v", err)
	}
	if gone, err = UninstallCA(dir, home, "example-org-ca"); err != nil || len(gone) != 1 {
		t.Fatalf("uninstall by name: %+v, %v", gone, err)
	}
	pki.checkedAt.Store(0)
	var noCA *NoCAError
	if _, err := pki.VerifyPurpose("ldap", chain, x509.ExtKeyUsageServerAuth, ""); !errors.As(err, &noCA) {
		t.Fatalf("with no CA left: %v", err)
	}
}

// TestCADirStrictModes: an installed CA is a trust file like ca.pem — one
// others may write fails every CA decision, naming it — and a directory
// in ca.d that cannot be a purpose fails closed rather than letting the
// general CAs decide in its place.
func TestCADirStrictModes(t *testing.T) {
	home := t.TempDir()
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, "ca.d")
	ca := newCA(t)
	pemCA, _ := os.ReadFile(ca.caFile())
	got, err := InstallCA(dir, CAInstall{CA: pemCA, Purpose: "pool", Name: "pool"})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(got.File, 0o666); err != nil {
		t.Fatal(err)
	}
	var fileErr *PKIFileError
	var perm *trustfile.PermissionError
	if _, err := LoadPKI(PKIOptions{Dir: dir, Home: home}); !errors.As(err, &fileErr) || !errors.As(err, &perm) || fileErr.File != got.File {
		t.Fatalf("a CA file others may write: err = %v", err)
	}
	if err := os.Chmod(got.File, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "bad purpose"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPKI(PKIOptions{Dir: dir, Home: home}); !errors.As(err, &fileErr) || !strings.Contains(err.Error(), "bad purpose") {
		t.Fatalf("a directory that is not a purpose: err = %v", err)
	}
}

// A CA file whose name cannot be a CA's ("Corp CA.pem", copied in by hand)
// is an error, not skipped: its purpose would otherwise have no CA, and the
// general CAs would verify its connections in its place.
func TestCADirRefusesUnnamableCA(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "ca.d")
	ca := newCA(t)
	pemCA, _ := os.ReadFile(ca.caFile())
	if _, err := InstallCA(dir, CAInstall{CA: pemCA, Name: "general"}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "pool"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pool", "Corp CA.pem"), pemCA, 0o644); err != nil {
		t.Fatal(err)
	}
	var fileErr *PKIFileError
	if _, err := LoadPKI(PKIOptions{Dir: dir, Home: home}); !errors.As(err, &fileErr) || !strings.Contains(err.Error(), "Corp CA.pem") {
		t.Fatalf("a CA file whose name is not a CA name: err = %v", err)
	}
}

// TestInstallCAWritesOnlyTheCRL: of a CRL file that holds more than CRLs
// — the CA's private key beside them, text — InstallCA writes the CRLs
// alone into the public CRL file.
func TestInstallCAWritesOnlyTheCRL(t *testing.T) {
	home := t.TempDir()
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := newCA(t)
	caPEM, err := os.ReadFile(ca.caFile())
	if err != nil {
		t.Fatal(err)
	}
	crl, err := os.ReadFile(ca.crlFile())
	if err != nil {
		t.Fatal(err)
	}
	given := append([]byte("the CA's files\n-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"), crl...)
	got, err := InstallCA(filepath.Join(home, "ca.d"), CAInstall{CA: caPEM, CRL: given})
	if err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile(got.CRLFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(written), "PRIVATE KEY") || strings.Contains(string(written), "the CA's files") {
		t.Fatalf("%s holds more than the CRL:\n%s", got.CRLFile, written)
	}
	if _, err := parseCRLs(written, []*x509.Certificate{ca.cert}); err != nil {
		t.Errorf("%s: %v", got.CRLFile, err)
	}
}

// TestInstallCARefusedWhereTheRuleRefuses: InstallCA writes nothing into a
// CA directory that PKI mode would refuse to read: in a home another user
// owns (uid 65534 here) ca.d may be their link to another home's, where
// the CA would then be trusted — root running "keytool -H ~alice/.keytool
// ca add" for her installed it in the home the link named (found by
// review). Once the home is the admin's, the link is written through.
func TestInstallCARefusedWhereTheRuleRefuses(t *testing.T) {
	base := t.TempDir()
	server := filepath.Join(base, "server", "ca.d")
	home := filepath.Join(base, "alice")
	for _, d := range []string{server, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(home, "ca.d")
	if err := os.Symlink(server, dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	ca := newCA(t)
	caPEM, err := os.ReadFile(ca.caFile())
	if err != nil {
		t.Fatal(err)
	}
	// The top holds the server's home too (outside it, the link's target
	// is checked up to /, and the test's /tmp would fail that on its own):
	// the one fault is the home's owner.
	in := CAInstall{CA: caPEM, Top: base}
	var pe *trustfile.PermissionError
	if _, err := InstallCA(dir, in); !errors.As(err, &pe) || pe.Path != home {
		t.Fatalf("InstallCA: %v; want a *trustfile.PermissionError naming %s", err, home)
	}
	if des, _ := os.ReadDir(server); len(des) > 0 {
		t.Fatalf("written through the link: %v", des)
	}
	if err := os.Chown(home, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallCA(dir, in); err != nil {
		t.Fatalf("InstallCA in the admin's home: %v", err)
	}
	if des, _ := os.ReadDir(server); len(des) != 1 {
		t.Fatalf("InstallCA in the admin's home wrote %v", des)
	}
}

// TestInstallCARefusesAnOlderCRL: installing a CA again with a CRL older
// than the one installed for the same issuer (a lower CRL number; a
// stale file, an old playbook run again) is an *OlderCRLError, and the
// newer CRL stays: replaced, it would admit again what it revokes (found
// by review, 2026-12-05). The same CRL again, or a newer one, is taken.
func TestInstallCARefusesAnOlderCRL(t *testing.T) {
	home := t.TempDir()
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(home, "ca.d")
	ca := newCA(t)
	caPEM, err := os.ReadFile(ca.caFile())
	if err != nil {
		t.Fatal(err)
	}
	older, err := os.ReadFile(ca.crlFile())
	if err != nil {
		t.Fatal(err)
	}
	ca.writeCRL(t, ca.issue(t, mustGenerate(t, jwk.EC256))) // a higher number, revoking one
	newer, err := os.ReadFile(ca.crlFile())
	if err != nil {
		t.Fatal(err)
	}
	got, err := InstallCA(dir, CAInstall{CA: caPEM, CRL: newer, Name: "corp"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = InstallCA(dir, CAInstall{CA: caPEM, CRL: older, Name: "corp"})
	var oe *OlderCRLError
	if !errors.As(err, &oe) || oe.File != got.CRLFile || oe.Given.Number.Cmp(oe.Installed.Number) >= 0 {
		t.Fatalf("an older CRL: %v, want *OlderCRLError naming %s", err, got.CRLFile)
	}
	for _, want := range []string{got.CRLFile, oe.Given.Number.String(), oe.Installed.Number.String(), "Example Org CA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the message does not name %q: %v", want, err)
		}
	}
	written, err := os.ReadFile(got.CRLFile)
	if err != nil {
		t.Fatal(err)
	}
	if crls, err := parseCRLs(written, []*x509.Certificate{ca.cert}); err != nil || crls[0].Number.Cmp(oe.Installed.Number) != 0 {
		t.Errorf("the installed CRL changed: %v", err)
	}
	if _, err := InstallCA(dir, CAInstall{CA: caPEM, CRL: newer, Name: "corp"}); err != nil {
		t.Errorf("the same CRL again: %v", err)
	}
	ca.writeCRL(t)
	newest, err := os.ReadFile(ca.crlFile())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := InstallCA(dir, CAInstall{CA: caPEM, CRL: newest, Name: "corp"}); err != nil {
		t.Errorf("a newer CRL: %v", err)
	}
}
