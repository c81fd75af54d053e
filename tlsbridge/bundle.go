package tlsbridge

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/keytool/keytool/jwk"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
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

// CACertificate returns the per-key CA certificate for k.
func CACertificate(k *jwk.Key) (*x509.Certificate, error) {
	der, err := newCAMaker().der(k)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// CAPool returns a pool with one per-key CA certificate for each key.
func CAPool(keys []*jwk.Key) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	m := newCAMaker()
	for _, k := range keys {
		der, err := m.der(k)
		if err != nil {
			return nil, err
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		pool.AddCert(c)
	}
	return pool, nil
}

// CABundle returns the per-key CA certificates of keys in PEM, each
// preceded by a comment line naming the key, for OpenSSL's -CAfile, curl's
// --cacert or nginx's ssl_client_certificate. For many keys, a
// CABundleWriter writes the same bytes as they are made.
func CABundle(keys []*jwk.Key) ([]byte, error) {
	var buf bytes.Buffer
	w := NewCABundleWriter(&buf)
	for _, k := range keys {
		if err := w.Add(k); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// A CABundleWriter writes a CA bundle (as CABundle) to an io.Writer one key
// at a time, so that a bundle of any size takes the memory of one
// certificate. Block, which makes a key's PEM block, is safe for concurrent
// use, so that a caller may make blocks in parallel and Write them in its
// own order; Add does both.
type CABundleWriter struct {
	w     io.Writer
	maker *caMaker
}

// NewCABundleWriter returns a writer of a CA bundle to w. The throwaway
// signing keys (one per key family) are made on first use and forgotten
// with the writer.
func NewCABundleWriter(w io.Writer) *CABundleWriter {
	return &CABundleWriter{w: w, maker: newCAMaker()}
}

// Block returns k's entry in the bundle: a comment line naming the key
// (fingerprint, key ID, comment) and its CA certificate in PEM.
func (b *CABundleWriter) Block(k *jwk.Key) ([]byte, error) {
	der, err := b.maker.der(k)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# %s %s", k.Fingerprint(), k.KeyID())
	if comment := k.Attrs.Comment(); comment != "" {
		fmt.Fprintf(&buf, " %q", comment)
	}
	buf.WriteByte('\n')
	_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der}) // a bytes.Buffer does not fail
	return buf.Bytes(), nil
}

// Write writes a block made by Block.
func (b *CABundleWriter) Write(block []byte) error {
	_, err := b.w.Write(block)
	return err
}

// Add makes k's block and writes it.
func (b *CABundleWriter) Add(k *jwk.Key) error {
	block, err := b.Block(k)
	if err != nil {
		return err
	}
	return b.Write(block)
}

// caMaker makes per-key CA certificates. It encodes them itself rather than
// through x509.CreateCertificate, which spends four fifths of a bundle's
// time in reflective ASN.1 encoding and in verifying the signature it has
// just made (for a crypto.Signer it cannot trust; the throwaway keys here
// are the standard library's own): a bundle of 100,000 keys took 10 s of
// CPU in it (docs/benchmarks.md). The bytes are those CreateCertificate
// makes from the same template (caTemplate) — TestCAMakerMatchesX509
// compares them for every key family.
type caMaker struct {
	mu       sync.Mutex
	signers  signers
	validity []byte // the Validity, DER: the same for every certificate of one maker
}

func newCAMaker() *caMaker {
	notBefore := time.Now().Add(-time.Hour).Truncate(time.Second) // as certTemplate
	validity, err := asn1.Marshal(struct{ NotBefore, NotAfter time.Time }{notBefore.UTC(), notAfter})
	if err != nil {
		panic(err) // fixed times always encode
	}
	return &caMaker{validity: validity}
}

// caTemplate is the per-key CA certificate as an x509 template, which
// caMaker follows: subject and issuer issuerFor(k), valid from an hour ago
// until notAfter (certTemplate), a CA that may sign leaves only.
func caTemplate(subject pkix.Name) (*x509.Certificate, error) {
	tmpl, err := certTemplate(subject)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	tmpl.IsCA = true
	tmpl.MaxPathLenZero = true // it may sign leaves (the peer's own), not further CAs
	return tmpl, nil
}

// The encodings caMaker needs (RFC 5280, section 4.1).
var (
	oidEd25519         = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidOrganization    = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOrgUnit         = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidCommonName      = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidKeyUsage        = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConstr     = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidSubjectKeyID    = asn1.ObjectIdentifier{2, 5, 29, 14}
)

// signer returns the throwaway signing key for k's family, and how it signs.
func (m *caMaker) signer(k *jwk.Key) (crypto.Signer, asn1.ObjectIdentifier, crypto.Hash, error) {
	m.mu.Lock()
	s, err := m.signers.forKey(k)
	m.mu.Unlock()
	if err != nil {
		return nil, nil, 0, err
	}
	switch s.(type) {
	case ed25519.PrivateKey:
		return s, oidEd25519, 0, nil
	case *rsa.PrivateKey:
		return s, oidSHA256WithRSA, crypto.SHA256, nil
	default:
		return s, oidECDSAWithSHA256, crypto.SHA256, nil
	}
}

// der returns k's per-key CA certificate, DER.
func (m *caMaker) der(k *jwk.Key) ([]byte, error) {
	signer, sigAlg, hash, err := m.signer(k)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tbs, err := m.tbs(k, serial, sigAlg)
	if err != nil {
		return nil, fmt.Errorf("tlsbridge: per-key CA certificate for %s: %w", k.Fingerprint(), err)
	}
	signed := tbs
	if hash != 0 {
		sum := sha256.Sum256(tbs)
		signed = sum[:]
	}
	sig, err := signer.Sign(rand.Reader, signed, hash)
	if err != nil {
		return nil, fmt.Errorf("tlsbridge: per-key CA certificate for %s: %w", k.Fingerprint(), err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbs)
		addAlgorithm(b, sigAlg)
		b.AddASN1BitString(sig)
	})
	return b.Bytes()
}

// tbs encodes the certificate's to-be-signed part, as
// x509.CreateCertificate does for caTemplate(issuerFor(k)) with that
// serial.
func (m *caMaker) tbs(k *jwk.Key, serial *big.Int, sigAlg asn1.ObjectIdentifier) ([]byte, error) {
	spki := cryptobyte.String(k.SPKI())
	var keyBits asn1.BitString
	var info, alg cryptobyte.String
	if !spki.ReadASN1(&info, cbasn1.SEQUENCE) || !info.ReadASN1Element(&alg, cbasn1.SEQUENCE) || !info.ReadASN1BitString(&keyBits) {
		return nil, errors.New("malformed public key")
	}
	skid := sha256.Sum256(keyBits.Bytes) // RFC 7093, section 2, method 1, as Go does
	name := caName(k.KeyID())
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddASN1Int64(2) })
		b.AddASN1BigInt(serial)
		addAlgorithm(b, sigAlg)
		b.AddBytes(name) // issuer
		b.AddBytes(m.validity)
		b.AddBytes(name) // subject
		b.AddBytes(k.SPKI())
		b.AddASN1(cbasn1.Tag(3).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				// KeyUsage: digitalSignature (bit 0) and keyCertSign (bit
				// 5), 0b100001 in 6 bits, so 2 unused bits.
				addExtension(b, oidKeyUsage, true, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.BIT_STRING, func(b *cryptobyte.Builder) { b.AddBytes([]byte{2, 0x84}) })
				})
				addExtension(b, oidBasicConstr, true, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Boolean(true)
						b.AddASN1Int64(0)
					})
				})
				addExtension(b, oidSubjectKeyID, false, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString(skid[:20])
				})
			})
		})
	})
	return b.Bytes()
}

// caName encodes issuerFor's name for a key ID, as pkix.Name's
// ToRDNSequence and encoding/asn1 do: O, OU, CN, each value a
// PrintableString if it can be one, else a UTF8String.
func caName(keyID string) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, atv := range []struct {
			oid   asn1.ObjectIdentifier
			value string
		}{{oidOrganization, "keytool"}, {oidOrgUnit, "key"}, {oidCommonName, keyID}} {
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(atv.oid)
					tag := cbasn1.PrintableString
					if !printable(atv.value) {
						tag = cbasn1.UTF8String
					}
					b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(atv.value)) })
				})
			})
		}
	})
	return b.BytesOrPanic() // nothing here can fail to encode
}

// printable reports whether s is an ASN.1 PrintableString, as
// encoding/asn1 decides when it marshals a string (no '*' or '&').
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(" '()+,-./:=?", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// addAlgorithm adds an AlgorithmIdentifier: RSA's with NULL parameters,
// the others with none.
func addAlgorithm(b *cryptobyte.Builder, oid asn1.ObjectIdentifier) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if oid.Equal(oidSHA256WithRSA) {
			b.AddASN1NULL()
		}
	})
}

// addExtension adds an Extension whose value value encodes; critical is
// left out when false (DER omits a default).
func addExtension(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, critical bool, value cryptobyte.BuilderContinuation) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}
