package cli

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// privateKeysKeytoolCannotRead are private keys in forms keytool does not
// read as keys: encrypted, of a type or size it does not use, damaged.
func privateKeysKeytoolCannotRead(t *testing.T) map[string][]byte {
	t.Helper()
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xDER, err := x509.MarshalPKCS8PrivateKey(x)
	if err != nil {
		t.Fatal(err)
	}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ec8DER, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	encDER, err := asn1.Marshal(struct {
		Algo pkix.AlgorithmIdentifier
		Data []byte
	}{pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}}, []byte("ciphertext")})
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	private, err := k.MarshalPrivate(jwk.JWK)
	if err != nil {
		t.Fatal(err)
	}
	public, err := k.PublicKey().MarshalPublic(jwk.JWK)
	if err != nil {
		t.Fatal(err)
	}
	public = bytes.TrimSpace(public)
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string][]byte{
		"encrypted PKCS#8": []byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"),
		"X25519 PKCS#8":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: xDER}),
		"RSA 1024 PKCS#1":  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(small)}),
		"X25519 JWK": []byte(`{"kty":"OKP","crv":"X25519","x":"` + b64(x.PublicKey().Bytes()) +
			`","d":"` + b64(x.Bytes()) + `"}`),
		"damaged EC JWK": []byte(`{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","d":"` + b64(x.Bytes()) + `"}`),
		"in a JWK Set": []byte(`{"keys":[{"kty":"OKP","crv":"X25519","x":"` + b64(x.PublicKey().Bytes()) +
			`","d":"` + b64(x.Bytes()) + `"}]}`),
		// DER, as openssl -outform DER writes them: no PEM line to see.
		"X25519 PKCS#8 DER":    xDER,
		"RSA 1024 PKCS#1 DER":  x509.MarshalPKCS1PrivateKey(small),
		"EC SEC 1 DER":         ecDER,
		"EC PKCS#8 DER":        ec8DER,
		"encrypted PKCS#8 DER": encDER,
		// Beside public keys that read: in a member of the set that is
		// not "keys", in an attribute, or with a member name escaped.
		"beside a JWK Set": []byte(`{"keys":[` + string(public) + `],"backup":` + string(private) + `}`),
		"in an attribute":  []byte(string(public[:len(public)-1]) + `,"backup":` + string(private) + `}`),
		"escaped d":        []byte(`{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","\u0064":"` + b64(x.Bytes()) + `"}`),
	}
}

// A private key keytool cannot read is still a private key: cert -o and
// bundle -o leave it alone without --force, as they do the identity, and
// sync never mirrors it into a file everyone may read (the check both
// use, valueHoldsPrivateKey). Both once took it for "no key" and wrote
// over it, or mirrored it 0644.
func TestPrivateKeyKeytoolCannotReadIsNotOverwritten(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if _, e, code := runKeytool(t, "", "-H", home, "gen"); code != 0 {
		t.Fatalf("gen: %s", e)
	}
	pub := filepath.Join(dir, "pub.pem")
	if _, e, code := runKeytool(t, "", "-H", home, "authorize", "--name", "self", filepath.Join(home, "pub_key.json")); code != 0 {
		t.Fatalf("authorize: %s", e)
	}
	for name, data := range privateKeysKeytoolCannotRead(t) {
		if !valueHoldsPrivateKey(data) {
			t.Errorf("%s: valueHoldsPrivateKey false", name)
		}
		for _, cmd := range [][]string{{"cert"}, {"bundle", "authorized"}} {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := runKeytool(t, "", append(append([]string{"-H", home}, cmd...), "-o", file)...)
			if got, _ := os.ReadFile(file); code != 1 || string(got) != string(data) || !strings.Contains(errOut, "holds a private key") {
				t.Errorf("keytool %s -o over a %s: exit %d, %q; the file kept: %v", cmd[0], name, code, errOut, string(got) == string(data))
			}
			if _, errOut, code := runKeytool(t, "", append(append([]string{"-H", home}, cmd...), "-o", file, "--force")...); code != 0 {
				t.Errorf("keytool %s -o --force over a %s: exit %d, %q", cmd[0], name, code, errOut)
			}
		}
	}
	// What is not a private key is replaced as before: a certificate, a
	// public key, a file keytool cannot read at all.
	idCert, err := os.ReadFile(filepath.Join(home, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	idKey, err := jwk.Parse(idCert)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(idKey[0].Public())
	if err != nil {
		t.Fatal(err)
	}
	rsaPub, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"public key": "", "text": "notes\n", "JSON": `{"kty":"oops","x":"1"}`,
		"DER public key": string(spki), "PKCS#1 DER public key": string(x509.MarshalPKCS1PublicKey(&rsaPub.PublicKey)),
		"JWK Set with a comment": `{"keys":[],"comment":"kty d"}`,
	} {
		if name == "public key" {
			b, err := os.ReadFile(filepath.Join(home, "pub_key.json"))
			if err != nil {
				t.Fatal(err)
			}
			data = string(b)
		}
		if valueHoldsPrivateKey([]byte(data)) {
			t.Errorf("%s: valueHoldsPrivateKey true", name)
		}
		if err := os.WriteFile(pub, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := runKeytool(t, "", "-H", home, "cert", "-o", pub); code != 0 {
			t.Errorf("keytool cert -o over a %s: exit %d, %q", name, code, errOut)
		}
	}
}

// A JWK member that holds private key material (jwk.PrivateMembers) is
// one in any case, as Go's encoding/json, and so go-jose, reads it: by
// Unicode simple folding, where the Kelvin sign U+212A is "k" and "K"
// (strings.EqualFold, and the regular expression's (?i)). Both checks
// take their names from jwk's one list. A name that is only lower-cased
// to a member ("prİv": İ lower-cases to i, but does not fold to it) is
// none, nor are the public members.
func TestPrivateMemberInAnyCase(t *testing.T) {
	object := func(name string) []byte {
		return []byte(`{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","` + name + `":"AAAA"}`)
	}
	var names []string
	for _, m := range jwk.PrivateMembers() {
		names = append(names, m, strings.ToUpper(m))
	}
	names = append(names, "\u212a") // the Kelvin sign, raw
	for _, name := range names {
		if data := object(name); !looksPrivate.Match(data) || !jsonHoldsPrivateJWK(data) || !valueHoldsPrivateKey(data) {
			t.Errorf("%q: looksPrivate %v, jsonHoldsPrivateJWK %v, valueHoldsPrivateKey %v; want private", name,
				looksPrivate.Match(data), jsonHoldsPrivateJWK(data), valueHoldsPrivateKey(data))
		}
	}
	// Escaped, the Kelvin sign is no match for the expression, which
	// reads bytes, but jsonHoldsPrivateJWK decodes it.
	if data := object(`\u212a`); looksPrivate.Match(data) || !jsonHoldsPrivateJWK(data) || !valueHoldsPrivateKey(data) {
		t.Errorf(`"\u212a": looksPrivate %v, jsonHoldsPrivateJWK %v, valueHoldsPrivateKey %v`,
			looksPrivate.Match(data), jsonHoldsPrivateJWK(data), valueHoldsPrivateKey(data))
	}
	for _, name := range []string{"pr\u0130v", "kid", "KTY", "pub", "dd", "o", "private"} {
		if data := object(name); looksPrivate.Match(data) || jsonHoldsPrivateJWK(data) {
			t.Errorf("%q: looksPrivate %v, jsonHoldsPrivateJWK %v; want neither", name, looksPrivate.Match(data), jsonHoldsPrivateJWK(data))
		}
	}
}
