package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// testCA makes a CA certificate named cn, and its key.
func testCA(t *testing.T, cn string, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn, Organization: []string{"Example Org"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
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

// testCRL is a CRL of issuer, signed with key, next updated at next.
func testCRL(t *testing.T, issuer *x509.Certificate, key *ecdsa.PrivateKey, next time.Time) []byte {
	t.Helper()
	return testCRLAt(t, issuer, key, time.Now().Add(-2*time.Hour), next)
}

// testCRLAt is testCRL dated this (its thisUpdate).
func testCRLAt(t *testing.T, issuer *x509.Certificate, key *ecdsa.PrivateKey, this, next time.Time) []byte {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(1), ThisUpdate: this, NextUpdate: next,
	}, issuer, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

func writePEM(t *testing.T, path string, data ...[]byte) {
	t.Helper()
	var all []byte
	for _, d := range data {
		all = append(all, d...)
	}
	if err := os.WriteFile(path, all, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A CRL dated after now (beyond tlsbridge.CRLClockSkew) is one PKI mode
// does not use (docs/design.md, "Chains and their CRLs"): keytool list
// showed it ok, so a CA's wrong clock passed unseen while every
// certificate it signed was refused. It is not yet valid; one dated
// within the skew is ok.
func TestListFutureDatedCRL(t *testing.T) {
	fastExit(t)
	home := filepath.Join(t.TempDir(), "home")
	if _, e, code := keytoolIn(t, home, "gen"); code != 0 {
		t.Fatalf("gen: %s", e)
	}
	ca, caKey := testCA(t, "Example Root CA", time.Now().Add(48*time.Hour))
	writePEM(t, filepath.Join(home, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	now := time.Now()
	writePEM(t, filepath.Join(home, "crl.pem"),
		testCRLAt(t, ca, caKey, now.Add(time.Hour), now.Add(24*time.Hour)),
		testCRLAt(t, ca, caKey, now.Add(time.Minute), now.Add(24*time.Hour)))
	out, e, code := keytoolIn(t, home, "list")
	if code != 0 {
		t.Fatalf("list: exit %d\n%s", code, e)
	}
	for _, want := range []string{
		`(?m)^CRL +crl\.pem +CN=Example Root CA.* +\S+Z +not yet valid\n` + // the subject cut to fit
			`CRL +crl\.pem +CN=Example Root CA.* +\S+Z +ok$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no match for %s in:\n%s", want, out)
		}
	}
}

// keytool list shows PKI mode's files as the home holds them: each CA's
// subject and expiry, each CRL's issuer, next update and whether a CA of
// ca.pem signed it — and a CRL that no CA signed is also a problem, since
// PKI mode then refuses every CA-based decision.
func TestListPKI(t *testing.T) {
	fastExit(t)
	home := filepath.Join(t.TempDir(), "home")
	if _, e, code := keytoolIn(t, home, "gen"); code != 0 {
		t.Fatalf("gen: %s", e)
	}
	ca, caKey := testCA(t, "Example Root CA", time.Date(2098, 1, 2, 3, 4, 5, 0, time.UTC))
	old, _ := testCA(t, "Old CA", time.Now().Add(-time.Minute))
	certPEM := func(c *x509.Certificate) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	writePEM(t, filepath.Join(home, "ca.pem"), certPEM(ca), certPEM(old))
	next := time.Date(2097, 6, 7, 8, 9, 10, 0, time.UTC)
	writePEM(t, filepath.Join(home, "crl.pem"), testCRL(t, ca, caKey, next))

	out, e, code := keytoolIn(t, home, "list")
	if code != 0 {
		t.Fatalf("list: exit %d\n%s", code, e)
	}
	for _, want := range []string{
		`(?m)^PKI: 3$`,
		`(?m)^CA +ca\.pem +CN=Example Root CA,O=Example Org +2098-01-02T03:04:05Z +ok$`,
		`(?m)^CA +ca\.pem +CN=Old CA,O=Example Org +\S+Z +expired$`,
		`(?m)^CRL +crl\.pem +CN=Example Root CA,O=Example Org +2097-06-07T08:09:10Z +ok$`,
		`(?m)^Problems: none$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("no match for %s in:\n%s", want, out)
		}
	}

	// A CRL past its next update is stale; one signed by a key that is
	// not the CA's is not verified, and PKI mode's refusal is a problem.
	_, otherKey := testCA(t, "Example Root CA", next)
	writePEM(t, filepath.Join(home, "crl.pem"), testCRL(t, ca, caKey, time.Now().Add(-time.Minute)), testCRL(t, ca, otherKey, next))
	out, e, code = keytoolIn(t, home, "list", "--json")
	if code != 0 {
		t.Fatalf("list --json: exit %d\n%s", code, e)
	}
	var o struct {
		PKI []struct {
			Kind, File, Subject, Status string
			Until                       time.Time
		}
		Problems []struct{ File, Error, Fix string }
	}
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var statuses []string
	for _, p := range o.PKI {
		if p.Kind == "crl" {
			statuses = append(statuses, p.Status)
		}
	}
	if len(statuses) != 2 || statuses[0] != "stale" || statuses[1] != "not verified" {
		t.Errorf("CRL statuses %q, want [stale, not verified]\n%s", statuses, out)
	}
	if len(o.Problems) != 1 || o.Problems[0].File != filepath.Join(home, "crl.pem") ||
		!regexp.MustCompile(`not signed by any CA`).MatchString(o.Problems[0].Error) {
		t.Errorf("problems: %+v", o.Problems)
	}

	// --ca (without --crl: no CRL) lists the bundle PKI mode would use.
	other := filepath.Join(home, "other-ca.pem")
	writePEM(t, other, certPEM(old))
	out, e, code = keytoolIn(t, home, "list", "--ca", other)
	if code != 0 || !regexp.MustCompile(`(?m)^PKI: 1\n.*\nCA +other-ca\.pem +CN=Old CA`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^Problems: none$`).MatchString(out) {
		t.Errorf("list --ca: exit %d\n%s%s", code, out, e)
	}
}
