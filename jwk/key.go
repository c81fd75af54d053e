package jwk

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
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/ssh"
)

// Type names a kind of key that Generate can make. The names are the ones
// the command line takes (`keytool gen -t ec256`).
type Type string

const (
	EC256   Type = "ec256" // ECDSA P-256, the default
	EC384   Type = "ec384"
	EC521   Type = "ec521"
	RSA2048 Type = "rsa2048"
	RSA3072 Type = "rsa3072"
	RSA4096 Type = "rsa4096"
	Ed25519 Type = "ed25519"
)

// types lists every Type, default first.
var types = [...]Type{EC256, EC384, EC521, RSA2048, RSA3072, RSA4096, Ed25519}

// Types returns every Type, default first. The slice is the caller's own.
func Types() []Type { return slices.Clone(types[:]) }

// ParseType returns the Type named s, or an error listing the valid names.
func ParseType(s string) (Type, error) {
	for _, t := range types {
		if string(t) == strings.ToLower(s) {
			return t, nil
		}
	}
	names := make([]string, len(types))
	for i, t := range types {
		names[i] = string(t)
	}
	return "", fmt.Errorf("unknown key type %q: use one of %s", s, strings.Join(names, ", "))
}

// Minimum and maximum RSA modulus sizes accepted when reading keys. 2048 is
// NIST's floor; above 16384 bits verification becomes a denial of service.
const (
	MinRSABits = 2048
	MaxRSABits = 16384
)

// Key is a public key, or a private key with its public half, together with
// the attributes that travel with it (address, comment, expires, …).
//
// A Key is identified by the SHA-256 of its DER SubjectPublicKeyInfo, from
// which the fingerprint and key ID are derived. A Key is immutable once
// parsed, except for Attrs, which belongs to the caller.
type Key struct {
	public  crypto.PublicKey // *ecdsa.PublicKey, *rsa.PublicKey or ed25519.PublicKey
	private crypto.Signer    // nil for a public key
	spki    []byte
	sum     [32]byte

	// Attrs are the members beyond the key material: kid, address, comment,
	// expires, from, and anything else, kept for round trips.
	Attrs Attributes
}

// Generate makes a new private key of type t.
func Generate(t Type) (*Key, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch t {
	case EC256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EC384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case EC521:
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case RSA2048:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		priv, err = rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		priv, err = rsa.GenerateKey(rand.Reader, 4096)
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		_, err = ParseType(string(t))
	}
	if err != nil {
		return nil, err
	}
	return NewPrivateKey(priv)
}

// NewPublicKey wraps a crypto public key (*ecdsa.PublicKey, *rsa.PublicKey or
// ed25519.PublicKey) as a Key without attributes.
func NewPublicKey(pub crypto.PublicKey) (*Key, error) { return newPublicKey(pub, true) }

// newPublicKey is NewPublicKey; checkPoint false skips the check that an
// ECDSA point is on its curve, for parsers that made it already.
func newPublicKey(pub crypto.PublicKey, checkPoint bool) (*Key, error) {
	switch p := pub.(type) {
	case *ed25519.PublicKey:
		if p == nil {
			return nil, ErrUnsupportedKey
		}
		pub = *p
	case *ecdsa.PublicKey:
		if p == nil {
			return nil, ErrUnsupportedKey
		}
	}
	spki, err := marshalSPKI(pub, checkPoint)
	if err != nil {
		return nil, err
	}
	return &Key{public: pub, spki: spki, sum: sha256.Sum256(spki)}, nil
}

// NewPrivateKey wraps a crypto private key (*ecdsa.PrivateKey,
// *rsa.PrivateKey or ed25519.PrivateKey) as a Key without attributes. An
// RSA key is precomputed (rsa.PrivateKey.Precompute) and validated.
func NewPrivateKey(priv crypto.Signer) (*Key, error) {
	if p, ok := priv.(*ed25519.PrivateKey); ok {
		priv = *p
	}
	if p, ok := priv.(ed25519.PrivateKey); ok {
		// OpenSSH files carry the public half beside the seed, unchecked.
		if len(p) != ed25519.PrivateKeySize || !bytes.Equal(ed25519.NewKeyFromSeed(p.Seed()).Public().(ed25519.PublicKey), p[ed25519.SeedSize:]) {
			return nil, errors.New("invalid Ed25519 private key: the public key is not the one of the seed")
		}
	}
	if k, ok := priv.(*rsa.PrivateKey); ok {
		// Precompute first: Validate then checks the values the key will
		// sign with and write back (dp, dq, qi) rather than computing
		// them again and dropping them, and a key whose values were
		// missing gets them once (without them, Go computes them anew at
		// every signature, and x509's marshalling writes them into the
		// key, a write to a key other goroutines may be using).
		k.Precompute()
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("invalid RSA private key: %w", err)
		}
	}
	k, err := NewPublicKey(priv.Public())
	if err != nil {
		return nil, err
	}
	k.private = priv
	return k, nil
}

// DER prefixes of SubjectPublicKeyInfo for the fixed-size key types: the
// encoding is the prefix followed by the raw public key. Building it by hand
// is several times faster than x509.MarshalPKIXPublicKey, and parsing keys
// is on the path of every trust-store reload. A test checks each prefix
// against crypto/x509.
var (
	spkiP256    = []byte{0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00}
	spkiP384    = []byte{0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00}
	spkiP521    = []byte{0x30, 0x81, 0x9b, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23, 0x03, 0x81, 0x86, 0x00}
	spkiEd25519 = []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}
)

// SPKIOf returns the DER SubjectPublicKeyInfo of pub in its one form, the
// bytes whose SHA-256 is the key's identity, for a key crypto/x509 parsed
// (an ECDSA point is not checked again to be on its curve): an ECDSA key
// on P-256, P-384 or P-521, an Ed25519 key, an RSA key of the sizes
// keytool accepts. Building it by hand is fast enough for every handshake
// (tlsbridge compares a certificate's SPKI with it).
func SPKIOf(pub crypto.PublicKey) ([]byte, error) { return marshalSPKI(pub, false) }

func marshalSPKI(pub crypto.PublicKey, checkPoint bool) ([]byte, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		var prefix []byte
		switch p.Curve {
		case elliptic.P256():
			prefix = spkiP256
		case elliptic.P384():
			prefix = spkiP384
		case elliptic.P521():
			prefix = spkiP521
		default:
			return nil, fmt.Errorf("%w: ECDSA on a curve other than P-256, P-384 or P-521", ErrUnsupportedKey)
		}
		// A caller-made *ecdsa.PublicKey is a bare (X, Y): its coordinates
		// are the only way to check and encode it.
		//lint:ignore SA1019 the only check for a bare (X, Y)
		if p.X == nil || p.Y == nil || checkPoint && !p.Curve.IsOnCurve(p.X, p.Y) {
			return nil, fmt.Errorf("invalid ECDSA public key: the point is not on the curve %s", p.Curve.Params().Name)
		}
		size := (p.Curve.Params().BitSize + 7) / 8
		der := make([]byte, len(prefix)+1+2*size)
		n := copy(der, prefix)
		der[n] = 4 // uncompressed point
		//lint:ignore SA1019 see above
		p.X.FillBytes(der[n+1 : n+1+size])
		//lint:ignore SA1019 see above
		p.Y.FillBytes(der[n+1+size:])
		return der, nil
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("invalid Ed25519 public key: %d bytes, want %d", len(p), ed25519.PublicKeySize)
		}
		return append(append([]byte(nil), spkiEd25519...), p...), nil
	case *rsa.PublicKey:
		if p == nil || p.N == nil {
			return nil, fmt.Errorf("%w: empty RSA key", ErrUnsupportedKey)
		}
		// An SSH mpint with its top bit set is negative: such a "key"
		// would get one SPKI here and another, of its absolute value, in
		// JWK. A modulus is a product of odd primes.
		if p.N.Sign() <= 0 || p.N.Bit(0) == 0 {
			return nil, errors.New("invalid RSA public key: the modulus is not a positive odd number")
		}
		if bits := p.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
			return nil, fmt.Errorf("%w: RSA key of %d bits; keytool accepts %d to %d bits", ErrUnsupportedKey, bits, MinRSABits, MaxRSABits)
		}
		if p.E < 3 || p.E%2 == 0 {
			return nil, fmt.Errorf("invalid RSA public key: exponent %d", p.E)
		}
		return x509.MarshalPKIXPublicKey(p)
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
	}
}

// Public returns the crypto public key: *ecdsa.PublicKey, *rsa.PublicKey or
// ed25519.PublicKey.
func (k *Key) Public() crypto.PublicKey { return k.public }

// Signer returns the private key, or nil if k is a public key.
func (k *Key) Signer() crypto.Signer { return k.private }

// IsPrivate reports whether k holds private key material.
func (k *Key) IsPrivate() bool { return k.private != nil }

// PublicKey returns k without its private half, sharing the attributes'
// values (but not the map). A private key's "key_ops" becomes its public
// key's: "sign" is "verify" there (publicKeyOps), as the rule of what a
// key is for wants of a public key.
func (k *Key) PublicKey() *Key {
	p := *k
	p.private = nil
	p.Attrs = k.Attrs.Clone()
	if k.private != nil {
		publicKeyOps(p.Attrs)
	}
	return &p
}

// PublicHalf is the public key of an identity as it is handed out (its
// pub_key file): PublicKey without AttrNames, which say what the
// identity's own certificate names and would read, in a peer's trust
// store, as if they bound the key.
func (k *Key) PublicHalf() *Key {
	p := k.PublicKey()
	delete(p.Attrs, AttrNames)
	return p
}

// SPKI returns the DER SubjectPublicKeyInfo of the key. The caller must not
// modify it.
func (k *Key) SPKI() []byte { return k.spki }

// SPKIHash returns the SHA-256 of the DER SubjectPublicKeyInfo: the key's
// identity, from which every other name of the key is derived.
func (k *Key) SPKIHash() [32]byte { return k.sum }

// Fingerprint returns the key's fingerprint in OpenSSH style:
// "SHA256:" and the SPKI hash in base64 without padding. `openssl pkey
// -pubin -outform DER | openssl dgst -sha256 -binary | base64` gives the
// same value (with padding). ssh-keygen hashes another encoding of the
// key, and so prints another value in the same form: SSHFingerprint.
// ParseFingerprint and Match take either.
func (k *Key) Fingerprint() string { return FormatFingerprint(k.sum) }

// SSHFingerprint returns the fingerprint ssh-keygen -l prints for the key:
// "SHA256:" and the SHA-256 of its SSH wire encoding in base64 without
// padding. ok is false for a key that SSH cannot express (none of the
// types keytool reads today).
func (k *Key) SSHFingerprint() (fp string, ok bool) {
	sum, ok := k.sshHash()
	if !ok {
		return "", false
	}
	return FormatFingerprint(sum), true
}

// sshHash returns the SHA-256 of the key's SSH wire encoding.
func (k *Key) sshHash() (sum [32]byte, ok bool) {
	pub, err := ssh.NewPublicKey(k.public)
	if err != nil {
		return sum, false
	}
	return sha256.Sum256(pub.Marshal()), true
}

// FormatFingerprint formats an SPKI hash as a fingerprint ("SHA256:…").
func FormatFingerprint(sum [32]byte) string {
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// KeyID returns the Docker/libtrust key ID: the first 240 bits of the SPKI
// hash in base32, as 12 groups of 4 characters joined by colons.
func (k *Key) KeyID() string { return FormatKeyID(k.sum) }

// FormatKeyID formats an SPKI hash as a libtrust key ID.
func FormatKeyID(sum [32]byte) string {
	return string(appendKeyID(make([]byte, 0, 59), sum))
}

// appendKeyID appends the libtrust key ID of sum to dst.
func appendKeyID(dst []byte, sum [32]byte) []byte {
	var enc [48]byte
	base32.StdEncoding.Encode(enc[:], sum[:30])
	for i := 0; i < len(enc); i += 4 {
		if i > 0 {
			dst = append(dst, ':')
		}
		dst = append(dst, enc[i:i+4]...)
	}
	return dst
}

// Thumbprint returns the RFC 7638 JWK thumbprint (SHA-256, base64url
// without padding).
func (k *Key) Thumbprint() string {
	sum, err := (&jose.JSONWebKey{Key: k.public}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "" // unreachable: every key type that init accepts has one
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// Algorithm describes the key's type and size: "ECDSA P-256", "RSA 3072",
// "Ed25519".
func (k *Key) Algorithm() string {
	switch p := k.public.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + p.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", p.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return "unknown"
}

// Type returns the generation Type matching the key (EC256, RSA2048, …), or
// "" for an RSA key of a size Generate does not make.
func (k *Key) Type() Type {
	switch p := k.public.(type) {
	case *ecdsa.PublicKey:
		switch p.Curve {
		case elliptic.P256():
			return EC256
		case elliptic.P384():
			return EC384
		case elliptic.P521():
			return EC521
		}
	case *rsa.PublicKey:
		switch p.N.BitLen() {
		case 2048:
			return RSA2048
		case 3072:
			return RSA3072
		case 4096:
			return RSA4096
		}
	case ed25519.PublicKey:
		return Ed25519
	}
	return ""
}

// Equal reports whether k and o are the same public key.
func (k *Key) Equal(o *Key) bool { return o != nil && k.sum == o.sum }
