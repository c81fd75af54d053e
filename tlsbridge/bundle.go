package tlsbridge

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/keytool/keytool/jwk"
)

// Per-key CA certificates let software that only knows chain verification —
// OpenSSL, curl, nginx, Python's ssl module, a plain Go x509.CertPool —
// accept a peer by its key: for each trusted key, one CA certificate whose
// subject is the issuer name keytool's identity certificates carry
// (issuerFor) and whose public key is the trusted key. A peer's identity
// certificate then verifies as a leaf issued by that CA, because it was
// signed by that very key.
//
// Docker's libtrust built its pools the same way (GenerateCACertPool), but
// its identity certificates were self-issued, with the same subject, public
// key and (absent) subject alternative names as its CA certificates. Since
// Go 1.19, Go's chain builder discards a candidate issuer that is identical
// in those three to a certificate already in the chain, as a loop
// (crypto/x509's alreadyInChain), so libtrust's chains never build
// (TestLibtrustStyleChainFails shows it). OpenSSL refuses them too, for
// another reason: it trusts a self-issued leaf only if that exact
// certificate is in its store. keytool's identity certificates name an
// issuer distinct from their subject, which avoids both.
//
// The CA certificate is self-issued and signed by a throwaway key: a trust
// anchor's own signature is checked by neither Go nor OpenSSL, and the
// throwaway key is gone once the bundle is made. The throwaway key is of
// the trusted key's family (ECDSA, Ed25519 or RSA), because OpenSSL
// recognises a certificate as self-issued only if its signature algorithm
// fits its public key.
//
// Caveat, and the reason keytool's own verification never uses these pools
// (docs/design.md, principle 2): a CA certificate lets the trusted key sign
// certificates for *other* keys, which chain verification accepts. A bundle
// trusts what a key vouches for; keytool's pinning trusts only the key. See
// docs/security.md.

// CACertificate returns the per-key CA certificate for k.
func CACertificate(k *jwk.Key) (*x509.Certificate, error) {
	return new(signers).caCertificate(k)
}

// signers holds one throwaway signing key per key family, made on first use.
type signers map[string]crypto.Signer

func (s *signers) forKey(k *jwk.Key) (crypto.Signer, error) {
	if *s == nil {
		*s = signers{}
	}
	family := fmt.Sprintf("%T", k.Public())
	if signer, ok := (*s)[family]; ok {
		return signer, nil
	}
	var (
		signer crypto.Signer
		err    error
	)
	switch k.Public().(type) {
	case *rsa.PublicKey:
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case ed25519.PublicKey:
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	default:
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, err
	}
	(*s)[family] = signer
	return signer, nil
}

func (s *signers) caCertificate(k *jwk.Key) (*x509.Certificate, error) {
	signer, err := s.forKey(k)
	if err != nil {
		return nil, err
	}
	tmpl, err := certTemplate(issuerFor(k))
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	tmpl.IsCA = true
	tmpl.MaxPathLenZero = true // it may sign leaves (the peer's own), not further CAs
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("per-key CA certificate for %s: %w", k.Fingerprint(), err)
	}
	return x509.ParseCertificate(der)
}

// CAPool returns a pool with one per-key CA certificate for each key.
func CAPool(keys []*jwk.Key) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	err := eachCA(keys, func(_ *jwk.Key, c *x509.Certificate) { pool.AddCert(c) })
	return pool, err
}

// CABundle returns the per-key CA certificates of keys in PEM, each
// preceded by a comment line naming the key, for OpenSSL's -CAfile, curl's
// --cacert or nginx's ssl_client_certificate.
func CABundle(keys []*jwk.Key) ([]byte, error) {
	var buf bytes.Buffer
	err := eachCA(keys, func(k *jwk.Key, c *x509.Certificate) {
		fmt.Fprintf(&buf, "# %s %s", k.Fingerprint(), k.KeyID())
		if comment := k.Attrs.Comment(); comment != "" {
			fmt.Fprintf(&buf, " %q", comment)
		}
		buf.WriteByte('\n')
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}) // a bytes.Buffer does not fail
	})
	return buf.Bytes(), err
}

func eachCA(keys []*jwk.Key, fn func(*jwk.Key, *x509.Certificate)) error {
	var s signers
	for _, k := range keys {
		c, err := s.caCertificate(k)
		if err != nil {
			return err
		}
		fn(k, c)
	}
	return nil
}
