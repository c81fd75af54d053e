package tlsbridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// computedPKI is p as it was before its index: the same decisions, with
// the signatures between its CAs and of its CRLs checked at each call
// (caIndex: a nil map computes). It never re-reads the files.
func computedPKI(p *PKI) *PKI {
	st := *p.current()
	ix := *st.index
	ix.issuers, ix.crls, ix.crlsByKey = nil, nil, nil
	st.index = &ix
	st.verified = newVerifiedCache(st.all) // p's own would answer for it
	out := &PKI{opts: p.opts}
	out.state.Store(&st)
	out.checkedAt.Store(math.MaxInt64) // never due: nothing re-read
	return out
}

// junkChain is a leaf and one junk CA certificate naming each of cas as
// its issuer, each signed by the leaf's own key: the leaf's issuer
// subject and key are the junk's, so crypto/x509 checks the leaf against
// every junk certificate (and each passes), then each junk certificate
// against the CA it names (and each fails).
func junkChain(t testing.TB, cas []*testCA) []*x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(tmpl, parent *x509.Certificate) *x509.Certificate {
		pkiSerial++
		tmpl.SerialNumber = big.NewInt(pkiSerial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	x := pkix.Name{CommonName: "Junk X"}
	chain := []*x509.Certificate{mk(&x509.Certificate{Subject: pkix.Name{CommonName: "client"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, &x509.Certificate{Subject: x})}
	for _, ca := range cas {
		chain = append(chain, mk(&x509.Certificate{Subject: x, BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign},
			&x509.Certificate{Subject: ca.cert.Subject}))
	}
	return chain
}

// installNamed installs n CAs of subjects of their own in a new ca.d,
// general, and returns them with the PKI of that directory.
func installNamed(t testing.TB, n int) ([]*testCA, *PKI) {
	t.Helper()
	dir := filepath.Join(pkiDir(t), "ca.d")
	cas := make([]*testCA, n)
	for i := range cas {
		cas[i] = newNamedCA(t, fmt.Sprintf("Org %d CA", i))
		if _, err := InstallCA(dir, CAInstall{CA: pkiPEM(&pkiCert{cas[i].cert, cas[i].key}), Name: fmt.Sprintf("ca%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := LoadPKI(PKIOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return cas, p
}

// A peer's junk naming every CA of ca.d made every CA's set run
// crypto/x509's Verify, each spending signature checks on the junk
// (docs/design.md, "Chains and their CRLs"). A set is now asked only if
// one of its CAs really signed a certificate of the chain: none for the
// junk, both roots for an intermediate each cross-signed — and the
// verdicts are those of before.
func TestJunkNamingEveryCAAsksNoSet(t *testing.T) {
	cas, p := installNamed(t, 12)
	junk := junkChain(t, cas[:MaxPeerChain-1])
	st := p.current()
	if got := st.index.mayAnchor("", st.tiers[""], junk); len(got) != 0 {
		t.Errorf("junk naming %d CAs: %d sets asked to verify it, want none", len(junk)-1, len(got))
	}
	if err := p.Verify(junk, x509.ExtKeyUsageClientAuth, ""); !isA[*CARefusedError](err) || !isA[x509.UnknownAuthorityError](err) {
		t.Errorf("junk: err = %v, want *CARefusedError wrapping x509.UnknownAuthorityError", err)
	}

	// X, one key, signed by CA 3 and by CA 7; the leaf signed by X. Both
	// sets may anchor it, in load order, beside junk naming the others.
	xKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cross := func(ca *testCA) *x509.Certificate {
		pkiSerial++
		der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(pkiSerial), Subject: pkix.Name{CommonName: "Cross X"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, IsCA: true,
			KeyUsage: x509.KeyUsageCertSign}, ca.cert, xKey.Public(), ca.key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c
	}
	x7, x3 := cross(cas[7]), cross(cas[3])
	leaf := pkiIssue(t, "client", false, &pkiCert{x3, xKey})
	chain := append([]*x509.Certificate{leaf.cert, x7, x3}, junk[1:MaxPeerChain-2]...)
	got := st.index.mayAnchor("", st.tiers[""], chain)
	if len(got) != 2 || got[0].name != "ca03" || got[1].name != "ca07" {
		var names []string
		for _, s := range got {
			names = append(names, s.name)
		}
		t.Errorf("an intermediate cross-signed by CA 3 and CA 7, and junk: sets %v, want [ca03 ca07]", names)
	}
	if err := p.Verify(chain, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("cross-signed: %v", err)
	}
	if err := p.Verify([]*x509.Certificate{cas[5].issue(t, mustGenerate(t, jwk.EC256)).Certificate.Leaf}, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("a leaf of CA 5: %v", err)
	}
}

// The index only spares signature checks: with it and without it (the
// checks made at each call), every fixture of the chain tests gets the
// same verdict.
func TestIndexDecidesAsComputed(t *testing.T) {
	type check struct {
		name    string
		p       *PKI
		purpose string
		chain   []*x509.Certificate
	}
	var checks []check
	for _, revoke := range []bool{true, false} {
		f := newChainFixture(t, revoke)
		chains := map[string][]*x509.Certificate{"leaf": {f.leaf.cert}, "leaf+inter": {f.leaf.cert, f.inter.cert}}
		for layout, p := range f.layouts(t) {
			for what, ch := range chains {
				checks = append(checks, check{fmt.Sprintf("revoke=%v %s %s", revoke, layout, what), p, "", ch})
			}
		}
		for layout, p := range f.tierLayouts(t) {
			for what, ch := range chains {
				checks = append(checks, check{fmt.Sprintf("revoke=%v %s %s", revoke, layout, what), p, "ldap", ch})
			}
		}
	}
	var admitted, revoked int
	for _, c := range checks {
		_, want := c.p.VerifyPurpose(c.purpose, c.chain, x509.ExtKeyUsageClientAuth, "")
		_, got := computedPKI(c.p).VerifyPurpose(c.purpose, c.chain, x509.ExtKeyUsageClientAuth, "")
		if (want == nil) != (got == nil) || want != nil && want.Error() != got.Error() {
			t.Errorf("%s: indexed %v, computed %v", c.name, want, got)
		}
		if want == nil {
			admitted++
		} else if isA[*RevokedCertificateError](want) {
			revoked++
		}
	}
	if admitted == 0 || revoked == 0 {
		t.Errorf("%d admitted, %d revoked: the fixtures should give both", admitted, revoked)
	}
}
