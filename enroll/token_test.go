package enroll

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir"
)

func testToken() Token {
	t := Token{
		Addresses: []string{"db.example:7443", "[2001:db8::1]:7443", "10.0.0.7:7443"},
		Expires:   time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC),
		Name:      "laptop",
	}
	for i := range t.Server {
		t.Server[i] = byte(i)
		t.Secret[i] = byte(200 - i)
	}
	return t
}

func encode(t testing.TB, tok Token) string {
	t.Helper()
	s, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenRoundTrip(t *testing.T) {
	tok := testToken()
	s := encode(t, tok)
	if !strings.HasPrefix(s, TokenPrefix) || strings.ContainsAny(s, " \n=+/") {
		t.Fatalf("token %q: want %s and base64url without padding", s, TokenPrefix)
	}
	got, err := DecodeToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if got.Server != tok.Server || got.Secret != tok.Secret || !got.Expires.Equal(tok.Expires) || got.Name != tok.Name ||
		strings.Join(got.Addresses, " ") != strings.Join(tok.Addresses, " ") {
		t.Fatalf("round trip: got %+v, want %+v", got, tok)
	}
	// A token wrapped over lines, or pasted with spaces around, still reads.
	wrapped := "  " + s[:30] + "\n" + s[30:70] + "\r\n\t" + s[70:] + "\n"
	if _, err := DecodeToken(wrapped); err != nil {
		t.Fatalf("wrapped token: %v", err)
	}
}

func TestTokenHidesSecret(t *testing.T) {
	tok := testToken()
	s := encode(t, tok)
	secretPart := s[len(TokenPrefix)+43 : len(TokenPrefix)+85] // base64 of bytes 32..63, roughly
	for _, shown := range []string{tok.String(), tok.LogValue().String()} {
		if strings.Contains(shown, secretPart) || strings.Contains(shown, s[len(TokenPrefix):]) {
			t.Errorf("the secret shows in %q", shown)
		}
		if !strings.Contains(shown, "laptop") || !strings.Contains(shown, tok.ServerFingerprint()) {
			t.Errorf("%q lacks the name or the server fingerprint", shown)
		}
	}
}

// TestTokenMangled changes every character of a token, one at a time, to
// another character of the alphabet: each change is reported as mangled,
// never accepted and never reported as something else.
func TestTokenMangled(t *testing.T) {
	s := encode(t, testToken())
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := len(TokenPrefix); i < len(s); i++ {
		c := alphabet[(strings.IndexByte(alphabet, s[i])+7)%len(alphabet)]
		m := s[:i] + string(c) + s[i+1:]
		_, err := DecodeToken(m)
		if !errors.Is(err, ErrTokenMangled) {
			t.Fatalf("position %d changed: got %v, want ErrTokenMangled", i, err)
		}
	}
	var te *TokenError
	_, err := DecodeToken(s[:len(s)/2] + "x" + s[len(s)/2+1:])
	if !errors.As(err, &te) || !strings.Contains(err.Error(), "mangled in copying") || !strings.HasPrefix(err.Error(), "enroll: ") {
		t.Fatalf("message: %v", err)
	}
	for name, m := range map[string]string{
		"cut short":      s[:len(s)-5],
		"cut by one":     s[:len(s)-1],
		"extra char":     s + "A",
		"bad character":  s[:40] + "." + s[41:],
		"padding":        s + "==",
		"prefix damaged": "keytool-joim-1:" + s[len(TokenPrefix):],
		"prefix case":    "Keytool-join-1:" + s[len(TokenPrefix):],
	} {
		if _, err := DecodeToken(m); !errors.Is(err, ErrTokenMangled) {
			t.Errorf("%s: got %v, want ErrTokenMangled", name, err)
		}
	}
}

func TestTokenOtherErrors(t *testing.T) {
	s := encode(t, testToken())
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"", ErrNotToken},
		{"hello", ErrNotToken},
		{s[len(TokenPrefix):], ErrNotToken},
		{"keytool-join-2:" + s[len(TokenPrefix):], ErrTokenVersion},
	} {
		if _, err := DecodeToken(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("DecodeToken(%.20q): got %v, want %v", tc.in, err, tc.want)
		}
	}
}

func TestTokenValidation(t *testing.T) {
	for name, mod := range map[string]func(*Token){
		"no address":       func(t *Token) { t.Addresses = nil },
		"no port":          func(t *Token) { t.Addresses = []string{"db.example"} },
		"port 0":           func(t *Token) { t.Addresses = []string{"db.example:0"} },
		"wildcard":         func(t *Token) { t.Addresses = []string{"*.example:1"} },
		"name with slash":  func(t *Token) { t.Name = "a/b" },
		"name dot-dot":     func(t *Token) { t.Name = ".." },
		"name newline":     func(t *Token) { t.Name = "a\nb" },
		"no expiry":        func(t *Token) { t.Expires = time.Time{} },
		"too many address": func(t *Token) { t.Addresses = make([]string, 17); fillAddrs(t.Addresses) },
	} {
		tok := testToken()
		mod(&tok)
		if _, err := tok.Encode(); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
}

// TestTokenAddressesPrintable: a token comes from anyone (its checksum is
// no signature), and join prints its addresses before it dials them: an
// address with a C1 control (CSI), a bidi override or bytes that are not
// UTF-8 is refused, by Encode and by DecodeToken, as the space and the
// C0 controls are.
func TestTokenAddressesPrintable(t *testing.T) {
	for _, addr := range []string{"db\u009b2J.example:1", "\u202eelpmaxe.bd:1", "db\u200b.example:1", "db\xff.example:1", "db\u00a0x:1"} {
		tok := testToken()
		tok.Addresses = []string{addr}
		if _, err := tok.Encode(); err == nil {
			t.Errorf("%q: encoded", addr)
		}
		if _, err := DecodeToken(tok.encode()); !errors.Is(err, ErrTokenMalformed) {
			t.Errorf("%q: decoded: %v", addr, err)
		}
	}
	tok := testToken()
	tok.Addresses = []string{"bücher.example:443"}
	if got, err := DecodeToken(encode(t, tok)); err != nil || got.Addresses[0] != tok.Addresses[0] {
		t.Errorf("a printable name: %v %v", got.Addresses, err)
	}
}

func fillAddrs(a []string) {
	for i := range a {
		a[i] = "h:1"
	}
}

// FuzzDecodeToken: DecodeToken never panics, returns typed errors only,
// and what it accepts encodes back to the same string.
func FuzzDecodeToken(f *testing.F) {
	s, _ := testToken().Encode()
	f.Add(s)
	f.Add(s[:len(s)-3])
	f.Add(s[:50] + "A" + s[51:])
	f.Add(TokenPrefix)
	f.Add("keytool-join-9:AAAA")
	f.Add("")
	f.Fuzz(decodesBack)
}

// decodesBack is the property both token fuzz targets check: DecodeToken
// refuses in with a *TokenError, or returns a token that encodes back to
// in, white space removed.
func decodesBack(t *testing.T, in string) {
	tok, err := DecodeToken(in)
	if err != nil {
		var te *TokenError
		if !errors.As(err, &te) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		return
	}
	out, err := tok.Encode()
	if err != nil {
		t.Fatalf("decoded token does not encode: %v", err)
	}
	if norm := strings.Join(strings.Fields(in), ""); out != norm {
		t.Fatalf("re-encoded %q, input %q", out, norm)
	}
}

// FuzzDecodeTokenPayload fuzzes what FuzzDecodeToken cannot reach: the
// layout inside a token whose checksum is right (a fuzzer does not forge
// SHA-256 sums, so mutated tokens stop at the checksum). The input is
// the payload; the checksum and encoding are added here.
func FuzzDecodeTokenPayload(f *testing.F) {
	s, _ := testToken().Encode()
	raw, _ := base64.RawURLEncoding.DecodeString(s[len(TokenPrefix):])
	good := raw[:len(raw)-checksumSize]
	f.Add(good)
	f.Add(good[:len(good)-1])                 // truncated address
	f.Add(append(slices.Clone(good), 0))      // a byte too many
	f.Add(append(slices.Clone(good[:73]), 0)) // a name, no addresses
	bad := slices.Clone(good)
	binary.BigEndian.PutUint64(bad[64:72], 0) // expiry out of range
	f.Add(bad)
	f.Fuzz(func(t *testing.T, payload []byte) {
		sum := sha256.Sum256(payload)
		decodesBack(t, TokenPrefix+base64.RawURLEncoding.EncodeToString(append(slices.Clone(payload), sum[:checksumSize]...)))
	})
}

// A token made before the name rule grew stricter — its name mixes
// scripts, refused since 2026-12-03, or holds a character not shown as
// itself — is intact and was made by keytool invite: it is refused as a
// name this keytool does not accept (ErrTokenName, the rule's refusal
// kept for errors.As), not as a malformed token "not made by keytool
// invite", which sent its holder looking for a forgery. A name the rule
// always refused (a leading dot) is still malformed.
func TestTokenNameRefusedByTheRule(t *testing.T) {
	for _, name := range []string{"\u0430dmin", "lap\u200btop"} {
		tok := testToken()
		tok.Name = name
		_, err := DecodeToken(tok.encode())
		var script *keydir.NameScriptError
		var char *keydir.NameCharError
		if !errors.Is(err, ErrTokenName) || !(errors.As(err, &script) || errors.As(err, &char)) {
			t.Errorf("%q: %v; want ErrTokenName with the rule's refusal", name, err)
			continue
		}
		if errors.Is(err, ErrTokenMalformed) || !strings.Contains(err.Error(), "the token's name is refused by this keytool's name rule") || strings.Contains(err.Error(), name) {
			t.Errorf("%q: message %q", name, err)
		}
	}
	tok := testToken()
	tok.Name = ".hidden"
	if _, err := DecodeToken(tok.encode()); !errors.Is(err, ErrTokenMalformed) {
		t.Errorf(".hidden: %v; want ErrTokenMalformed", err)
	}
}
