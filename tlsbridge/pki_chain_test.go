package tlsbridge

// PKI mode against chains cut short, damaged or concatenated CRL files and
// CRLs that would vouch for ever (docs/design.md, "Chains and their CRLs").

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

type pkiCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var pkiSerial int64 = 1000

// pkiIssue makes a certificate; parent nil: self-signed.
func pkiIssue(t testing.TB, cn string, isCA bool, parent *pkiCert, dns ...string) *pkiCert {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pkiSerial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(pkiSerial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: dns,
		BasicConstraintsValid: true, IsCA: isCA}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	pc, pk := tmpl, key
	if parent != nil {
		pc, pk = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, pc, key.Public(), pk)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &pkiCert{c, key}
}

func pkiPEM(cs ...*pkiCert) []byte {
	var out []byte
	for _, c := range cs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.cert.Raw})...)
	}
	return out
}

func pkiCRL(t testing.TB, issuer *pkiCert, this, next time.Time, revoked ...*pkiCert) []byte {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, r := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: r.cert.SerialNumber, RevocationTime: this})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(this.UnixNano()),
		ThisUpdate: this, NextUpdate: next, RevokedCertificateEntries: entries}, issuer.cert, issuer.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func pkiWrite(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func pkiDir(t testing.TB) string {
	d := t.TempDir()
	_ = os.Chmod(d, 0o700)
	return d
}

// pkiChainFixture is a root, an intermediate it signed and a leaf the
// intermediate signed, with CRLs of both: the root's (revoking the
// intermediate if revoke) and the intermediate's (empty).
type pkiChainFixture struct {
	root, inter, leaf *pkiCert
	rootCRL, interCRL []byte
}

func newChainFixture(t testing.TB, revoke bool) *pkiChainFixture {
	f := &pkiChainFixture{root: pkiIssue(t, "Org Root", true, nil)}
	f.inter = pkiIssue(t, "Org Issuing CA", true, f.root)
	f.leaf = pkiIssue(t, "client", false, f.inter)
	now := time.Now()
	var revoked []*pkiCert
	if revoke {
		revoked = append(revoked, f.inter)
	}
	f.rootCRL = pkiCRL(t, f.root, now.Add(-time.Minute), now.Add(time.Hour), revoked...)
	f.interCRL = pkiCRL(t, f.inter, now.Add(-time.Minute), now.Add(time.Hour))
	return f
}

// layouts installs the fixture in each way an operator may: a bundle
// (ca.pem and crl.pem, as a chain file), ca.d with the root and the
// intermediate installed apart, and ca.d with the chain file installed as
// one CA (`keytool ca add chain.pem --crl crls.pem`).
func (f *pkiChainFixture) layouts(t *testing.T) map[string]*PKI {
	out := map[string]*PKI{}
	home := pkiDir(t)
	pkiWrite(t, filepath.Join(home, "ca.pem"), pkiPEM(f.root, f.inter))
	pkiWrite(t, filepath.Join(home, "crl.pem"), append(append([]byte{}, f.rootCRL...), f.interCRL...))
	p, err := LoadPKI(PKIOptions{CA: filepath.Join(home, "ca.pem"), CRL: filepath.Join(home, "crl.pem"), Home: home})
	if err != nil {
		t.Fatal(err)
	}
	out["ca.pem"] = p

	apart := filepath.Join(pkiDir(t), "ca.d")
	if _, err := InstallCA(apart, CAInstall{CA: pkiPEM(f.root), CRL: f.rootCRL, Name: "root"}); err != nil {
		t.Fatal(err)
	}
	if _, err := InstallCA(apart, CAInstall{CA: pkiPEM(f.inter), CRL: f.interCRL, Name: "issuing"}); err != nil {
		t.Fatal(err)
	}
	if out["ca.d, installed apart"], err = LoadPKI(PKIOptions{Dir: apart}); err != nil {
		t.Fatal(err)
	}

	chain := filepath.Join(pkiDir(t), "ca.d")
	if _, err := InstallCA(chain, CAInstall{CA: pkiPEM(f.root, f.inter), CRL: append(append([]byte{}, f.rootCRL...), f.interCRL...), Name: "chain"}); err != nil {
		t.Fatal(err)
	}
	if out["ca.d, a chain file"], err = LoadPKI(PKIOptions{Dir: chain}); err != nil {
		t.Fatal(err)
	}
	return out
}

// An intermediate CA held beside its root (a chain file) is an anchor to
// crypto/x509: a leaf sent alone verifies as [leaf, intermediate], and the
// root's CRL revoking the intermediate was asked only when the peer chose
// to send it (found by review). Each chain is now completed up to its
// self-signed root, whatever the peer sends, in every layout.
func TestRevokedIntermediateNotSentStillRefused(t *testing.T) {
	f := newChainFixture(t, true)
	for name, p := range f.layouts(t) {
		for what, chain := range map[string][]*x509.Certificate{"leaf alone": {f.leaf.cert}, "leaf and intermediate": {f.leaf.cert, f.inter.cert}} {
			err := p.Verify(chain, x509.ExtKeyUsageClientAuth, "")
			var rev *RevokedCertificateError
			if !errors.As(err, &rev) || !strings.Contains(rev.Subject, "Org Issuing CA") {
				t.Errorf("%s, %s: err = %v, want *RevokedCertificateError for the intermediate", name, what, err)
			}
		}
	}
	clean := newChainFixture(t, false)
	for name, p := range clean.layouts(t) {
		for what, chain := range map[string][]*x509.Certificate{"leaf alone": {clean.leaf.cert}, "leaf and intermediate": {clean.leaf.cert, clean.inter.cert}} {
			if err := p.Verify(chain, x509.ExtKeyUsageClientAuth, ""); err != nil {
				t.Errorf("control: %s, %s, nothing revoked: %v", name, what, err)
			}
		}
	}
}

// A CRL of the root that is there but cannot be used (a critical
// extension PKI mode does not process) refuses the intermediate below it:
// before, a CA's unusable CRL counted as no CRL, and only the leaf's
// issuer needed one. A root with no CRL at all still needs none.
func TestUnusableCRLOfARootRefuses(t *testing.T) {
	f := newChainFixture(t, false)
	now := time.Now()
	baseNumber, _ := asn1.Marshal(1)
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(2), ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: baseNumber}}}, f.root.cert, f.root.key) // a delta CRL
	if err != nil {
		t.Fatal(err)
	}
	delta := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	p, err := ParsePKI(pkiPEM(f.root, f.inter), append(append([]byte{}, delta...), f.interCRL...))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Verify([]*x509.Certificate{f.leaf.cert}, x509.ExtKeyUsageClientAuth, "")
	var ref *CARefusedError
	var unusable *CRLUnusableError
	if !errors.As(err, &ref) || !errors.As(err, &unusable) || !strings.Contains(unusable.Issuer, "Org Root") || !strings.Contains(unusable.Subject, "Org Issuing CA") {
		t.Errorf("the root's only CRL a delta CRL: err = %v, want *CARefusedError wrapping *CRLUnusableError for the root", err)
	}
	p, err = ParsePKI(pkiPEM(f.root, f.inter), f.interCRL)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify([]*x509.Certificate{f.leaf.cert}, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("control: no CRL of the root at all: %v", err)
	}
}

// The same cut chain hid a revoked root key (revoked_keys.d):
// revokedInChain looked at the CAs of the first chain, which ended at the
// intermediate the bundle holds, whether or not the peer sent it.
func TestRevokedRootKeyBehindBundledIntermediate(t *testing.T) {
	f := newChainFixture(t, false)
	p, err := ParsePKI(pkiPEM(f.root, f.inter), nil)
	if err != nil {
		t.Fatal(err)
	}
	rootSum, err := caKeySum(f.root.cert)
	if err != nil {
		t.Fatal(err)
	}
	revoked := func(sum [32]byte) (bool, error) { return sum == rootSum, errors.New("revoked") }
	for name, chain := range map[string][]*x509.Certificate{"leaf alone": {f.leaf.cert}, "leaf and intermediate": {f.leaf.cert, f.inter.cert}} {
		v, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, "")
		if err != nil {
			t.Fatal(err)
		}
		err = revokedInChain(v, revoked)
		var rev *RevokedCAKeyError
		if !errors.As(err, &rev) || rev.CA != f.root.cert.Subject.String() {
			t.Errorf("%s: err = %v, want *RevokedCAKeyError for the root", name, err)
		}
	}
}

// End to end: a server with the root and the intermediate in ca.pem
// refuses a client whose certificate the intermediate issued, which the
// root's CRL revokes, whether the client sends its leaf alone or its
// chain; before, the leaf alone was admitted (via=ca).
func TestRevokedIntermediateNotSentHandshake(t *testing.T) {
	for _, revoke := range []bool{true, false} {
		f := newChainFixture(t, revoke)
		dir := pkiDir(t)
		pkiWrite(t, filepath.Join(dir, "ca.pem"), pkiPEM(f.root, f.inter))
		pkiWrite(t, filepath.Join(dir, "crl.pem"), append(append([]byte{}, f.rootCRL...), f.interCRL...))
		p, err := LoadPKI(PKIOptions{CA: filepath.Join(dir, "ca.pem"), CRL: filepath.Join(dir, "crl.pem"), Home: dir})
		if err != nil {
			t.Fatal(err)
		}
		srv := newHome(t, jwk.EC256)
		rs := startRecording(t, mustServer(t, srv, ServerOptions{PKI: p}))
		for _, withInter := range []bool{true, false} {
			cli := newHome(t, jwk.EC256)
			pkiSerial++
			der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(pkiSerial), Subject: pkix.Name{CommonName: "client"},
				NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, f.inter.cert, cli.id.Key.Public(), f.inter.key)
			if err != nil {
				t.Fatal(err)
			}
			chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
			what := "the leaf alone"
			if withInter {
				chain, what = append(chain, pkiPEM(f.inter)...), "the leaf and the intermediate"
			}
			if cli.id, err = NewIdentityWithChain(cli.id.Key, "cert.pem", chain); err != nil {
				t.Fatal(err)
			}
			cli.pin(t, rs.addr(), srv.id.Key)
			cfg := mustConfig(t, cli.client(t, ClientOptions{}), rs.addr())
			if revoke {
				rs.refusedWith(t, cfg, what+", the intermediate revoked", isA[*RevokedCertificateError])
			} else {
				rs.admitted(t, cfg, what+", nothing revoked")
			}
		}
	}
}

// A CRL file whose newest CRL is damaged (a copy cut short, a corrupted
// line) loaded: pem.Decode skips the block, and the older CRL decided,
// ignoring the revocations only the newer lists (found by review). Every
// block must decode: the file is refused, naming it and the block.
func TestDamagedCRLBlockFailsClosed(t *testing.T) {
	ca := pkiIssue(t, "Org CA", true, nil)
	now := time.Now()
	old := pkiCRL(t, ca, now.Add(-2*time.Hour), now.Add(time.Hour))
	newer := string(pkiCRL(t, ca, now.Add(-time.Minute), now.Add(time.Hour)))
	lines := strings.Split(newer, "\n")
	for name, damaged := range map[string]string{
		"cut short":        strings.Join(lines[:len(lines)/2], "\n"),
		"a corrupted line": strings.Replace(newer, lines[2], "!!!!"+lines[2][4:], 1),
		"no END line":      strings.Replace(newer, "-----END X509 CRL-----", "", 1),
	} {
		home := pkiDir(t)
		crlFile := filepath.Join(home, "crl.pem")
		pkiWrite(t, filepath.Join(home, "ca.pem"), pkiPEM(ca))
		pkiWrite(t, crlFile, append(append([]byte{}, old...), damaged...))
		_, err := LoadPKI(PKIOptions{CA: filepath.Join(home, "ca.pem"), CRL: crlFile, Home: home})
		var fe *PKIFileError
		if !errors.As(err, &fe) || fe.File != crlFile || !strings.Contains(err.Error(), "PEM block 2 cannot be read") || strings.Contains(err.Error(), "\n") {
			t.Errorf("newest CRL %s: err = %v, want one line *PKIFileError naming %s and PEM block 2", name, err, crlFile)
		}
		if _, err := InstallCA(filepath.Join(home, "ca.d"), CAInstall{CA: pkiPEM(ca), CRL: append(append([]byte{}, old...), damaged...), CRLFrom: "crls.pem"}); err == nil || !strings.Contains(err.Error(), "crls.pem") {
			t.Errorf("newest CRL %s: InstallCA: %v, want an error naming crls.pem", name, err)
		}
	}
	// A damaged block of another type fails too: nothing is skipped.
	_, err := ParsePKI(pkiPEM(ca), append(append([]byte{}, old...), "-----BEGIN JUNK-----\n!!\n"...))
	if err == nil || !strings.Contains(err.Error(), "PEM block 2") {
		t.Errorf("a damaged second block of another type: %v", err)
	}
}

// Two DER CRLs concatenated (cat old.crl new.crl > crl.der): the first
// alone was read, the rest ignored as trailing bytes. Refused, naming the
// file.
func TestConcatenatedDERCRLsFailClosed(t *testing.T) {
	ca := pkiIssue(t, "Org CA", true, nil)
	now := time.Now()
	old, _ := pem.Decode(pkiCRL(t, ca, now.Add(-2*time.Hour), now.Add(time.Hour)))
	newer, _ := pem.Decode(pkiCRL(t, ca, now.Add(-time.Minute), now.Add(time.Hour)))
	home := pkiDir(t)
	crlFile := filepath.Join(home, "crl.der")
	pkiWrite(t, filepath.Join(home, "ca.pem"), pkiPEM(ca))
	pkiWrite(t, crlFile, append(append([]byte{}, old.Bytes...), newer.Bytes...))
	_, err := LoadPKI(PKIOptions{CA: filepath.Join(home, "ca.pem"), CRL: crlFile, Home: home})
	var fe *PKIFileError
	if !errors.As(err, &fe) || fe.File != crlFile || !strings.Contains(err.Error(), "CRL 1: ") || !strings.Contains(err.Error(), "bytes follow it") {
		t.Errorf("DER CRLs concatenated: err = %v, want *PKIFileError naming %s", err, crlFile)
	}
	pkiWrite(t, crlFile, old.Bytes)
	if _, err := LoadPKI(PKIOptions{CA: filepath.Join(home, "ca.pem"), CRL: crlFile, Home: home}); err != nil {
		t.Errorf("control: one DER CRL: %v", err)
	}
}

// A CRL without nextUpdate (RFC 5280, 5.1.2.5: conforming CAs include
// one) would vouch for ever: here one issued ten years ago. Refused at
// load, naming the file, and by InstallCA.
func TestCRLWithoutNextUpdateRefused(t *testing.T) {
	ca := pkiIssue(t, "Org CA", true, nil)
	this := time.Now().AddDate(-10, 0, 0)
	// x509.CreateRevocationList always writes a nextUpdate: the CRL is
	// made by hand (RFC 5280, 5.1), without one.
	type tbsCertList struct {
		Version    int
		Signature  pkix.AlgorithmIdentifier
		Issuer     pkix.RDNSequence
		ThisUpdate time.Time
	}
	type certList struct {
		TBS       asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}
	ecdsaSHA256 := pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}}
	tbsDER, err := asn1.Marshal(tbsCertList{Version: 1, Signature: ecdsaSHA256, Issuer: ca.cert.Subject.ToRDNSequence(), ThisUpdate: this.UTC()})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tbsDER)
	sig, err := ecdsa.SignASN1(rand.Reader, ca.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	der, err := asn1.Marshal(certList{TBS: asn1.RawValue{FullBytes: tbsDER}, Algorithm: ecdsaSHA256, Signature: asn1.BitString{Bytes: sig, BitLength: len(sig) * 8}})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := x509.ParseRevocationList(der)
	if err != nil || !parsed.NextUpdate.IsZero() || parsed.CheckSignatureFrom(ca.cert) != nil {
		t.Fatalf("control: the CRL: %v", err)
	}
	crl := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	home := pkiDir(t)
	crlFile := filepath.Join(home, "crl.pem")
	pkiWrite(t, filepath.Join(home, "ca.pem"), pkiPEM(ca))
	pkiWrite(t, crlFile, crl)
	_, err = LoadPKI(PKIOptions{CA: filepath.Join(home, "ca.pem"), CRL: crlFile, Home: home})
	var fe *PKIFileError
	if !errors.As(err, &fe) || fe.File != crlFile || !strings.Contains(err.Error(), "no nextUpdate") || !strings.Contains(err.Error(), "-crldays") {
		t.Errorf("a CRL without nextUpdate: err = %v, want *PKIFileError naming %s", err, crlFile)
	}
	if _, err := InstallCA(filepath.Join(home, "ca.d"), CAInstall{CA: pkiPEM(ca), CRL: crl}); err == nil || !strings.Contains(err.Error(), "no nextUpdate") {
		t.Errorf("InstallCA, a CRL without nextUpdate: %v", err)
	}
}

// A CRL dated in the future (thisUpdate ahead of now, as a CA with a
// wrong clock signs once) was "the newest" until that date, hiding every
// later CRL of the CA. It is not used: the current CRL decides, and a
// future CRL alone leaves the status unknown — refused. Within
// CRLClockSkew a CRL is used.
func TestFutureDatedCRLDoesNotHideCurrentOne(t *testing.T) {
	ca := pkiIssue(t, "Org CA", true, nil)
	leaf := pkiIssue(t, "client", false, ca)
	now := time.Now()
	future := pkiCRL(t, ca, now.AddDate(1, 0, 0), now.AddDate(1, 0, 7))
	current := pkiCRL(t, ca, now.Add(-time.Minute), now.Add(time.Hour), leaf)
	p, err := ParsePKI(pkiPEM(ca), append(append([]byte{}, current...), future...))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify([]*x509.Certificate{leaf.cert}, x509.ExtKeyUsageClientAuth, ""); !isA[*RevokedCertificateError](err) {
		t.Errorf("a CRL dated a year ahead beside the current one: err = %v, want *RevokedCertificateError", err)
	}
	p, err = ParsePKI(pkiPEM(ca), future)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Verify([]*x509.Certificate{leaf.cert}, x509.ExtKeyUsageClientAuth, "")
	var unusable *CRLUnusableError
	if !isA[*CARefusedError](err) || !errors.As(err, &unusable) || !strings.Contains(unusable.Reason, "future") {
		t.Errorf("a CRL dated a year ahead alone: err = %v, want *CARefusedError wrapping *CRLUnusableError", err)
	}
	p, err = ParsePKI(pkiPEM(ca), pkiCRL(t, ca, now.Add(CRLClockSkew-time.Minute), now.Add(time.Hour), leaf))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify([]*x509.Certificate{leaf.cert}, x509.ExtKeyUsageClientAuth, ""); !isA[*RevokedCertificateError](err) {
		t.Errorf("a CRL dated within the clock skew: err = %v, want *RevokedCertificateError", err)
	}
}

// The same serial under another issuer is not revoked by the first
// issuer's CRL.
func TestCRLSerialScopedByIssuer(t *testing.T) {
	a := pkiIssue(t, "CA A", true, nil)
	b := pkiIssue(t, "CA B", true, nil)
	la := pkiIssue(t, "client a", false, a)
	lb := pkiIssue(t, "client b", false, b)
	lb.cert.SerialNumber = la.cert.SerialNumber // only the CRL lookup reads it
	now := time.Now()
	p, err := ParsePKI(pkiPEM(a, b), append(pkiCRL(t, a, now.Add(-time.Minute), now.Add(time.Hour), la), pkiCRL(t, b, now.Add(-time.Minute), now.Add(time.Hour))...))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify([]*x509.Certificate{la.cert}, x509.ExtKeyUsageClientAuth, ""); !isA[*RevokedCertificateError](err) {
		t.Errorf("revoked certificate: %v", err)
	}
	if err := p.Verify([]*x509.Certificate{lb.cert}, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Errorf("B's certificate: %v", err)
	}
}

// paddedChain is leaf and top with n junk CA certificates between them,
// each with top's subject and key identifier but another key: candidates
// crypto/x509 must check a signature against and reject.
func paddedChain(t *testing.T, leaf, top *pkiCert, n int) []*x509.Certificate {
	t.Helper()
	junkKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	chain := []*x509.Certificate{leaf.cert}
	for i := 0; i < n; i++ {
		pkiSerial++
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(pkiSerial), Subject: top.cert.Subject,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			BasicConstraintsValid: true, IsCA: true, SubjectKeyId: top.cert.SubjectKeyId}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, junkKey.Public(), junkKey)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		chain = append(chain, c)
	}
	return append(chain, top.cert)
}

// Root One and Root Two are roots; X1 (X signed by Root One) and X2 (X,
// same key, signed by Root Two) are both in the bundle; L, signed by X,
// is sent by the peer. Root One's key is revoked: a certificate reachable
// through it is refused whatever the peer sends. Padded with 98 junk
// certificates, the peer made crypto/x509 spend its 100 signature checks
// after finding the path through X2 and before trying X1, and return that
// one path alone: admitted (found by review). A peer chain longer than
// MaxPeerChain is refused before Verify; within it, the revoked path is
// still found.
func TestPaddedChainCannotHideRevokedPath(t *testing.T) {
	r1 := pkiIssue(t, "Root One", true, nil)
	r2 := pkiIssue(t, "Root Two", true, nil)
	xKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mkX := func(parent *pkiCert) *pkiCert {
		pkiSerial++
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(pkiSerial), Subject: pkix.Name{CommonName: "Cross X"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			SubjectKeyId: []byte{1, 2, 3, 4}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.cert, xKey.Public(), parent.key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return &pkiCert{c, xKey}
	}
	x1, x2 := mkX(r1), mkX(r2)
	l := pkiIssue(t, "Issuing L", true, x2) // signed by X's key
	leaf := pkiIssue(t, "client", false, l)
	// X2 before X1: the bundle's order is the operator's choice.
	p, err := ParsePKI(pkiPEM(r1, r2, x2, x1), nil)
	if err != nil {
		t.Fatal(err)
	}
	r1Sum, _ := caKeySum(r1.cert)
	revoked := func(sum [32]byte) (bool, error) { return sum == r1Sum, errors.New("revoked") }

	for _, n := range []int{0, MaxPeerChain - 2} { // [leaf, L], and MaxPeerChain certificates
		chain := paddedChain(t, leaf, l, n)
		v, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, "")
		if err != nil {
			t.Fatalf("%d certificates: %v", len(chain), err)
		}
		if err := revokedInChain(v, revoked); !isA[*RevokedCAKeyError](err) {
			t.Errorf("%d certificates: %v, want *RevokedCAKeyError for Root One", len(chain), err)
		}
	}
	for _, n := range []int{MaxPeerChain - 1, 98} {
		chain := paddedChain(t, leaf, l, n)
		_, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, "")
		var long *PeerChainTooLongError
		if !isA[*CARefusedError](err) || !errors.As(err, &long) || long.Certificates != len(chain) {
			t.Errorf("%d certificates: err = %v, want *CARefusedError wrapping *PeerChainTooLongError", len(chain), err)
		}
	}
}

// ca.pem = [root (one line damaged), intermediate]. pem.Decode skipped the
// damaged block silently: the root was gone, completion stopped at the
// intermediate, and the root's revoked key was never seen (found by
// review). The bundle is refused, naming the file and the block, at load
// and by InstallCA.
func TestDamagedCABlockFailsClosed(t *testing.T) {
	f := newChainFixture(t, false)
	rootPEM := string(pkiPEM(f.root))
	lines := strings.Split(rootPEM, "\n")
	damaged := []byte(strings.Replace(rootPEM, lines[2], "!!!!"+lines[2][4:], 1))
	bundle := append(damaged, pkiPEM(f.inter)...)
	home := pkiDir(t)
	caFile := filepath.Join(home, "ca.pem")
	pkiWrite(t, caFile, bundle)
	_, err := LoadPKI(PKIOptions{CA: caFile, Home: home})
	var fe *PKIFileError
	if !errors.As(err, &fe) || fe.File != caFile || !strings.Contains(err.Error(), "PEM block 1") {
		t.Errorf("ca.pem with a damaged block: err = %v, want *PKIFileError naming %s and block 1", err, caFile)
	}
	if _, err := ParsePKI(bundle, nil); err == nil {
		t.Error("ParsePKI, a damaged block: no error")
	}
	if _, err := InstallCA(filepath.Join(home, "ca.d"), CAInstall{CA: bundle}); err == nil || !strings.Contains(err.Error(), "PEM block 1") {
		t.Errorf("InstallCA, a damaged block: %v", err)
	}
}

// A root key rollover (RFC 4210, 4.4): the old root (key K1), the new one
// (K2) and NewWithOld (K2's subject and key, signed by K1) in ca.pem; the
// CRL file holds K1's last CRL, expired, and K2's current one. A leaf of
// K2 is also reachable through NewWithOld and the old root, whose CRL
// has expired: refused, fail closed, and the error names the old key's
// fingerprint — both CAs have the same subject, and the subject alone
// does not say which CRL to renew or remove.
func TestRolloverOldKeyExpiredCRLNamesKey(t *testing.T) {
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mk := func(key, signer *ecdsa.PrivateKey, parent *x509.Certificate) *pkiCert {
		pkiSerial++
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(pkiSerial), Subject: pkix.Name{CommonName: "Rollover CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return &pkiCert{c, key}
	}
	old := mk(k1, k1, nil)
	nw := mk(k2, k2, nil)
	nwo := mk(k2, k1, old.cert)
	leaf := pkiIssue(t, "client", false, nw)
	now := time.Now()
	crls := append(pkiCRL(t, old, now.Add(-48*time.Hour), now.Add(-24*time.Hour)), pkiCRL(t, nw, now.Add(-time.Minute), now.Add(time.Hour))...)
	p, err := ParsePKI(pkiPEM(old, nw, nwo), crls)
	if err != nil {
		t.Fatal(err)
	}
	oldSum, _ := caKeySum(old.cert)
	err = p.Verify([]*x509.Certificate{leaf.cert}, x509.ExtKeyUsageClientAuth, "")
	if !isA[*CARefusedError](err) || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), jwk.FormatFingerprint(oldSum)) {
		t.Errorf("the old key's CRL expired: err = %v, want *CARefusedError naming the old key %s", err, jwk.FormatFingerprint(oldSum))
	}
}
