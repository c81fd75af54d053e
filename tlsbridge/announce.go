package tlsbridge

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/keytool/keytool/jwk"
)

// OIDSignedNextKeys is the certificate extension by which an identity
// certificate announces its next keys (docs/design.md, "Announced
// rotation"): OpenSSH's UpdateHostKeys and hostkeys-prove, in X.509. Its
// value is
//
//	SignedNextKeys ::= SEQUENCE SIZE (1..MaxAnnounced) OF SignedNextKey
//	SignedNextKey  ::= SEQUENCE {
//	    key        SubjectPublicKeyInfo,
//	    signature  OCTET STRING }  -- by key, over NextKeyMessage
//
// in DER, non-critical. The certificate is signed by the current key and
// each next key signs NextKeyMessage(current, next): the announcement
// needs both keys, and a signature taken from one certificate is worth
// nothing in a certificate of another key. The arc is RFC 5612's
// documentation enterprise number, which IANA assigns to no one: the OID
// cannot collide with a deployed extension. (A UUID arc, 2.25.N, would be
// the usual unregistered choice, but crypto/x509 refuses certificates
// whose OIDs have arcs of more than 31 bits.)
var OIDSignedNextKeys = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 7001, 2}

// OIDNextKeys is the first form of the announcement,
//
//	NextKeys ::= SEQUENCE SIZE (1..MaxAnnounced) OF SubjectPublicKeyInfo
//
// which only the current key signs: its holder could announce any public
// key — another user's — and have it authorized under its own name or
// pinned for its own address. It is never made, and never learned from:
// a certificate announcing a key not yet known in this form only is
// reported (ErrUnsignedAnnouncement).
var OIDNextKeys = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 7001, 1}

// MaxAnnounced is the most keys a certificate may announce.
const MaxAnnounced = 4

// ErrUnsignedAnnouncement means a certificate announces keys not yet
// known in the unsigned form (OIDNextKeys) only: they are ignored.
var ErrUnsignedAnnouncement = errors.New("the keys are announced in the unsigned form (OID 1.3.6.1.4.1.32473.7001.1), which the next keys do not sign: ignored, the peer's keytool must be upgraded to announce them")

// nextKeyDomain begins every message a next key signs (NextKeyMessage):
// no TLS signature (64 spaces, or 32 random bytes), certificate (a DER
// SEQUENCE, 0x30), JWS (base64url) or SSHSIG input begins with it.
const nextKeyDomain = "keytool next key v1\x00"

// NextKeyMessage is what the next key next signs to be announced by the
// key current: nextKeyDomain, then the SHA-256 of each key's
// SubjectPublicKeyInfo (its fingerprint), current first.
func NextKeyMessage(current, next [32]byte) []byte {
	msg := make([]byte, 0, len(nextKeyDomain)+2*sha256.Size)
	msg = append(msg, nextKeyDomain...)
	msg = append(msg, current[:]...)
	return append(msg, next[:]...)
}

// nextKeyScheme is the one signature scheme of each kind of key for
// NextKeyMessage, with no choice left to the signer: Ed25519 signs the
// message itself; ECDSA signs its SHA-256, SHA-384 or SHA-512 by the
// curve's size (TLS 1.3's pairs), ASN.1 form; RSA signs its SHA-256 with
// PSS, a salt as long as the hash (what TLS 1.3 signs with an RSA key:
// randomized and with a security proof, where PKCS #1 v1.5 has neither).
func nextKeyScheme(k *jwk.Key) (crypto.SignerOpts, error) {
	switch p := k.Public().(type) {
	case ed25519.PublicKey:
		return crypto.Hash(0), nil
	case *ecdsa.PublicKey:
		switch bits := p.Curve.Params().BitSize; {
		case bits <= 256:
			return crypto.SHA256, nil
		case bits <= 384:
			return crypto.SHA384, nil
		default:
			return crypto.SHA512, nil
		}
	case *rsa.PublicKey:
		return &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}, nil
	}
	return nil, fmt.Errorf("a %s key cannot sign an announcement", k.Algorithm())
}

// digest is msg as a key of scheme opts signs it.
func digest(opts crypto.SignerOpts, msg []byte) []byte {
	if opts.HashFunc() == 0 {
		return msg
	}
	h := opts.HashFunc().New()
	h.Write(msg)
	return h.Sum(nil)
}

// signNextKey is next's signature of its announcement by current.
func signNextKey(current [32]byte, next *jwk.Key) ([]byte, error) {
	if !next.IsPrivate() {
		return nil, fmt.Errorf("tlsbridge: announcing next key %s needs its private key, which signs the announcement", next.Fingerprint())
	}
	opts, err := nextKeyScheme(next)
	if err != nil {
		return nil, err
	}
	return next.Signer().Sign(rand.Reader, digest(opts, NextKeyMessage(current, next.SPKIHash())), opts)
}

// verifyNextKey reports whether sig is next's signature of its
// announcement by current, with the standard library's verifiers.
func verifyNextKey(current [32]byte, next *jwk.Key, sig []byte) bool {
	opts, err := nextKeyScheme(next)
	if err != nil {
		return false
	}
	d := digest(opts, NextKeyMessage(current, next.SPKIHash()))
	switch p := next.Public().(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(p, d, sig)
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(p, d, sig)
	case *rsa.PublicKey:
		return rsa.VerifyPSS(p, opts.HashFunc(), d, sig, opts.(*rsa.PSSOptions)) == nil
	}
	return false
}

// keyStrength places a key in the one order of kinds that a rotation may
// not go down (CheckNextKey): level is the security strength NIST SP
// 800-57 Part 1 (table 2) gives its kind — RSA under 3,072 bits 112,
// under 7,680 128, under 15,360 192, else 256; ECDSA P-256 128, P-384
// 192, P-521 256; Ed25519 128 — and size its modulus's or curve's bits,
// compared only within a family (RSA, ECDSA, Ed25519).
func keyStrength(k *jwk.Key) (family string, level, size int) {
	switch p := k.Public().(type) {
	case *rsa.PublicKey:
		size = p.N.BitLen()
		switch {
		case size < 3072:
			level = 112
		case size < 7680:
			level = 128
		case size < 15360:
			level = 192
		default:
			level = 256
		}
		return "RSA", level, size
	case *ecdsa.PublicKey:
		size = p.Curve.Params().BitSize
		return "ECDSA", min(size/2, 256), size
	case ed25519.PublicKey:
		return "Ed25519", 128, 256
	}
	return "", 0, 0
}

// WeakerKeyError means a next key is of a weaker kind than the current
// key (CheckNextKey): it is neither announced nor learned.
type WeakerKeyError struct {
	Current, Next *jwk.Key
}

func (e *WeakerKeyError) Error() string {
	return fmt.Sprintf("tlsbridge: next key %s (%s) is weaker than the current key %s (%s): a rotation may keep or strengthen a key's kind, never weaken it",
		e.Next.Fingerprint(), e.Next.Algorithm(), e.Current.Fingerprint(), e.Current.Algorithm())
}

// CheckNextKey refuses a next key of a weaker kind than the current one
// (*WeakerKeyError): a lower security level (keyStrength), or a smaller
// modulus or curve of the same family. RSA 4096 may thus become P-256
// (both 128) but not RSA 3072; P-384 may not become RSA 4096 nor P-256.
// It is the one rule for gen --next, the certificates that announce and
// the peers that learn (docs/design.md, "Announced rotation").
func CheckNextKey(current, next *jwk.Key) error {
	cf, cl, cs := keyStrength(current)
	nf, nl, ns := keyStrength(next)
	if nl < cl || nf == cf && ns < cs {
		return &WeakerKeyError{Current: current, Next: next}
	}
	return nil
}

// signedNextKey is one element of an OIDSignedNextKeys extension.
type signedNextKey struct {
	Key       asn1.RawValue
	Signature []byte
}

// nextKeysExtension makes the extension by which current announces next,
// each of which signs its announcement and so must be a private key of a
// kind no weaker than current's (CheckNextKey).
func nextKeysExtension(current *jwk.Key, next []*jwk.Key) (pkix.Extension, error) {
	if len(next) > MaxAnnounced {
		return pkix.Extension{}, fmt.Errorf("tlsbridge: at most %d next keys can be announced, not %d", MaxAnnounced, len(next))
	}
	items := make([]signedNextKey, len(next))
	for i, k := range next {
		if k == nil {
			return pkix.Extension{}, errors.New("tlsbridge: a next key to announce is missing")
		}
		if err := CheckNextKey(current, k); err != nil {
			return pkix.Extension{}, err
		}
		sig, err := signNextKey(current.SPKIHash(), k)
		if err != nil {
			return pkix.Extension{}, err
		}
		items[i] = signedNextKey{Key: asn1.RawValue{FullBytes: k.SPKI()}, Signature: sig}
	}
	val, err := asn1.Marshal(items)
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: OIDSignedNextKeys, Value: val}, nil
}

// SignedNextKey is a key an OIDSignedNextKeys extension announces, with
// its signature, not yet verified (AnnouncedKeys verifies it).
type SignedNextKey struct {
	Key       *jwk.Key
	Signature []byte
}

// ParseSignedNextKeys reads the value of an OIDSignedNextKeys extension:
// strict DER — the value is the one encoding of what it holds, each key
// in its one SubjectPublicKeyInfo form — one to MaxAnnounced public keys
// of a type keytool uses, each with a signature.
func ParseSignedNextKeys(val []byte) ([]SignedNextKey, error) {
	items, err := unmarshalAnnounced[signedNextKey](val)
	if err != nil {
		return nil, err
	}
	// encoding/asn1 skips elements after a structure's fields: what it
	// read must be the whole value.
	if again, err := asn1.Marshal(items); err != nil || !bytes.Equal(again, val) {
		return nil, &AnnouncementError{Err: errors.New("not in DER, or elements after a key's signature")}
	}
	out := make([]SignedNextKey, 0, len(items))
	for _, it := range items {
		k, err := parseAnnouncedKey(it.Key.FullBytes)
		if err != nil {
			return nil, err
		}
		out = append(out, SignedNextKey{Key: k, Signature: it.Signature})
	}
	return out, nil
}

// unmarshalAnnounced reads the SEQUENCE OF an announcement's value, of
// either form: nothing may follow it, and it holds one to MaxAnnounced
// keys.
func unmarshalAnnounced[E any](val []byte) ([]E, error) {
	var list []E
	rest, err := asn1.Unmarshal(val, &list)
	switch {
	case err != nil:
		return nil, &AnnouncementError{Err: err}
	case len(rest) > 0:
		return nil, &AnnouncementError{Err: errors.New("trailing data")}
	case len(list) == 0 || len(list) > MaxAnnounced:
		return nil, &AnnouncementError{Err: fmt.Errorf("%d keys: from 1 to %d may be announced", len(list), MaxAnnounced)}
	}
	return list, nil
}

// parseAnnouncedKey reads an announced SubjectPublicKeyInfo, which must
// be the key's one DER form: the key's fingerprint is what its signature
// binds.
func parseAnnouncedKey(der []byte) (*jwk.Key, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, &AnnouncementError{Err: err}
	}
	k, err := jwk.NewPublicKey(pub)
	if err != nil {
		return nil, &AnnouncementError{Err: err}
	}
	if !bytes.Equal(k.SPKI(), der) {
		return nil, &AnnouncementError{Err: fmt.Errorf("key %s is not in its one DER form", k.Fingerprint())}
	}
	return k, nil
}

// ParseNextKeys reads the value of an OIDNextKeys extension, the unsigned
// form: strict DER, one to MaxAnnounced public keys of a type keytool
// uses. Its keys are never learned (AnnouncedKeys): they are read only to
// tell whether the form announces a key not yet known.
func ParseNextKeys(val []byte) ([]*jwk.Key, error) {
	spkis, err := unmarshalAnnounced[asn1.RawValue](val)
	if err != nil {
		return nil, err
	}
	keys := make([]*jwk.Key, 0, len(spkis))
	for _, raw := range spkis {
		pub, err := x509.ParsePKIXPublicKey(raw.FullBytes)
		if err != nil {
			return nil, &AnnouncementError{Err: err}
		}
		k, err := jwk.NewPublicKey(pub)
		if err != nil {
			return nil, &AnnouncementError{Err: err}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// AnnouncementError means a certificate's announcement of next keys
// cannot be used: it does not parse, the certificate is not signed by
// its own key, a next key did not sign its announcement by this key, a
// next key is weaker than the current one (*WeakerKeyError), or the
// keys are announced in the unsigned form only (ErrUnsignedAnnouncement).
// Nothing it announces is learned.
type AnnouncementError struct{ Err error }

func (e *AnnouncementError) Error() string {
	return "tlsbridge: the certificate's announcement of next keys is not usable: " + e.Err.Error()
}

func (e *AnnouncementError) Unwrap() error { return e.Err }

// AnnouncedKeys returns the next keys an identity certificate announces,
// other than its own key; none if it has no announcement. It is the one
// check of an announcement, for servers (Server.Peer) and clients
// (Client.LearnAnnounced) alike: a key is returned only if the
// certificate is signed by its own key — the key the peer has just
// proved it holds, so that nobody else (a CA, or whoever issued a
// certificate for the key) can announce — and the key itself signed
// NextKeyMessage for that certificate's key, so that a peer cannot
// announce a key it does not hold (another user's) nor one taken from
// another certificate; and if no key is weaker than the certificate's
// (CheckNextKey). One key failing refuses them all (*AnnouncementError);
// the unsigned form (OIDNextKeys) is never learned from.
func AnnouncedKeys(leaf *x509.Certificate) ([]*jwk.Key, error) {
	return announcedKeys(leaf, nil)
}

// announcedKeys is AnnouncedKeys keeping only the keys for which want
// (if not nil) holds. The signatures are checked only when a key is
// left: a client that pinned the announced keys already pays for parsing
// the extension, not for signature verifications.
func announcedKeys(leaf *x509.Certificate, want func(*jwk.Key) bool) ([]*jwk.Key, error) {
	signed, unsigned, err := announcements(leaf)
	if err != nil || signed == nil && unsigned == nil {
		return nil, err
	}
	self, err := jwk.NewPublicKey(leaf.PublicKey)
	if err != nil {
		return nil, &AnnouncementError{Err: err}
	}
	wanted := func(k *jwk.Key) bool { return !k.Equal(self) && (want == nil || want(k)) }
	if signed == nil {
		keys, err := ParseNextKeys(unsigned)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			if wanted(k) {
				return nil, &AnnouncementError{Err: ErrUnsignedAnnouncement}
			}
		}
		return nil, nil
	}
	items, err := ParseSignedNextKeys(signed)
	if err != nil {
		return nil, err
	}
	var out []*jwk.Key
	for _, it := range items {
		if !wanted(it.Key) {
			continue
		}
		if err := CheckNextKey(self, it.Key); err != nil {
			return nil, &AnnouncementError{Err: err}
		}
		if !verifyNextKey(self.SPKIHash(), it.Key, it.Signature) {
			return nil, &AnnouncementError{Err: fmt.Errorf("next key %s did not sign its announcement by key %s", it.Key.Fingerprint(), self.Fingerprint())}
		}
		out = append(out, it.Key)
	}
	if len(out) == 0 {
		return nil, nil
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		return nil, &AnnouncementError{Err: fmt.Errorf("the certificate is not signed by its own key: %w", err)}
	}
	return out, nil
}

// announcements returns the values of leaf's announcement extensions,
// signed (OIDSignedNextKeys) and unsigned (OIDNextKeys), nil where
// absent; either appearing twice is refused.
func announcements(leaf *x509.Certificate) (signed, unsigned []byte, err error) {
	for _, ext := range leaf.Extensions {
		var dst *[]byte
		switch {
		case ext.Id.Equal(OIDSignedNextKeys):
			dst = &signed
		case ext.Id.Equal(OIDNextKeys):
			dst = &unsigned
		default:
			continue
		}
		if *dst != nil {
			return nil, nil, &AnnouncementError{Err: errors.New("the extension appears twice")}
		}
		*dst = ext.Value
		if *dst == nil {
			*dst = []byte{}
		}
	}
	return signed, unsigned, nil
}

// Announced returns the next keys the identity's certificate announces.
func (id *Identity) Announced() []*jwk.Key {
	if id == nil || id.Certificate.Leaf == nil {
		return nil
	}
	keys, _ := AnnouncedKeys(id.Certificate.Leaf)
	return keys
}

// loadNextKey reads the home's next key, if it has one, as the identity
// is read (ReadHomeKey): it is announced, and becomes the identity.
func loadNextKey(home string) (*jwk.Key, error) {
	file, err := jwk.FindNextKey(home)
	if file == "" || err != nil {
		return nil, err
	}
	return ReadHomeKey(home, file)
}
