package jwk

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"math/big"
	mathrand "math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The fast path for public EC and Ed25519 keys (fastkey.go) against
// go-jose. FuzzFastKey is the proof the decoder rule asks for
// (docs/design.md, "One decoder rule"):
//
//	go test -run '^$' -fuzz '^FuzzFastKey$' ./jwk

// fastSeeds are JWKs around the fast path's edges: the keys it takes,
// with and without attributes, and every way to be just outside it.
func fastSeeds(tb testing.TB) []string {
	var out []string
	for _, typ := range []Type{EC256, EC384, EC521, Ed25519} {
		k := testKey(tb, typ)
		pub := string(mustMarshal(tb, k, JWK, false))
		priv := string(mustMarshal(tb, k, JWK, true))
		withKID := strings.Replace(pub, "{", `{"kid":"`+k.KeyID()+`",`, 1)
		out = append(out, pub, priv, withKID,
			strings.Replace(pub, "{", `{"kid":"AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA:AAAA",`, 1),
			strings.Replace(pub, "{", `{"kid":"label","comment":"c","expires":"2030-01-01T00:00:00Z","address":["10.0.0.1"],"x-other":[1,{"a":null}],`, 1),
			strings.Replace(pub, "{", `{"use":"sig",`, 1),
			strings.Replace(pub, "{", `{"alg":"ES256",`, 1),
			strings.Replace(pub, "{", `{"use":1,`, 1),
			strings.Replace(pub, "{", `{"key_ops":["verify"],`, 1),
			strings.Replace(pub, "{", `{"use":"enc",`, 1),
			strings.Replace(pub, "{", `{"key_ops":["sign"],`, 1),
			strings.Replace(priv, "{", `{"key_ops":["sign"],`, 1),
			strings.Replace(pub, "{", `{"x5c":["AAAA"],`, 1),
			strings.Replace(pub, "{", `{"x5t":"AAAA",`, 1),
			strings.Replace(pub, "{", `{"d":"AAAA",`, 1),
			strings.Replace(pub, "{", `{"k":"",`, 1),
			strings.Replace(pub, "{", `{"n":"AQAB","e":"AQAB",`, 1),
			strings.Replace(pub, `"kty"`, `"\u006bty"`, 1),
			strings.Replace(pub, `"x"`, `"\u0078"`, 1),
		)
		for _, c := range []string{"P-256", "P-384", "P-521", "Ed25519"} {
			out = append(out,
				strings.Replace(pub, `"`+c+`"`, `"`+strings.Replace(c, "-", `\u002d`, 1)+`"`, 1),
				strings.Replace(pub, `"`+c+`"`, `"`+strings.ToLower(c)+`"`, 1),
				strings.Replace(pub, `"`+c+`"`, `"`+c+` "`, 1),
				strings.Replace(pub, `"`+c+`"`, `"X25519"`, 1),
				strings.Replace(pub, `"`+c+`"`, `"P-224"`, 1),
			)
		}
		// An alg that fits the key, one for another curve or family, an
		// HMAC one, and one keytool does not know (checkAlg).
		for _, alg := range []string{"ES384", "ES512", "EdDSA", "RS256", "PS256", "HS256", "ES256K"} {
			out = append(out, strings.Replace(pub, "{", `{"alg":"`+alg+`",`, 1))
		}
		out = append(out, strings.Replace(pub, `"EC"`, `"OKP"`, 1), strings.Replace(pub, `"OKP"`, `"EC"`, 1))
		for _, name := range []string{"x", "y"} {
			raw := memberOf(tb, pub, name)
			if raw == "" {
				out = append(out, strings.Replace(pub, "}", `,"y":"`+base64.RawURLEncoding.EncodeToString(make([]byte, 32))+`"}`, 1))
				continue
			}
			v := raw[1 : len(raw)-1]
			last := v[len(v)-1]
			for _, nv := range []string{
				"", v + "=", v[:len(v)-1], v + "A", v[:len(v)-1] + string(last^1), v[:len(v)-1] + string(last^2),
				"AA" + v[2:], strings.ToUpper(v), `\u0041` + v[1:], " " + v,
			} {
				out = append(out, strings.Replace(pub, raw, `"`+nv+`"`, 1))
			}
			out = append(out, strings.Replace(pub, raw, "null", 1), strings.Replace(pub, raw, "1", 1))
		}
	}
	// Coordinates of the exact size that are not field elements (p itself,
	// all ones), and the points (0, 0) and (0, sqrt(b)) ...
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		size := (c.Params().BitSize + 7) / 8
		p := c.Params().P.FillBytes(make([]byte, size))
		ones := make([]byte, size)
		for i := range ones {
			ones[i] = 0xff
		}
		zero := make([]byte, size)
		gx, gy := c.Params().Gx.FillBytes(make([]byte, size)), c.Params().Gy.FillBytes(make([]byte, size))
		gyp := new(big.Int).Add(c.Params().Gy, c.Params().P)
		for _, xy := range [][2][]byte{{p, gy}, {gx, p}, {ones, gy}, {zero, zero}, {gx, gy}, {gx, zero}} {
			out = append(out, ecPointJWK(c.Params().Name, xy[0], xy[1]))
		}
		if gyp.BitLen() <= size*8 {
			out = append(out, ecPointJWK(c.Params().Name, gx, gyp.FillBytes(make([]byte, size))))
		}
	}
	for w := range weakEd25519 {
		out = append(out, `{"kty":"OKP","crv":"Ed25519","x":"`+base64.RawURLEncoding.EncodeToString(w[:])+`"}`)
	}
	return append(out, hostileSeeds()...)
}

// hostileSeeds are the shapes an attacker would try on the fast path, so
// that every test run compares both decoders on them: more members than
// memberKinds remembers (key material past the 16th), a private member
// that decodes to nothing ("d":"", which go-jose takes for no d), names
// that are "kty" or "x" to one reader and not to another (escaped, a case
// variant, the Kelvin sign, a NUL), values of the wrong JSON type, a y on
// an OKP key, swapped coordinates, a P-521 coordinate of the exact size
// above the prime, the standard alphabet's '+' and '/', and a body with a
// byte order mark, a NUL or data after it.
func hostileSeeds() []string {
	ec := ecJWK(vecX, vecY)
	okp := `{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`
	var many strings.Builder
	for i := range 17 {
		many.WriteString(`"a` + strconv.Itoa(i) + `":` + strconv.Itoa(i) + `,`)
	}
	p521 := elliptic.P521().Params()
	above := new(big.Int).Add(p521.P, big.NewInt(1)).FillBytes(make([]byte, 66))
	return []string{
		"{" + many.String() + ec[1:],
		strings.Replace(ec, `"x"`, many.String()+`"x"`, 1),
		strings.Replace(ec, `"y"`, many.String()+`"y"`, 1),
		strings.Replace(ec, "{", "{"+many.String()+`"d":"",`, 1),
		strings.Replace(ec, "{", `{"d":"",`, 1),
		strings.Replace(okp, "{", `{"d":"",`, 1),
		strings.Replace(okp, "{", `{"priv":"",`, 1),
		strings.Replace(ec, "{", `{"D":"AAAA",`, 1),
		strings.Replace(ec, "{", `{"KTY":"EC",`, 1),
		strings.Replace(ec, `"kty"`, `"KTY"`, 1),
		strings.Replace(ec, `"kty"`, "\"\u212aty\"", 1),
		strings.Replace(ec, `"kty"`, `"\u212aty"`, 1),
		strings.Replace(ec, `"x"`, `"X"`, 1),
		strings.Replace(ec, `"kty"`, `"k\u0074y"`, 1),
		strings.Replace(ec, `"kty"`, `"kty\u0000"`, 1),
		strings.Replace(ec, `"EC"`, `"EC\u0000"`, 1),
		strings.Replace(ec, `"P-256"`, `"P-256\u0000"`, 1),
		strings.Replace(ec, `"x":"`+vecX+`"`, `"x":["`+vecX+`"]`, 1),
		strings.Replace(ec, `"x":"`+vecX+`"`, `"x":{"x":"`+vecX+`"}`, 1),
		strings.Replace(ec, `"x":"`+vecX+`"`, `"x":123456789012345678901234567890e999`, 1),
		strings.Replace(ec, `"EC"`, `["EC"]`, 1),
		strings.Replace(ec, `"P-256"`, `null`, 1),
		strings.Replace(ec, `"y":"`+vecY+`"`, `"y":""`, 1),
		strings.Replace(ec, `"x":"`+vecX+`"`, `"x":""`, 1),
		ecJWK(vecY, vecX),
		ecJWK("+"+vecX[1:], vecY),
		ecJWK(vecX, vecY[:len(vecY)-1]+"/"),
		ecJWK(vecX+"=", vecY),
		ecJWK(vecX+`\n`, vecY),
		strings.Replace(okp, "}", `,"y":"`+vecY+`"}`, 1),
		strings.Replace(okp, "}", `,"y":""}`, 1),
		ecPointJWK("P-521", above, p521.Gy.FillBytes(make([]byte, 66))),
		ecPointJWK("P-521", p521.Gx.FillBytes(make([]byte, 66)), above),
		strings.Replace(ec, "{", `{"x-deep":`+strings.Repeat("[", 30)+strings.Repeat("]", 30)+`,`, 1),
		strings.Replace(ec, "{", `{"x-deep":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`,`, 1),
		strings.Replace(ec, "{", `{"kid":"`+strings.Repeat("A", 1<<12)+`",`, 1),
		strings.Replace(ec, "{", `{"use":"sig","use":"enc",`, 1),
		"\xef\xbb\xbf" + ec,
		ec + "\x00",
		ec + "x",
		ec + "{}",
		" \t\r\n" + ec + " \n",
	}
}

func ecPointJWK(crv string, x, y []byte) string {
	return `{"kty":"EC","crv":"` + crv + `","x":"` + base64.RawURLEncoding.EncodeToString(x) + `","y":"` + base64.RawURLEncoding.EncodeToString(y) + `"}`
}

// memberOf returns the raw value of the member name of the JSON object
// data, or "".
func memberOf(tb testing.TB, data, name string) string {
	s := jsonScanner{data: []byte(data)}
	ms, err := s.members(0, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return string(memberValue(ms, name))
}

// FuzzFastKey reads any JSON object as a JWK twice, with the fast path
// and with go-jose alone, and requires the same outcome: the same error
// (message and member) or the same key — the same public key, SPKI and
// identity, no private half, and the same attributes. Where the fast path
// takes a key, go-jose must take it too, as the same key.
func FuzzFastKey(f *testing.F) {
	for _, s := range fastSeeds(f) {
		f.Add([]byte(s))
	}
	addFileSeeds(f)
	addKeySeeds(f)
	f.Fuzz(bothDecoders)
}

// sameKey fails unless a and b are the same key with the same attributes.
func sameKey(t *testing.T, a, b *Key, data []byte) {
	t.Helper()
	if reflect.TypeOf(a.public) != reflect.TypeOf(b.public) {
		t.Fatalf("key types differ: %T and %T\n%s", a.public, b.public, data)
	}
	if eq, ok := a.public.(interface{ Equal(crypto.PublicKey) bool }); !ok || !eq.Equal(b.public) {
		t.Fatalf("public keys differ\n%s", data)
	}
	if ea, ok := a.public.(*ecdsa.PublicKey); ok && ea.Curve != b.public.(*ecdsa.PublicKey).Curve {
		t.Fatalf("curves differ\n%s", data)
	}
	if string(a.spki) != string(b.spki) || a.sum != b.sum {
		t.Fatalf("SPKI differs\n%s", data)
	}
	if (a.private == nil) != (b.private == nil) || (a.private != nil && !reflect.DeepEqual(a.private, b.private)) {
		t.Fatalf("private halves differ\n%s", data)
	}
	if !reflect.DeepEqual(a.Attrs, b.Attrs) {
		t.Fatalf("attributes differ: %q and %q\n%s", a.Attrs, b.Attrs, data)
	}
}

// TestFastKeyTakesTrustStoreKeys checks that the fast path does read the
// keys a trust store is made of — public EC and Ed25519 keys, bare or
// with keytool's attributes and a kid — and leaves the others to go-jose.
func TestFastKeyTakesTrustStoreKeys(t *testing.T) {
	taken := func(data string) bool {
		s := jsonScanner{data: []byte(data)}
		ms, err := s.members(0, nil)
		if err != nil {
			t.Fatal(err)
		}
		kinds := memberKinds{ms: ms}
		if _, _, _, err := kinds.scan(); err != nil {
			t.Fatal(err)
		}
		return fastPublicKey(&kinds) != nil
	}
	for _, typ := range testTypes {
		k := testKey(t, typ)
		for _, attrs := range []bool{false, true} {
			key := k
			if attrs {
				key = withAttrs(k, fullAttrs(k))
			}
			pub := string(mustMarshal(t, key, JWK, false))
			want := typ != RSA2048
			if got := taken(pub); got != want {
				t.Errorf("%s (attributes %v): fast path took it: %v, want %v\n%s", typ, attrs, got, want, pub)
			}
			if taken(string(mustMarshal(t, key, JWK, true))) {
				t.Errorf("%s: the fast path took a private key", typ)
			}
			for _, extra := range []string{`"use":"sig"`, `"alg":"ES256"`, `"x5c":["AAAA"]`, `"d":"AAAA"`} {
				if taken(strings.Replace(pub, "{", "{"+extra+",", 1)) {
					t.Errorf("%s: the fast path took a key with %s", typ, extra)
				}
			}
		}
	}
}

// TestFastKeyWeakEd25519 checks that go-jose refuses every low-order
// Ed25519 key the fast path leaves to it, and that Parse refuses each.
func TestFastKeyWeakEd25519(t *testing.T) {
	for w := range weakEd25519 {
		data := `{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(w[:]) + `"}`
		if fastEd25519Key([]byte(`"`+base64.RawURLEncoding.EncodeToString(w[:])+`"`)) != nil {
			t.Errorf("fast path took %x", w)
		}
		if _, err := Parse([]byte(data)); err == nil || !strings.Contains(err.Error(), "low-order") {
			t.Errorf("%x: %v, want go-jose's low-order refusal", w, err)
		}
	}
	var good [32]byte
	good[0] = 9
	if fastEd25519Key([]byte(`"` + base64.RawURLEncoding.EncodeToString(good[:]) + `"`)).(ed25519.PublicKey)[0] != 9 {
		t.Error("fast path refused an ordinary Ed25519 key")
	}
}

// TestFastKeySeedsAgree runs the fast path's seeds through both decoders
// in every test run (the fuzz target replays them too, but this names
// each).
func TestFastKeySeedsAgree(t *testing.T) {
	for _, data := range fastSeeds(t) {
		bothDecoders(t, []byte(data))
	}
}

// TestFastKeyRandomPoints compares the two decoders on fresh keys of
// every curve the fast path takes and on each with one character of x or
// y changed (almost always a point off the curve, sometimes only the
// unused bits of the last character): valid points are what a fuzzer
// seldom makes by itself.
func TestFastKeyRandomPoints(t *testing.T) {
	rounds := 40
	if testing.Short() {
		rounds = 8
	}
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	for _, typ := range []Type{EC256, EC384, EC521, Ed25519} {
		for range rounds {
			k, err := Generate(typ)
			if err != nil {
				t.Fatal(err)
			}
			pub := string(mustMarshal(t, k.PublicKey(), JWK, false))
			variants := []string{pub}
			for _, name := range []string{"x", "y"} {
				raw := memberOf(t, pub, name)
				if raw == "" {
					continue
				}
				v := []byte(raw[1 : len(raw)-1])
				i := rng.IntN(len(v))
				v[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[rng.IntN(64)]
				variants = append(variants, strings.Replace(pub, raw, `"`+string(v)+`"`, 1))
			}
			for _, data := range variants {
				bothDecoders(t, []byte(data))
			}
		}
	}
}

// bothDecoders reads the JSON object data with the fast path and with
// go-jose alone and fails unless both give the same error or the same key.
func bothDecoders(t *testing.T, data []byte) {
	t.Helper()
	s := jsonScanner{data: data}
	ms, err := s.members(0, nil)
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return
	}
	fast, fm, ferr := keyFromMembersVia(data, ms, true)
	ref, rm, rerr := keyFromMembersVia(data, ms, false)
	switch {
	case (ferr == nil) != (rerr == nil):
		t.Fatalf("fast path: %v (member %q); go-jose alone: %v (member %q)\n%s", ferr, fm, rerr, rm, data)
	case ferr != nil && (ferr.Error() != rerr.Error() || fm != rm):
		t.Fatalf("errors differ: fast path %q (member %q), go-jose alone %q (member %q)\n%s", ferr, fm, rerr, rm, data)
	case ferr == nil:
		sameKey(t, fast, ref, data)
	}
}
