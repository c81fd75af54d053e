package tlsbridge

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// An identity certificate announces its next keys, and AnnouncedKeys
// reads them back, whatever their type; the certificate's own key is not
// announced.
func TestAnnouncedKeysRoundTrip(t *testing.T) {
	k := mustGenerate(t, jwk.EC256)
	next := []*jwk.Key{mustGenerate(t, jwk.Ed25519), mustGenerate(t, jwk.RSA3072), k}
	cert, err := SelfSigned(k, CertOptions{Next: next})
	if err != nil {
		t.Fatal(err)
	}
	got, err := AnnouncedKeys(cert)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[0].Equal(next[0]) || !got[1].Equal(next[1]) {
		t.Fatalf("announced %v", got)
	}
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(OIDNextKeys) && ext.Critical {
			t.Error("the extension is critical: other software would refuse the certificate")
		}
	}
	plain, err := SelfSigned(k, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := AnnouncedKeys(plain); got != nil || err != nil {
		t.Fatalf("a certificate without the extension announced %v, %v", got, err)
	}
	if _, err := SelfSigned(k, CertOptions{Next: make([]*jwk.Key, MaxAnnounced+1)}); err == nil {
		t.Fatal("more than MaxAnnounced keys were announced")
	}
}

// Only the certificate's own key may announce: a certificate for the key
// signed by someone else (a CA, anyone who ever saw the public key) is
// refused, so that no one but the key's holder can make a client pin a key.
func TestAnnouncedKeysNeedTheKeysOwnSignature(t *testing.T) {
	k, other, evil := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	ext, err := nextKeysExtension(k, []*jwk.Key{evil})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := certTemplate(subjectFor(k))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.ExtraExtensions = []pkix.Extension{ext}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: issuerFor(k)}, k.Public(), other.Signer())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	var ae *AnnouncementError
	if got, err := AnnouncedKeys(cert); !errors.As(err, &ae) || got != nil {
		t.Fatalf("a certificate signed by another key announced %v, %v", got, err)
	}
	// The extension twice: crypto/x509 refuses the certificate (and
	// AnnouncedKeys would refuse the announcement).
	tmpl.ExtraExtensions = []pkix.Extension{ext, ext}
	if der, err = x509.CreateCertificate(rand.Reader, tmpl, &x509.Certificate{Subject: issuerFor(k)}, k.Public(), k.Signer()); err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err == nil {
		if _, err := AnnouncedKeys(cert); !errors.As(err, &ae) {
			t.Fatalf("a doubled extension: %v", err)
		}
	}
}

// ParseNextKeys (the unsigned form) and ParseSignedNextKeys refuse what
// is not exactly a SEQUENCE of 1 to MaxAnnounced usable keys, the
// signed form each with a signature and nothing else, in DER.
func TestParseNextKeysRefuses(t *testing.T) {
	cur, k := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	good := unsignedAnnouncement(t, k).Value
	empty, _ := asn1.Marshal([]asn1.RawValue{})
	notKey, _ := asn1.Marshal([]asn1.RawValue{{FullBytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}})
	for name, val := range map[string][]byte{
		"empty":          nil,
		"no keys":        empty,
		"trailing bytes": append(append([]byte{}, good...), 0),
		"not a key":      notKey,
		"truncated":      good[:len(good)-1],
	} {
		if keys, err := ParseNextKeys(val); err == nil {
			t.Errorf("%s: parsed %v", name, keys)
		}
	}
	if keys, err := ParseNextKeys(good); err != nil || len(keys) != 1 || !keys[0].Equal(k) {
		t.Fatalf("good value: %v, %v", keys, err)
	}

	signed, err := nextKeysExtension(cur, []*jwk.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	type item struct {
		Key       asn1.RawValue
		Signature []byte
	}
	var items []item
	if _, err := asn1.Unmarshal(signed.Value, &items); err != nil || len(items) != 1 {
		t.Fatal(err)
	}
	type withMore struct {
		Key       asn1.RawValue
		Signature []byte
		More      int
	}
	more, _ := asn1.Marshal([]withMore{{items[0].Key, items[0].Signature, 1}})
	keyOnly, _ := asn1.Marshal([]asn1.RawValue{items[0].Key})
	bitString, _ := asn1.Marshal([]struct {
		Key       asn1.RawValue
		Signature asn1.BitString
	}{{items[0].Key, asn1.BitString{Bytes: items[0].Signature, BitLength: 8 * len(items[0].Signature)}}})
	five := make([]item, MaxAnnounced+1)
	for i := range five {
		five[i] = items[0]
	}
	tooMany, _ := asn1.Marshal(five)
	for name, val := range map[string][]byte{
		"empty":                  nil,
		"no keys":                empty,
		"trailing bytes":         append(append([]byte{}, signed.Value...), 0),
		"truncated":              signed.Value[:len(signed.Value)-1],
		"the unsigned form":      good,
		"an element after":       more,
		"no signature":           keyOnly,
		"a BIT STRING signature": bitString,
		"more than MaxAnnounced": tooMany,
	} {
		if keys, err := ParseSignedNextKeys(val); err == nil {
			t.Errorf("signed form, %s: parsed %v", name, keys)
		}
	}
	if keys, err := ParseSignedNextKeys(signed.Value); err != nil || len(keys) != 1 || !keys[0].Key.Equal(k) || !bytes.Equal(keys[0].Signature, items[0].Signature) {
		t.Fatalf("good signed value: %v, %v", keys, err)
	}
}

// FuzzParseNextKeys: whatever ParseSignedNextKeys reads is announced
// again the same way, and the unsigned form's parser never reads more
// than MaxAnnounced keys.
func FuzzParseNextKeys(f *testing.F) {
	cur := mustGenerate(f, jwk.EC256)
	for _, typ := range []jwk.Type{jwk.EC256, jwk.Ed25519} {
		k, err := jwk.Generate(typ)
		if err != nil {
			f.Fatal(err)
		}
		ext, err := nextKeysExtension(cur, []*jwk.Key{k})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ext.Value)
		f.Add(unsignedAnnouncement(f, k).Value)
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, val []byte) {
		if keys, err := ParseNextKeys(val); err == nil && (len(keys) == 0 || len(keys) > MaxAnnounced) {
			t.Fatalf("unsigned form: %d keys parsed", len(keys))
		}
		items, err := ParseSignedNextKeys(val)
		if err != nil {
			return
		}
		if len(items) == 0 || len(items) > MaxAnnounced {
			t.Fatalf("%d keys parsed", len(items))
		}
		// What parses is the one encoding of what it holds.
		again := make([]signedNextKey, len(items))
		for i, it := range items {
			again[i] = signedNextKey{Key: asn1.RawValue{FullBytes: it.Key.SPKI()}, Signature: it.Signature}
		}
		der, err := asn1.Marshal(again)
		if err != nil || !bytes.Equal(der, val) {
			t.Fatalf("re-encoded %x, %v; parsed %x", der, err, val)
		}
	})
}

// BenchmarkAnnouncedKeys is what a client pays per handshake with a pinned
// host under UpdateHostKeys: "none", a certificate without the extension;
// "pinned", one announcing a key already pinned (parsed, no signature
// checked); "new", one announcing a key not pinned yet (the next key's
// signature and the certificate's checked), which happens once per key.
func BenchmarkAnnouncedKeys(b *testing.B) {
	k := mustGenerate(b, jwk.EC256)
	plain, err := SelfSigned(k, CertOptions{})
	if err != nil {
		b.Fatal(err)
	}
	announcing, err := SelfSigned(k, CertOptions{Next: []*jwk.Key{mustGenerate(b, jwk.EC256)}})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		leaf *x509.Certificate
		want func(*jwk.Key) bool
	}{
		{"none", plain, nil},
		{"pinned", announcing, func(*jwk.Key) bool { return false }},
		{"new", announcing, nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := announcedKeys(bc.leaf, bc.want); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
