package tlsbridge

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
)

func mustGenerate(t testing.TB, typ jwk.Type) *jwk.Key {
	t.Helper()
	k, err := jwk.Generate(typ)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustSelfSigned(t testing.TB, k *jwk.Key) *x509.Certificate {
	t.Helper()
	c, err := SelfSigned(k, CertOptions{DNSNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writePEM(t *testing.T, path string, certs ...*x509.Certificate) {
	t.Helper()
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A peer's identity certificate verifies against the per-key CA pool of its
// key, with Go's x509 and with OpenSSL, and a certificate of another key
// does not.
func TestPerKeyCAVerifies(t *testing.T) {
	for _, typ := range []jwk.Type{jwk.EC256, jwk.EC384, jwk.Ed25519, jwk.RSA2048} {
		t.Run(string(typ), func(t *testing.T) {
			trusted, other := mustGenerate(t, typ), mustGenerate(t, typ)
			leaf, stranger := mustSelfSigned(t, trusted), mustSelfSigned(t, other)

			pool, err := CAPool([]*jwk.Key{trusted})
			if err != nil {
				t.Fatal(err)
			}
			opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
			if _, err := leaf.Verify(opts); err != nil {
				t.Errorf("Go refuses the trusted key's certificate: %v", err)
			}
			if _, err := stranger.Verify(opts); err == nil {
				t.Errorf("Go accepts a certificate of an untrusted key")
			}

			if _, err := exec.LookPath("openssl"); err != nil {
				t.Skip("openssl not installed (.ci/run installs it)")
			}
			dir := t.TempDir()
			bundle, err := CABundle([]*jwk.Key{trusted})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "bundle.pem"), bundle, 0o644); err != nil {
				t.Fatal(err)
			}
			writePEM(t, filepath.Join(dir, "leaf.pem"), leaf)
			writePEM(t, filepath.Join(dir, "stranger.pem"), stranger)
			for _, purpose := range []string{"sslclient", "sslserver"} {
				out, err := exec.Command("openssl", "verify", "-purpose", purpose, "-CAfile", filepath.Join(dir, "bundle.pem"), filepath.Join(dir, "leaf.pem")).CombinedOutput()
				if err != nil || !strings.Contains(string(out), ": OK") {
					t.Errorf("openssl verify -purpose %s refuses the trusted key's certificate: %v\n%s", purpose, err, out)
				}
			}
			out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(dir, "bundle.pem"), filepath.Join(dir, "stranger.pem")).CombinedOutput()
			if err == nil {
				t.Errorf("openssl verify accepts a certificate of an untrusted key:\n%s", out)
			}
		})
	}
}

// libtrust's construction: a self-issued leaf with the same subject, key and
// subject alternative names as its CA certificate. Go's chain builder
// discards it as a loop, which is why libtrust's pools fail on Go >= 1.19
// and why keytool's identity certificates carry a key URI the CA
// certificates lack. If this test starts failing, Go changed that rule.
func TestLibtrustStyleChainFails(t *testing.T) {
	k := mustGenerate(t, jwk.EC256)
	noSAN := &x509.Certificate{
		SerialNumber: bigOne(), Subject: issuerFor(k), NotBefore: notAfter.AddDate(-8000, 0, 0), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, noSAN, noSAN, k.Public(), k.Signer())
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool, err := CAPool([]*jwk.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err == nil {
		t.Fatal("a leaf identical to its CA in subject, key and SANs verified; Go's loop rule changed — revisit bundle.go's explanation")
	}
	t.Logf("as expected: %v", err)
}

func bigOne() *big.Int { return big.NewInt(1) }

// caMaker encodes the certificate x509.CreateCertificate makes from
// caTemplate: the same to-be-signed bytes for every key family (and, for
// Ed25519, whose signatures are deterministic, the same certificate), with
// a signature that verifies.
func TestCAMakerMatchesX509(t *testing.T) {
	for _, typ := range []jwk.Type{jwk.EC256, jwk.EC384, jwk.EC521, jwk.Ed25519, jwk.RSA2048, jwk.RSA3072} {
		t.Run(string(typ), func(t *testing.T) {
			m := newCAMaker()
			for range 3 {
				k := mustGenerate(t, typ)
				der, err := m.der(k)
				if err != nil {
					t.Fatal(err)
				}
				got, err := x509.ParseCertificate(der)
				if err != nil {
					t.Fatal(err)
				}
				tmpl, err := caTemplate(issuerFor(k))
				if err != nil {
					t.Fatal(err)
				}
				tmpl.SerialNumber, tmpl.NotBefore = got.SerialNumber, got.NotBefore
				signer, err := m.signers.forKey(k)
				if err != nil {
					t.Fatal(err)
				}
				throwaway := &x509.Certificate{PublicKey: signer.Public()}
				if err := throwaway.CheckSignature(got.SignatureAlgorithm, got.RawTBSCertificate, got.Signature); err != nil {
					t.Errorf("the signature by the throwaway key: %v", err)
				}
				wantDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), signer)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := x509.ParseCertificate(wantDER)
				if !bytes.Equal(got.RawTBSCertificate, want.RawTBSCertificate) {
					t.Fatalf("to-be-signed bytes differ from x509.CreateCertificate's:\n got %x\nwant %x", got.RawTBSCertificate, want.RawTBSCertificate)
				}
				if typ == jwk.Ed25519 && !bytes.Equal(der, wantDER) {
					t.Errorf("certificate differs from x509.CreateCertificate's:\n got %x\nwant %x", der, wantDER)
				}
			}
		})
	}
}

// A CABundleWriter writes what CABundle returns, key after key.
func TestCABundleWriterStreams(t *testing.T) {
	keys := []*jwk.Key{mustGenerate(t, jwk.Ed25519), mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.Ed25519)}
	var buf bytes.Buffer
	w := NewCABundleWriter(&buf)
	for i, k := range keys {
		if err := w.Add(k); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(buf.String(), "BEGIN CERTIFICATE"); n != i+1 {
			t.Fatalf("after %d keys the output holds %d certificates", i+1, n)
		}
	}
	rest := buf.Bytes()
	for i, k := range keys {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			t.Fatalf("certificate %d missing", i)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if c.Subject.CommonName != k.KeyID() || !bytes.Equal(c.RawSubjectPublicKeyInfo, k.SPKI()) {
			t.Errorf("certificate %d is not key %d's", i, i)
		}
	}
}
