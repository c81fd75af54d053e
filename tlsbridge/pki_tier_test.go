package tlsbridge

// A CA installed for one purpose is the only kind that admits a
// connection of that purpose, but it does not stand outside the CAs the
// server knows of: a revocation — a CRL of its root installed as a
// general CA or for another purpose, the root's key in revoked_keys.d —
// applies through it (docs/design.md, "Purposes" and "Chains and their
// CRLs").

import (
	"crypto/x509"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// tierLayouts installs the fixture's intermediate for purpose "ldap"
// (ca.d/ldap/issuing.pem with its CRL) and its root elsewhere, with the
// root's CRL: as the general bundle (ca.pem, crl.pem), as a general CA of
// ca.d, as a CA for purpose "pool", and as ca.pem beside an ldap chain
// file holding the root too (without the root's CRL: it needs none).
func (f *pkiChainFixture) tierLayouts(t *testing.T) map[string]*PKI {
	t.Helper()
	out := map[string]*PKI{}
	install := func(dir string, in CAInstall) {
		t.Helper()
		if _, err := InstallCA(dir, in); err != nil {
			t.Fatal(err)
		}
	}
	load := func(name string, opts PKIOptions) {
		t.Helper()
		p, err := LoadPKI(opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = p
	}

	home := pkiDir(t)
	pkiWrite(t, filepath.Join(home, "ca.pem"), pkiPEM(f.root))
	pkiWrite(t, filepath.Join(home, "crl.pem"), f.rootCRL)
	install(filepath.Join(home, "ca.d"), CAInstall{CA: pkiPEM(f.inter), CRL: f.interCRL, Purpose: "ldap", Name: "issuing"})
	load("root in ca.pem", PKIOptions{CA: filepath.Join(home, "ca.pem"), CRL: filepath.Join(home, "crl.pem"), Dir: filepath.Join(home, "ca.d"), Home: home})

	for name, purpose := range map[string]string{"root a general CA of ca.d": "", "root a CA for pool": "pool"} {
		dir := filepath.Join(pkiDir(t), "ca.d")
		install(dir, CAInstall{CA: pkiPEM(f.root), CRL: f.rootCRL, Purpose: purpose, Name: "root"})
		install(dir, CAInstall{CA: pkiPEM(f.inter), CRL: f.interCRL, Purpose: "ldap", Name: "issuing"})
		load(name, PKIOptions{Dir: dir})
	}

	home = pkiDir(t)
	pkiWrite(t, filepath.Join(home, "ca.pem"), pkiPEM(f.root))
	pkiWrite(t, filepath.Join(home, "crl.pem"), f.rootCRL)
	install(filepath.Join(home, "ca.d"), CAInstall{CA: pkiPEM(f.root, f.inter), CRL: f.interCRL, Purpose: "ldap", Name: "chain"})
	load("root in ca.pem and in the ldap chain file", PKIOptions{CA: filepath.Join(home, "ca.pem"), CRL: filepath.Join(home, "crl.pem"), Dir: filepath.Join(home, "ca.d"), Home: home})
	return out
}

// The root's CRL revokes the intermediate, which is installed for ldap
// while the root is not (or is, without its CRL): a connection of
// purpose ldap was decided by the ldap tier alone, which held no CRL of
// the root, and the revoked intermediate admitted (found by review).
func TestPurposeTierHeedsRevocationsElsewhere(t *testing.T) {
	chains := func(f *pkiChainFixture) map[string][]*x509.Certificate {
		return map[string][]*x509.Certificate{"leaf alone": {f.leaf.cert}, "leaf and intermediate": {f.leaf.cert, f.inter.cert}}
	}
	f := newChainFixture(t, true)
	for name, p := range f.tierLayouts(t) {
		for what, chain := range chains(f) {
			_, err := p.VerifyPurpose("ldap", chain, x509.ExtKeyUsageClientAuth, "")
			var rev *RevokedCertificateError
			if !errors.As(err, &rev) || !strings.Contains(rev.Subject, "Org Issuing CA") {
				t.Errorf("%s, %s: err = %v, want *RevokedCertificateError for the intermediate", name, what, err)
			}
		}
	}
	clean := newChainFixture(t, false)
	for name, p := range clean.tierLayouts(t) {
		for what, chain := range chains(clean) {
			v, err := p.VerifyPurpose("ldap", chain, x509.ExtKeyUsageClientAuth, "")
			if err != nil {
				t.Errorf("control: %s, %s, nothing revoked: %v", name, what, err)
				continue
			}
			if v.Purpose != "ldap" {
				t.Errorf("control: %s, %s: verified by purpose %q, want ldap", name, what, v.Purpose)
			}
		}
		// The root still admits nothing of ldap's by itself.
		leaf := pkiIssue(t, "client", false, clean.root)
		if _, err := p.VerifyPurpose("ldap", []*x509.Certificate{leaf.cert}, x509.ExtKeyUsageClientAuth, ""); !isA[*CARefusedError](err) {
			t.Errorf("%s: a leaf of the root, for ldap: err = %v, want *CARefusedError", name, err)
		}
	}
}

// The root's key is in revoked_keys.d and the root is a general CA; the
// intermediate it signed is installed for ldap. revokedInChain looked at
// chains completed within the ldap tier, which ended at the intermediate.
func TestPurposeTierHeedsRevokedRootKey(t *testing.T) {
	f := newChainFixture(t, false)
	home := pkiDir(t)
	pkiWrite(t, filepath.Join(home, "ca.pem"), pkiPEM(f.root))
	if _, err := InstallCA(filepath.Join(home, "ca.d"), CAInstall{CA: pkiPEM(f.inter), Purpose: "ldap", Name: "issuing"}); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPKI(PKIOptions{CA: filepath.Join(home, "ca.pem"), Dir: filepath.Join(home, "ca.d"), Home: home})
	if err != nil {
		t.Fatal(err)
	}
	rootSum, err := caKeySum(f.root.cert)
	if err != nil {
		t.Fatal(err)
	}
	for what, chain := range map[string][]*x509.Certificate{"leaf alone": {f.leaf.cert}, "leaf and intermediate": {f.leaf.cert, f.inter.cert}} {
		v, err := p.VerifyPurpose("ldap", chain, x509.ExtKeyUsageClientAuth, "")
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		err = revokedInChain(v, func(sum [32]byte) (bool, error) { return sum == rootSum, errors.New("revoked") })
		var rev *RevokedCAKeyError
		if !errors.As(err, &rev) || rev.CA != f.root.cert.Subject.String() {
			t.Errorf("%s: err = %v, want *RevokedCAKeyError for the root", what, err)
		}
		if err := revokedInChain(v, func([32]byte) (bool, error) { return false, nil }); err != nil {
			t.Errorf("control: %s, no key revoked: %v", what, err)
		}
	}
}
