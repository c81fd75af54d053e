package jwk

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// Importing and using jwk leaves go-jose's global limit alone: a program
// that reads JWKs with go-jose elsewhere gets go-jose's own behaviour.
func TestJoseGlobalUntouched(t *testing.T) {
	const joseDefault = 4096 // go-jose v4's documented default
	if jose.MaxRSAModulusBits != joseDefault {
		t.Fatalf("jose.MaxRSAModulusBits = %d after importing jwk, want go-jose's %d", jose.MaxRSAModulusBits, joseDefault)
	}
	big := bigRSA(t)
	for _, private := range []bool{false, true} {
		if _, err := ParseOne(mustMarshal(t, big, JWK, private)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ParseOne(mustMarshal(t, testKey(t, RSA2048), JWK, true)); err != nil {
		t.Fatal(err)
	}
	if jose.MaxRSAModulusBits != joseDefault {
		t.Errorf("jose.MaxRSAModulusBits = %d after parsing, want %d", jose.MaxRSAModulusBits, joseDefault)
	}
}

// bigRSA returns the 5120-bit test key in testdata (made with openssl
// genrsa 5120): larger than go-jose reads, too slow to generate per test.
func bigRSA(t testing.TB) *Key {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "rsa5120.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseOne(data)
	if err != nil {
		t.Fatal(err)
	}
	if k.Algorithm() != "RSA 5120" || !k.IsPrivate() {
		t.Fatalf("testdata/rsa5120.pem holds %s (private %v)", k.Algorithm(), k.IsPrivate())
	}
	return k
}

// An RSA private JWK larger than go-jose reads is read by keytool, with or
// without its optional CRT members, and signs.
func TestBigRSAPrivateJWK(t *testing.T) {
	k := withAttrs(bigRSA(t), Attributes{AttrComment: json.RawMessage(`"big"`), "use": json.RawMessage(`"sig"`)})
	full := mustMarshal(t, k, JWK, true)
	var jk jose.JSONWebKey
	if err := jk.UnmarshalJSON(full); !errors.Is(err, jose.ErrUnsupportedKeyType) {
		t.Fatalf("go-jose read a 5120-bit key (%v): the test no longer tests keytool's decoding", err)
	}
	m := jsonObject(t, full)
	delete(m, "dp")
	delete(m, "dq")
	delete(m, "qi")
	bare, _ := json.Marshal(m)
	for name, data := range map[string][]byte{"with dp, dq, qi": full, "without": bare} {
		back, err := ParseOne(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !back.IsPrivate() || !back.Equal(k) || back.Attrs.Comment() != "big" {
			t.Fatalf("%s: read back as %s, private %v, attrs %v", name, back.Algorithm(), back.IsPrivate(), back.Attrs)
		}
		if back.Signer().(*rsa.PrivateKey).D.Cmp(k.Signer().(*rsa.PrivateKey).D) != 0 {
			t.Errorf("%s: another d", name)
		}
		digest := sha256.Sum256([]byte("message"))
		sig, err := back.Signer().Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			t.Fatalf("%s: Sign: %v", name, err)
		}
		if err := rsa.VerifyPKCS1v15(k.Public().(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
			t.Errorf("%s: signature does not verify: %v", name, err)
		}
	}

	// What go-jose would refuse, keytool refuses for keys go-jose cannot
	// read, naming the member.
	edit := func(f func(m map[string]any)) []byte {
		m := jsonObject(t, full)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	for _, c := range []struct {
		name   string
		data   []byte
		member string
		is     error
	}{
		{"q of another key", edit(func(m map[string]any) { m["q"] = m["p"] }), "", nil},
		{"no q", edit(func(m map[string]any) { delete(m, "q") }), "q", nil},
		{"dp of another prime", edit(func(m map[string]any) { m["dp"] = m["dq"] }), "dp", nil}, // checkRSACRT names it
		{"e of 1", edit(func(m map[string]any) { m["e"] = "AQ" }), "e", nil},
		// Refused by go-jose, as for any key: it decodes before it checks sizes.
		{"padded n", edit(func(m map[string]any) { m["n"] = m["n"].(string) + "=" }), "", nil},
		{"use a number", edit(func(m map[string]any) { m["use"] = 1 }), "use", nil},
		{"x5c", edit(func(m map[string]any) { m["x5c"] = []string{"AAAA"} }), "x5c", ErrUnsupportedKey},
		{"x5t#S256", edit(func(m map[string]any) { m["x5t#S256"] = "AAAA" }), "x5t#S256", ErrUnsupportedKey},
	} {
		_, err := Parse(c.data)
		pe := asParseError(t, err)
		if pe.Member != c.member || c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v (member %q), want member %q", c.name, err, pe.Member, c.member)
		}
	}
}

// keytool decodes RSA material as go-jose does: checked on keys go-jose
// reads, where both can.
func TestRSAFromMembersMatchesJose(t *testing.T) {
	k := testKey(t, RSA2048)
	for _, private := range []bool{false, true} {
		raw := mustMarshal(t, k, JWK, private)
		s := jsonScanner{data: raw}
		ms, err := s.members(0, nil)
		if err != nil {
			t.Fatal(err)
		}
		mine, _, err := rsaFromMembers(ms)
		if err != nil {
			t.Fatal(err)
		}
		var jk jose.JSONWebKey
		if err := jk.UnmarshalJSON(raw); err != nil {
			t.Fatal(err)
		}
		switch want := jk.Key.(type) {
		case *rsa.PublicKey:
			if got, ok := mine.(*rsa.PublicKey); !ok || !got.Equal(want) {
				t.Errorf("public: got %T %v", mine, mine)
			}
		case *rsa.PrivateKey:
			got, ok := mine.(*rsa.PrivateKey)
			if !ok || !got.Equal(want) || got.Precomputed.Dp.Cmp(want.Precomputed.Dp) != 0 ||
				got.Precomputed.Dq.Cmp(want.Precomputed.Dq) != 0 || got.Precomputed.Qinv.Cmp(want.Precomputed.Qinv) != 0 {
				t.Errorf("private: got %T, not go-jose's key", mine)
			}
		default:
			t.Fatalf("go-jose read %T", want)
		}
	}
}
