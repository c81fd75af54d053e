package tlsbridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// setClock makes VerifyPurpose verify at *at for the rest of the test.
func setClock(t *testing.T, at *time.Time) {
	t.Cleanup(func() { pkiNow = time.Now })
	pkiNow = func() time.Time { return *at }
}

// leafFor issues a client certificate for a new key, valid from
// notBefore to notAfter.
func (ca *testCA) leafFor(t *testing.T, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: "client"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, k.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// writeCRLUntil replaces the CA's CRL by an empty one whose nextUpdate is
// next.
func (ca *testCA) writeCRLUntil(t *testing.T, this, next time.Time) {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()),
		ThisUpdate: this, NextUpdate: next}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, ca.crlFile(), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644)
}

// A chain verified once is answered again without its signatures being
// checked (PeerOf asks at every request) — but only until the first
// instant its answer could change: then it is verified again. Here the
// state's CA pool is emptied behind the cache's back after the first
// verification: the answers that still admit the chain come from the
// cache, the refusal once the CRL's nextUpdate has passed from a
// verification done again.
func TestVerifiedChainAnsweredAgainUntilABoundary(t *testing.T) {
	t0 := time.Now()
	ca := newCA(t)
	ca.writeCRLUntil(t, t0.Add(-time.Minute), t0.Add(10*time.Minute))
	p := ca.pki(t)
	leaf := ca.leafFor(t, t0.Add(-time.Hour), t0.Add(time.Hour))
	at := t0
	setClock(t, &at)
	chain := []*x509.Certificate{leaf}
	first, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range p.state.Load().all {
		set.roots = x509.NewCertPool() // nothing verifies now, but from the cache
	}
	at = t0.Add(9 * time.Minute)
	again, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, "")
	if err != nil {
		t.Fatalf("the same chain again, before any boundary: %v (not answered from the cache)", err)
	}
	if again == first || again.File != first.File || len(again.Chain) != len(first.Chain) {
		t.Errorf("the answer again: %+v, want a copy of %+v", again, first)
	}
	at = t0.Add(10*time.Minute + time.Second)
	if _, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, ""); err == nil {
		t.Fatal("after the CRL's nextUpdate: admitted from the cache, want a verification again (refused: no CA left)")
	}
}

// Each instant at which a verified chain's answer could change ends what
// the cache keeps: a certificate of the chain or a CA expiring, a CRL
// expiring — and a clock set back before the verification. Past it, the
// refusal a fresh verification gives is given.
func TestVerifiedChainNotKeptPastABoundary(t *testing.T) {
	t0 := time.Now()
	for _, tc := range []struct {
		name string
		// setup returns the CA and the leaf; the CA's CRL is current
		// until t0+1h unless setup says otherwise.
		setup func(t *testing.T) (*testCA, *x509.Certificate)
		later time.Duration // when to ask again
		want  string        // in the refusal
	}{
		{"the leaf expires", func(t *testing.T) (*testCA, *x509.Certificate) {
			ca := newCA(t)
			return ca, ca.leafFor(t, t0.Add(-time.Hour), t0.Add(10*time.Minute))
		}, 11 * time.Minute, "expired"},
		{"the CRL expires", func(t *testing.T) (*testCA, *x509.Certificate) {
			ca := newCA(t)
			ca.writeCRLUntil(t, t0.Add(-time.Minute), t0.Add(10*time.Minute))
			return ca, ca.leafFor(t, t0.Add(-time.Hour), t0.Add(time.Hour))
		}, 11 * time.Minute, "expired"},
		{"the CA expires", func(t *testing.T) (*testCA, *x509.Certificate) {
			ca := newCAUntil(t, t0.Add(10*time.Minute))
			return ca, ca.leafFor(t, t0.Add(-time.Hour), t0.Add(time.Hour))
		}, 11 * time.Minute, "expired"},
		{"the clock is set back", func(t *testing.T) (*testCA, *x509.Certificate) {
			ca := newCA(t)
			ca.writeCRLUntil(t, t0.Add(-3*time.Hour), t0.Add(time.Hour))
			return ca, ca.leafFor(t, t0.Add(-time.Hour), t0.Add(time.Hour))
		}, -2 * time.Hour, "not yet valid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca, leaf := tc.setup(t)
			p := ca.pki(t)
			at := t0
			setClock(t, &at)
			chain := []*x509.Certificate{leaf}
			if _, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, ""); err != nil {
				t.Fatal(err)
			}
			at = t0.Add(tc.later)
			_, err := p.VerifyPurpose("", chain, x509.ExtKeyUsageClientAuth, "")
			var refused *CARefusedError
			if !errors.As(err, &refused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("at %v: %v, want a *CARefusedError saying %q", tc.later, err, tc.want)
			}
		})
	}
}

// newCAUntil is newCA for a CA certificate that expires at notAfter.
func newCAUntil(t *testing.T, notAfter time.Time) *testCA {
	ca := newCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Short-lived CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca.cert, _ = x509.ParseCertificate(der)
	ca.key = key
	if err := os.WriteFile(ca.caFile(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	ca.writeCRL(t)
	return ca
}

// A chain is asked about with its purpose, usage and host name: an
// answer for one is never the answer for another.
func TestVerifiedKeyTellsQuestionsApart(t *testing.T) {
	ca := newCA(t)
	a := ca.leafFor(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	b := ca.leafFor(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	seen := map[[32]byte]string{}
	for _, q := range []struct {
		purpose string
		chain   []*x509.Certificate
		usage   x509.ExtKeyUsage
		dns     string
	}{
		{"", []*x509.Certificate{a}, x509.ExtKeyUsageClientAuth, ""},
		{"", []*x509.Certificate{b}, x509.ExtKeyUsageClientAuth, ""},
		{"", []*x509.Certificate{a, b}, x509.ExtKeyUsageClientAuth, ""},
		{"", []*x509.Certificate{a}, x509.ExtKeyUsageServerAuth, ""},
		{"", []*x509.Certificate{a}, x509.ExtKeyUsageClientAuth, "host"},
		{"host", []*x509.Certificate{a}, x509.ExtKeyUsageClientAuth, ""},
		{"docker", []*x509.Certificate{a}, x509.ExtKeyUsageClientAuth, ""},
	} {
		name := fmt.Sprintf("%+v", q)
		k := verifiedKey(q.purpose, q.chain, q.usage, q.dns)
		if other, ok := seen[k]; ok {
			t.Errorf("%s has the key of %s", name, other)
		}
		seen[k] = name
	}
}

// The cache holds at most maxVerified chains: a server seeing more
// clients starts again from empty rather than grow.
func TestVerifiedCacheBounded(t *testing.T) {
	c := newVerifiedCache(nil)
	now := time.Now()
	for i := range maxVerified + 10 {
		var k [32]byte
		k[0], k[1] = byte(i), byte(i>>8)
		c.put(k, nil, &CAVerified{}, now)
		if len(c.m) > maxVerified {
			t.Fatalf("%d chains kept, want at most %d", len(c.m), maxVerified)
		}
	}
}
