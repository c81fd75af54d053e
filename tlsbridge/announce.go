package tlsbridge

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"github.com/keytool/keytool/jwk"
)

// OIDNextKeys is the certificate extension by which an identity
// certificate announces its next keys (docs/design.md, "Announced
// rotation"): OpenSSH's UpdateHostKeys, in X.509. Its value is
//
//	NextKeys ::= SEQUENCE SIZE (1..MaxAnnounced) OF SubjectPublicKeyInfo
//
// in DER, non-critical. The arc is RFC 5612's documentation enterprise
// number, which IANA assigns to no one: the OID cannot collide with a
// deployed extension. (A UUID arc, 2.25.N, would be the usual unregistered
// choice, but crypto/x509 refuses certificates whose OIDs have arcs of
// more than 31 bits.)
var OIDNextKeys = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 7001, 1}

// MaxAnnounced is the most keys a certificate may announce.
const MaxAnnounced = 4

// nextKeysExtension makes the extension announcing keys.
func nextKeysExtension(keys []*jwk.Key) (pkix.Extension, error) {
	if len(keys) > MaxAnnounced {
		return pkix.Extension{}, fmt.Errorf("tlsbridge: at most %d next keys can be announced, not %d", MaxAnnounced, len(keys))
	}
	spkis := make([]asn1.RawValue, len(keys))
	for i, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			return pkix.Extension{}, err
		}
		spkis[i] = asn1.RawValue{FullBytes: der}
	}
	val, err := asn1.Marshal(spkis)
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: OIDNextKeys, Value: val}, nil
}

// ParseNextKeys reads the value of an OIDNextKeys extension: strict DER,
// one to MaxAnnounced public keys of a type keytool uses.
func ParseNextKeys(val []byte) ([]*jwk.Key, error) {
	var spkis []asn1.RawValue
	rest, err := asn1.Unmarshal(val, &spkis)
	switch {
	case err != nil:
		return nil, &AnnouncementError{Err: err}
	case len(rest) > 0:
		return nil, &AnnouncementError{Err: errors.New("trailing data")}
	case len(spkis) == 0 || len(spkis) > MaxAnnounced:
		return nil, &AnnouncementError{Err: fmt.Errorf("%d keys: from 1 to %d may be announced", len(spkis), MaxAnnounced)}
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
// cannot be used: it does not parse, or the certificate is not signed by
// its own key.
type AnnouncementError struct{ Err error }

func (e *AnnouncementError) Error() string {
	return "tlsbridge: the certificate's announcement of next keys is not usable: " + e.Err.Error()
}

func (e *AnnouncementError) Unwrap() error { return e.Err }

// AnnouncedKeys returns the next keys an identity certificate announces,
// other than its own key; none if it has no OIDNextKeys extension. The
// announcement counts only in a certificate signed by its own key — the
// key a client has just verified — so that nobody else (a CA, or whoever
// issued a certificate for the key) can make a client pin a key.
func AnnouncedKeys(leaf *x509.Certificate) ([]*jwk.Key, error) {
	return announcedKeys(leaf, nil)
}

// announcedKeys is AnnouncedKeys keeping only the keys for which want
// (if not nil) holds. The certificate's signature is checked only when a
// key is left: a client that pinned the announced keys already pays for
// parsing the extension, not for a signature verification.
func announcedKeys(leaf *x509.Certificate, want func(*jwk.Key) bool) ([]*jwk.Key, error) {
	var val []byte
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(OIDNextKeys) {
			if val != nil {
				return nil, &AnnouncementError{Err: errors.New("the extension appears twice")}
			}
			val = ext.Value
		}
	}
	if val == nil {
		return nil, nil
	}
	keys, err := ParseNextKeys(val)
	if err != nil {
		return nil, err
	}
	self, err := jwk.NewPublicKey(leaf.PublicKey)
	if err != nil {
		return nil, &AnnouncementError{Err: err}
	}
	out := keys[:0]
	for _, k := range keys {
		if !k.Equal(self) && (want == nil || want(k)) {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
		return nil, &AnnouncementError{Err: fmt.Errorf("the certificate is not signed by its own key: %w", err)}
	}
	return out, nil
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
