package tlsbridge

import (
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
	next := []*jwk.Key{mustGenerate(t, jwk.Ed25519), mustGenerate(t, jwk.RSA2048), k}
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
	ext, err := nextKeysExtension([]*jwk.Key{evil})
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

// ParseNextKeys refuses what is not exactly a SEQUENCE of 1 to
// MaxAnnounced usable keys.
func TestParseNextKeysRefuses(t *testing.T) {
	k := mustGenerate(t, jwk.EC256)
	good, err := nextKeysExtension([]*jwk.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := asn1.Marshal([]asn1.RawValue{})
	notKey, _ := asn1.Marshal([]asn1.RawValue{{FullBytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}}})
	for name, val := range map[string][]byte{
		"empty":          nil,
		"no keys":        empty,
		"trailing bytes": append(append([]byte{}, good.Value...), 0),
		"not a key":      notKey,
		"truncated":      good.Value[:len(good.Value)-1],
	} {
		if keys, err := ParseNextKeys(val); err == nil {
			t.Errorf("%s: parsed %v", name, keys)
		}
	}
	if keys, err := ParseNextKeys(good.Value); err != nil || len(keys) != 1 || !keys[0].Equal(k) {
		t.Fatalf("good value: %v, %v", keys, err)
	}
}

func FuzzParseNextKeys(f *testing.F) {
	for _, typ := range []jwk.Type{jwk.EC256, jwk.Ed25519} {
		k, err := jwk.Generate(typ)
		if err != nil {
			f.Fatal(err)
		}
		ext, err := nextKeysExtension([]*jwk.Key{k})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ext.Value)
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, val []byte) {
		keys, err := ParseNextKeys(val)
		if err != nil {
			return
		}
		if len(keys) == 0 || len(keys) > MaxAnnounced {
			t.Fatalf("%d keys parsed", len(keys))
		}
		// What parses is announced again the same way.
		ext, err := nextKeysExtension(keys)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseNextKeys(ext.Value)
		if err != nil || len(again) != len(keys) {
			t.Fatalf("re-parse: %v", err)
		}
		for i := range keys {
			if !again[i].Equal(keys[i]) {
				t.Fatal("a key changed on the way")
			}
		}
	})
}

// BenchmarkAnnouncedKeys is what a client pays per handshake with a pinned
// host under UpdateHostKeys: "none", a certificate without the extension;
// "pinned", one announcing a key already pinned (parsed, no signature
// checked); "new", one announcing a key not pinned yet (the certificate's
// signature checked), which happens once per key.
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
