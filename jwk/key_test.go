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
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
)

// The hand-built SubjectPublicKeyInfo of every key type must be exactly
// crypto/x509's encoding, or every name of every key would be wrong.
func TestSPKIMatchesX509(t *testing.T) {
	for _, typ := range testTypes {
		t.Run(string(typ), func(t *testing.T) {
			for i := 0; i < 20; i++ {
				var k *Key
				if i == 0 || typ == RSA2048 {
					k = testKey(t, typ) // RSA keys are slow to make
				} else {
					var err error
					if k, err = Generate(typ); err != nil {
						t.Fatal(err)
					}
				}
				want, err := x509.MarshalPKIXPublicKey(k.Public())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(k.SPKI(), want) {
					t.Fatalf("SPKI() = %x\nx509   = %x", k.SPKI(), want)
				}
				if k.SPKIHash() != sha256.Sum256(want) {
					t.Fatal("SPKIHash() is not the SHA-256 of the SPKI")
				}
				if got, err := SPKIOf(k.Public()); err != nil || !bytes.Equal(got, want) {
					t.Fatalf("SPKIOf = %x, %v\nx509   = %x", got, err, want)
				}
				if typ == RSA2048 {
					break
				}
			}
		})
	}
	// Coordinates with leading zero bytes must be padded to full size: find
	// a P-256 key whose X or Y has a short big.Int encoding.
	for i := 0; i < 2000; i++ {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(priv.X.Bytes()) == 32 && len(priv.Y.Bytes()) == 32 {
			continue
		}
		k, err := NewPublicKey(&priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		if !bytes.Equal(k.SPKI(), want) {
			t.Fatalf("short coordinate: SPKI() = %x\nx509   = %x", k.SPKI(), want)
		}
		return
	}
}

func TestGenerate(t *testing.T) {
	want := map[Type]string{EC256: "ECDSA P-256", EC384: "ECDSA P-384", EC521: "ECDSA P-521", RSA2048: "RSA 2048", Ed25519: "Ed25519"}
	for _, typ := range testTypes {
		k := testKey(t, typ)
		if !k.IsPrivate() || k.Signer() == nil {
			t.Errorf("%s: Generate made a public key", typ)
		}
		if k.Type() != typ {
			t.Errorf("%s: Type() = %q", typ, k.Type())
		}
		if k.Algorithm() != want[typ] {
			t.Errorf("%s: Algorithm() = %q, want %q", typ, k.Algorithm(), want[typ])
		}
		if k.Attrs != nil {
			t.Errorf("%s: a new key has attributes %v", typ, k.Attrs)
		}
		// The signer and the identity belong to the same key.
		digest := sha256.Sum256([]byte("hello"))
		var opts crypto.SignerOpts = crypto.SHA256
		msg := digest[:]
		if typ == Ed25519 {
			opts, msg = crypto.Hash(0), []byte("hello")
		}
		sig, err := k.Signer().Sign(rand.Reader, msg, opts)
		if err != nil {
			t.Fatal(err)
		}
		var ok bool
		switch p := k.Public().(type) {
		case *ecdsa.PublicKey:
			ok = ecdsa.VerifyASN1(p, msg, sig)
		case *rsa.PublicKey:
			ok = rsa.VerifyPKCS1v15(p, crypto.SHA256, msg, sig) == nil
		case ed25519.PublicKey:
			ok = ed25519.Verify(p, msg, sig)
		}
		if !ok {
			t.Errorf("%s: signature does not verify under Public()", typ)
		}
	}
	if _, err := Generate("dsa"); err == nil || !strings.Contains(err.Error(), "ec256") {
		t.Errorf(`Generate("dsa") = %v, want an error listing the types`, err)
	}
}

func TestParseType(t *testing.T) {
	for _, typ := range Types() {
		if got, err := ParseType(strings.ToUpper(string(typ))); err != nil || got != typ {
			t.Errorf("ParseType(%q) = %q, %v", strings.ToUpper(string(typ)), got, err)
		}
	}
	if Types()[0] != EC256 {
		t.Errorf("default type %q, want ec256", Types()[0])
	}
	_, err := ParseType("rsa1024")
	if err == nil {
		t.Fatal("ParseType(rsa1024) succeeded")
	}
	for _, typ := range Types() {
		wantSubstrings(t, err.Error(), string(typ))
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"jwk": JWK, "json": JWK, "pem": PEM} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseFormat("openssh"); err == nil {
		t.Error("OpenSSH is read-only, but ParseFormat accepted it")
	}
	if JWK.Ext() != ".json" || PEM.Ext() != ".pem" {
		t.Errorf("Ext: %q %q", JWK.Ext(), PEM.Ext())
	}
	if _, err := testKey(t, EC256).MarshalPublic(OpenSSH); err == nil {
		t.Error("MarshalPublic(OpenSSH) succeeded")
	}
	if _, err := MarshalPublicSet([]*Key{testKey(t, EC256)}, "xml"); err == nil {
		t.Error(`MarshalPublicSet("xml") succeeded`)
	}
}

func TestNewPublicKeyRefuses(t *testing.T) {
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	//lint:ignore SA1019 an off-curve point can only be made from raw coordinates
	offCurve := &ecdsa.PublicKey{Curve: elliptic.P256(), X: p256.X, Y: new(big.Int).Add(p256.Y, big.NewInt(1))}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		pub     crypto.PublicKey
		want    error
		message string
	}{
		{"P-224", &p224.PublicKey, ErrUnsupportedKey, "P-256"},
		{"off curve", offCurve, nil, "not on the curve"},
		{"no coordinates", &ecdsa.PublicKey{Curve: elliptic.P256()}, nil, "not on the curve"},
		{"nil ECDSA", (*ecdsa.PublicKey)(nil), ErrUnsupportedKey, ""},
		{"nil RSA", (*rsa.PublicKey)(nil), ErrUnsupportedKey, ""},
		{"RSA 1024", &rsa1024.PublicKey, ErrUnsupportedKey, "1024 bits"},
		{"RSA even exponent", &rsa.PublicKey{N: testKey(t, RSA2048).Public().(*rsa.PublicKey).N, E: 65536}, nil, "exponent"},
		{"short Ed25519", ed25519.PublicKey(make([]byte, 31)), nil, "31 bytes"},
		{"nil Ed25519 pointer", (*ed25519.PublicKey)(nil), ErrUnsupportedKey, ""},
		{"a string", "key", ErrUnsupportedKey, "string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, err := NewPublicKey(c.pub)
			if err == nil {
				t.Fatalf("accepted: %s", k.Fingerprint())
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("error %q is not %q", err, c.want)
			}
			wantSubstrings(t, err.Error(), c.message)
		})
	}
	// A pointer to an Ed25519 key is as good as the key.
	edPub := testKey(t, Ed25519).Public().(ed25519.PublicKey)
	if k, err := NewPublicKey(&edPub); err != nil || k.SPKIHash() != testKey(t, Ed25519).SPKIHash() {
		t.Errorf("NewPublicKey(*ed25519.PublicKey) = %v", err)
	}
	edPriv := testKey(t, Ed25519).Signer().(ed25519.PrivateKey)
	if k, err := NewPrivateKey(&edPriv); err != nil || k.SPKIHash() != testKey(t, Ed25519).SPKIHash() {
		t.Errorf("NewPrivateKey(*ed25519.PrivateKey) = %v", err)
	}
}

// A private key whose public half is not the public key of its secret
// would show one identity and sign as another.
func TestNewPrivateKeyRefusesMismatch(t *testing.T) {
	a, b := testKey(t, Ed25519).Signer().(ed25519.PrivateKey), mustGenerate(t, Ed25519).Signer().(ed25519.PrivateKey)
	mixed := append(append(ed25519.PrivateKey(nil), a.Seed()...), b.Public().(ed25519.PublicKey)...)
	if k, err := NewPrivateKey(mixed); err == nil {
		t.Errorf("Ed25519 seed of one key with the public key of another accepted as %s", k.Fingerprint())
	}
	r := *testKey(t, RSA2048).Signer().(*rsa.PrivateKey)
	r.D = new(big.Int).Add(r.D, big.NewInt(2))
	if _, err := NewPrivateKey(&r); err == nil {
		t.Error("inconsistent RSA private key accepted")
	}
}

func mustGenerate(t testing.TB, typ Type) *Key {
	t.Helper()
	k, err := Generate(typ)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestPublicKeyCopiesAttributes(t *testing.T) {
	k := withAttrs(testKey(t, EC256), Attributes{"comment": []byte(`"a"`)})
	p := k.PublicKey()
	if p.IsPrivate() || p.Signer() != nil || !k.IsPrivate() {
		t.Fatalf("PublicKey(): private %v, original private %v", p.IsPrivate(), k.IsPrivate())
	}
	if !p.Equal(k) || p.Fingerprint() != k.Fingerprint() {
		t.Error("PublicKey() is another key")
	}
	p.Attrs.SetString("comment", "b")
	if k.Attrs.Comment() != "a" {
		t.Error("changing the public key's attributes changed the private key's")
	}
	if _, err := p.MarshalPrivate(JWK); err == nil {
		t.Error("MarshalPrivate of a public key succeeded")
	}
	if _, err := p.MarshalPrivate(PEM); err == nil {
		t.Error("MarshalPrivate(PEM) of a public key succeeded")
	}
}

func TestFormatKeyID(t *testing.T) {
	var sum [32]byte
	for i := range sum {
		sum[i] = byte(i)
	}
	id := FormatKeyID(sum)
	if len(id) != 59 || strings.Count(id, ":") != 11 || !isLibtrustKeyID(id) {
		t.Errorf("FormatKeyID = %q", id)
	}
	if got := FormatFingerprint(sum); got != "SHA256:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" {
		t.Errorf("FormatFingerprint = %q", got)
	}
	if id != "AAAQ:EAYE:AUDA:OCAJ:BIFQ:YDIO:B4IB:CEQT:CQKR:MFYY:DENB:WHA5" {
		t.Errorf("FormatKeyID = %q", id)
	}
}

// RSA keys from 2048 to 16384 bits are read in every format, including JWK
// (go-jose alone stops at 4096), and larger ones are refused in every
// format with the same reason.
func TestRSASizes(t *testing.T) {
	for _, bits := range []int{3072, 4096, 6144, 8192, 16384, 16385, 20000} {
		n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits)))
		if err != nil {
			t.Fatal(err)
		}
		n.SetBit(n, bits-1, 1).SetBit(n, 0, 1) // not a real modulus; size is what counts here
		pub := &rsa.PublicKey{N: n, E: 65537}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		pemData := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		jwkData := []byte(`{"kty":"RSA","e":"AQAB","n":"` + base64.RawURLEncoding.EncodeToString(n.Bytes()) + `"}`)
		for name, data := range map[string][]byte{"PEM": pemData, "JWK": jwkData} {
			k, err := ParseOne(data)
			if bits <= MaxRSABits {
				if err != nil {
					t.Errorf("RSA %d %s: %v", bits, name, err)
					continue
				}
				if k.Algorithm() != fmt.Sprintf("RSA %d", bits) || !bytes.Equal(k.SPKI(), der) {
					t.Errorf("RSA %d %s: %s", bits, name, k.Algorithm())
				}
				if want := map[int]Type{3072: RSA3072, 4096: RSA4096}[bits]; k.Type() != want {
					t.Errorf("RSA %d: Type() = %q, want %q", bits, k.Type(), want)
				}
				// keytool's own JWK output of the key reads back.
				if back, err := ParseOne(mustMarshal(t, k, JWK, false)); err != nil || !back.Equal(k) {
					t.Errorf("RSA %d %s: JWK round trip: %v", bits, name, err)
				}
				continue
			}
			if !errors.Is(err, ErrUnsupportedKey) {
				t.Errorf("RSA %d %s: %v, want ErrUnsupportedKey", bits, name, err)
				continue
			}
			wantSubstrings(t, err.Error(), "16384 bits")
			if pe := asParseError(t, err); name == "JWK" && pe.Member != "n" {
				t.Errorf("RSA %d JWK: member %q, want n", bits, pe.Member)
			}
		}
	}
}
