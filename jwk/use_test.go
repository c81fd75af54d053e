package jwk

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// withMember returns the JWK object obj with the member name: raw added
// first.
func withMember(obj, name, raw string) string {
	return strings.Replace(obj, "{", `{"`+name+`":`+raw+",", 1)
}

// The rule of what a key is for (use.go), on every type, public and
// private, read from a real file: what is allowed reads, what is not is a
// *UseError naming the member, in a *ParseError naming the file.
func TestUseAndKeyOps(t *testing.T) {
	dir := t.TempDir()
	for _, typ := range testTypes {
		k := testKey(t, typ)
		for _, private := range []bool{false, true} {
			obj := string(mustMarshal(t, k, JWK, private))
			own, other := "verify", "sign"
			if private {
				own, other = "sign", "verify"
			}
			for _, c := range []struct {
				name, member, raw string
				refused           string // the member refused, "" if the key reads
			}{
				{"use sig", "use", `"sig"`, ""},
				{"use enc", "use", `"enc"`, "use"},
				{"use SIG", "use", `"SIG"`, "use"},
				{"use empty", "use", `""`, "use"},
				{"key_ops own", "key_ops", `["` + own + `"]`, ""},
				{"key_ops both", "key_ops", `["sign","verify"]`, ""},
				{"key_ops other half only", "key_ops", `["` + other + `"]`, "key_ops"},
				{"key_ops encrypt", "key_ops", `["encrypt"]`, "key_ops"},
				{"key_ops own and decrypt", "key_ops", `["` + own + `","decrypt"]`, "key_ops"},
				{"key_ops empty", "key_ops", `[]`, "key_ops"},
				{"key_ops twice", "key_ops", `["` + own + `","` + own + `"]`, "key_ops"},
				{"key_ops a string", "key_ops", `"` + own + `"`, "key_ops"},
				{"key_ops null", "key_ops", `null`, "key_ops"},
				{"key_ops numbers", "key_ops", `[1]`, "key_ops"},
			} {
				data := withMember(obj, c.member, c.raw)
				path := writeFile(t, dir, "key.json", []byte(data), 0o600)
				keys, err := ReadFile(path)
				if c.refused == "" {
					if err != nil {
						t.Errorf("%s %v %s: %v", typ, private, c.name, err)
					} else if keys[0].IsPrivate() != private {
						t.Errorf("%s %v %s: read private %v", typ, private, c.name, keys[0].IsPrivate())
					}
					continue
				}
				pe := asParseError(t, err)
				var ue *UseError
				if !errors.As(err, &ue) || pe.Member != c.refused || ue.Member != c.refused || pe.File != path {
					t.Errorf("%s %v %s: %v (member %q, file %q), want a *UseError on %q", typ, private, c.name, err, pe.Member, pe.File, c.refused)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("%s: error on several lines: %q", c.name, err)
				}
			}
		}
	}
}

// use and key_ops must agree (RFC 7517 section 4.3): use "enc" is refused
// whatever key_ops says, and the message names both.
func TestUseContradictsKeyOps(t *testing.T) {
	obj := string(mustMarshal(t, testKey(t, EC256), JWK, false))
	data := withMember(withMember(obj, "use", `"enc"`), "key_ops", `["verify"]`)
	_, err := Parse([]byte(data))
	pe := asParseError(t, err)
	if pe.Member != "use" {
		t.Fatalf("%v: member %q, want use", err, pe.Member)
	}
	wantSubstrings(t, err.Error(), `member "use": use "enc" is not "sig"`, `key_ops ["verify"] must agree`)
	if _, err := Parse([]byte(withMember(withMember(obj, "use", `"sig"`), "key_ops", `["verify"]`))); err != nil {
		t.Errorf("use sig with key_ops verify: %v", err)
	}
}

// A PEM header "use" is the same attribute, under the same rule.
func TestUsePEMHeader(t *testing.T) {
	k := testKey(t, EC256)
	for _, private := range []bool{false, true} {
		for use, ok := range map[string]bool{"sig": true, "enc": false} {
			pemData := mustMarshal(t, withAttrs(k, Attributes{"use": []byte(`"` + use + `"`)}), PEM, private)
			path := writeFile(t, t.TempDir(), "key.pem", pemData, 0o600)
			_, err := ReadFile(path)
			var ue *UseError
			if ok != (err == nil) || !ok && (!errors.As(err, &ue) || asParseError(t, err).Line != 1) {
				t.Errorf("private %v, use %s: %v", private, use, err)
			}
		}
	}
}

// A JWK Set's entry marked for encryption is skipped alone, as any bad
// entry, and reported by its member: keys[1].use.
func TestUseInSet(t *testing.T) {
	a := string(mustMarshal(t, testKey(t, EC256), JWK, false))
	b := string(mustMarshal(t, testKey(t, Ed25519), JWK, false))
	set := `{"keys":[` + a + "," + withMember(b, "use", `"enc"`) + "]}"
	entries, err := ParseSet([]byte(set))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 || entries[0].Err != nil || entries[1].Err == nil || entries[1].Err.Member != "keys[1].use" {
		t.Fatalf("entries: %+v", entries)
	}
	if _, err := Parse([]byte(set)); err == nil {
		t.Error("Parse read a set with a key for encryption")
	}
}

// An "alg" naming an encryption algorithm (RFC 7518 section 4.1) marks a
// key for encryption as "use":"enc" does: refused, naming the member,
// public and private, on the fast path's key types, go-jose's and the big
// RSA keys' own decoder alike; a signature algorithm, or a name keytool
// does not know, is left alone; ParseAnyUse still returns the key.
func TestAlgForEncryption(t *testing.T) {
	for _, c := range []struct {
		k       *Key
		alg     string
		refused bool
	}{
		{testKey(t, EC256), "ECDH-ES", true},
		{testKey(t, EC256), "ECDH-ES+A128KW", true},
		{testKey(t, Ed25519), "ECDH-ES", true},
		{testKey(t, RSA2048), "RSA-OAEP", true},
		{testKey(t, RSA2048), "RSA1_5", true},
		{bigRSA(t), "RSA-OAEP-256", true},
		{testKey(t, EC256), "ES256", false},
		{testKey(t, RSA2048), "PS256", false},
		{bigRSA(t), "RS512", false},
		{testKey(t, Ed25519), "EdDSA", false},
		{testKey(t, EC256), "x-private-name", false},
	} {
		for _, private := range []bool{false, true} {
			obj := withMember(string(mustMarshal(t, c.k, JWK, private)), "alg", `"`+c.alg+`"`)
			_, err := Parse([]byte(obj))
			var ue *UseError
			var pe *ParseError
			switch {
			case c.refused && (!errors.As(err, &ue) || !errors.As(err, &pe) || pe.Member != "alg"):
				t.Errorf("%s %v private=%v: %v, want a *UseError on member alg", c.alg, c.k.Type(), private, err)
			case !c.refused && err != nil:
				t.Errorf("%s %v private=%v: %v, want the key", c.alg, c.k.Type(), private, err)
			}
			if keys, err := ParseAnyUse([]byte(obj)); err != nil || len(keys) != 1 || keys[0].SPKIHash() != c.k.SPKIHash() {
				t.Errorf("ParseAnyUse %s %v private=%v: %d keys, %v", c.alg, c.k.Type(), private, len(keys), err)
			}
		}
	}
}

// ParseAnyUse, for the readers that use no key (revocation lists, edits
// and lookups of a store's files): it returns every key of a file whose
// only faults are what its keys are marked for, each as marked, in
// order, and refuses a file with any other fault, naming that one.
func TestParseAnyUse(t *testing.T) {
	a := string(mustMarshal(t, testKey(t, EC256), JWK, false))
	b := string(mustMarshal(t, testKey(t, Ed25519), JWK, false))
	c := string(mustMarshal(t, testKey(t, RSA2048), JWK, false))
	set := `{"keys":[` + withMember(a, "use", `"enc"`) + "," + b + "," + withMember(c, "key_ops", `["encrypt"]`) + "]}"
	if _, err := Parse([]byte(set)); err == nil {
		t.Fatal("Parse read a set with keys for encryption")
	}
	keys, err := ParseAnyUse([]byte(set))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("ParseAnyUse: %d keys, want the set's 3", len(keys))
	}
	for i, want := range []*Key{testKey(t, EC256), testKey(t, Ed25519), testKey(t, RSA2048)} {
		if keys[i].SPKIHash() != want.SPKIHash() {
			t.Errorf("key %d: %s, want %s", i, keys[i].Fingerprint(), want.Fingerprint())
		}
	}
	if u, _ := keys[0].Attrs.String(AttrUse); u != "enc" {
		t.Errorf("key 0 read as marked %q, want its own \"enc\"", u)
	}
	// CheckUse says of each key what Parse would refuse it for: the same
	// *UseError, naming the same member; nothing for the key it takes.
	for i, member := range []string{AttrUse, "", AttrKeyOps} {
		var ue *UseError
		err := keys[i].CheckUse()
		switch {
		case member == "" && err != nil:
			t.Errorf("key %d: CheckUse() = %v, want nil", i, err)
		case member != "" && (!errors.As(err, &ue) || ue.Member != member):
			t.Errorf("key %d: CheckUse() = %v, want a *UseError on %s", i, err, member)
		}
	}
	if _, err := Parse([]byte(withMember(a, "use", `"enc"`))); err == nil || !strings.HasSuffix(err.Error(), keys[0].CheckUse().Error()) {
		t.Errorf("Parse: %v, want it to end with CheckUse's %v", err, keys[0].CheckUse())
	}
	// Any other fault is refused, named.
	bad := `{"keys":[` + withMember(a, "use", `"enc"`) + `,{"kty":"EC","crv":"P-256","x":"AA"}]}`
	if _, err := ParseAnyUse([]byte(bad)); err == nil || !strings.Contains(err.Error(), "keys[1]") {
		t.Errorf("ParseAnyUse of a set with a malformed key: %v, want an error naming keys[1]", err)
	}
	// A single key marked for encryption, in a real file.
	path := filepath.Join(t.TempDir(), "enc.json")
	if err := os.WriteFile(path, []byte(withMember(b, "use", `"enc"`)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil {
		t.Error("ReadFile read a key for encryption")
	}
	if keys, err := ReadFileAnyUse(path); err != nil || len(keys) != 1 {
		t.Errorf("ReadFileAnyUse: %d keys, %v", len(keys), err)
	}
}

// What keytool writes reads back under the rule: the public half of a
// private key marked key_ops ["sign"] (as WebCrypto exports one) is
// marked ["verify"], in every writer of public halves; "use":"sig" is
// kept as it is.
func TestUsePublicHalfReadsBack(t *testing.T) {
	dir := t.TempDir()
	for _, typ := range testTypes {
		for _, attrs := range []Attributes{
			{"key_ops": []byte(`["sign"]`)},
			{"key_ops": []byte(`["verify","sign"]`)},
			{"key_ops": []byte(`["sign"]`), "use": []byte(`"sig"`)},
		} {
			path := writeFile(t, dir, "key.json", mustMarshal(t, withAttrs(testKey(t, typ), attrs), JWK, true), 0o600)
			k, err := ReadPrivateKeyFile(path)
			if err != nil {
				t.Fatalf("%s %s: %v", typ, attrs, err)
			}
			pubPath := filepath.Join(dir, "pub.json")
			if err := WritePublicKeyFile(pubPath, k, JWK, Overwrite); err != nil {
				t.Fatal(err)
			}
			set, err := MarshalPublicSet([]*Key{k}, JWK)
			if err != nil {
				t.Fatal(err)
			}
			written, err := os.ReadFile(pubPath)
			if err != nil {
				t.Fatal(err)
			}
			for _, data := range [][]byte{written, mustMarshal(t, k, JWK, false), mustMarshal(t, k.PublicKey(), JWK, false), set} {
				back, err := Parse(data)
				if err != nil {
					t.Fatalf("%s %s: the public half does not read back: %v\n%s", typ, attrs, err, data)
				}
				if got := canonical(t, back[0].Attrs["key_ops"]); got != `["verify"]` {
					t.Errorf("%s %s: public key_ops %s, want [\"verify\"]", typ, attrs, got)
				}
				if _, ok := attrs["use"]; ok && string(back[0].Attrs["use"]) != `"sig"` {
					t.Errorf("%s: use %s", typ, back[0].Attrs["use"])
				}
			}
			// The private key itself is written back unchanged.
			if again, err := Parse(mustMarshal(t, k, JWK, true)); err != nil || canonical(t, again[0].Attrs["key_ops"]) != canonical(t, attrs["key_ops"]) {
				t.Errorf("%s: private key_ops %s, %v", typ, again[0].Attrs["key_ops"], err)
			}
		}
	}
}

// A signature algorithm in "alg" must fit the key (RFC 7518 section 3.1,
// RFC 8037 section 3.1, RFC 9864): ES256, ES384 and ES512 the EC keys on
// P-256, P-384 and P-521, EdDSA and Ed25519 an Ed25519 key, Ed448 none
// keytool reads, the RS and PS algorithms an RSA
// key, and HS (HMAC) none keytool reads. Any other is refused, public or
// private, a *UseError on member alg, whichever decoder read the key (the
// fast path, go-jose, the big RSA keys' own), the same by both when the
// fast path could have taken it; ParseAnyUse still returns the key. Names
// keytool does not know are left alone.
func TestAlgFitsKey(t *testing.T) {
	fits := map[Type][]string{ // written out, not derived from signatureAlgs
		EC256:   {"ES256"},
		EC384:   {"ES384"},
		EC521:   {"ES512"},
		Ed25519: {"EdDSA", "Ed25519"},
		RSA2048: {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
	}
	known := []string{"ES256", "ES384", "ES512", "EdDSA", "Ed25519", "Ed448", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "HS256", "HS384", "HS512"}
	unknown := []string{"ES256K", "ESP256", "x-private-name", "es256", "ed25519", "RS1", ""}
	keys := map[*Key][]string{bigRSA(t): fits[RSA2048]}
	for _, typ := range testTypes {
		keys[testKey(t, typ)] = fits[typ]
	}
	for k, ok := range keys {
		for _, alg := range append(known, unknown...) {
			refused := slices.Contains(known, alg) && !slices.Contains(ok, alg)
			for _, private := range []bool{false, true} {
				obj := withMember(string(mustMarshal(t, k, JWK, private)), "alg", strconv.Quote(alg))
				bothDecoders(t, []byte(obj))
				_, err := Parse([]byte(obj))
				var ue *UseError
				var pe *ParseError
				switch {
				case refused && (!errors.As(err, &ue) || !errors.As(err, &pe) || pe.Member != AttrAlg || ue.Member != AttrAlg):
					t.Errorf("%q on %s private=%v: %v, want a *UseError on member alg", alg, k.Algorithm(), private, err)
				case refused && !strings.Contains(err.Error(), `member "alg": alg "`+alg+`" is for `):
					t.Errorf("%q on %s: %v, want the error to name the member, its value and the keys it is for", alg, k.Algorithm(), err)
				case !refused && err != nil:
					t.Errorf("%q on %s private=%v: %v, want the key", alg, k.Algorithm(), private, err)
				}
				if got, err := ParseAnyUse([]byte(obj)); err != nil || len(got) != 1 || got[0].SPKIHash() != k.SPKIHash() {
					t.Errorf("ParseAnyUse %q on %s private=%v: %d keys, %v", alg, k.Algorithm(), private, len(got), err)
				}
			}
		}
	}
}

// Known answers: the example keys of the JOSE RFCs, with the algorithm
// each RFC signs with them and with one that does not fit.
func TestAlgFitsKeyVectors(t *testing.T) {
	rfc7517 := string(repoFile(t, "vectors/rfc7517-a1-ec-public.json")) // P-256, marked "use":"enc"
	rfc7517 = strings.Replace(rfc7517, `"use":"enc",`, "", 1)
	if strings.Contains(rfc7517, `"use"`) {
		t.Fatalf("RFC 7517 A.1 key still marked: %s", rfc7517)
	}
	rfc7638 := string(repoFile(t, "vectors/rfc7638-rsa-public.json")) // RSA, "alg":"RS256" as printed
	for _, c := range []struct {
		what, jwk, alg string
		refused        bool
	}{
		{"RFC 7638 3.1 RSA key as printed", rfc7638, "", false},
		{"RFC 7638 3.1 RSA key", strings.Replace(rfc7638, `"RS256"`, `"ES256"`, 1), "", true},
		{"RFC 7638 3.1 RSA key", strings.Replace(rfc7638, `"RS256"`, `"EdDSA"`, 1), "", true},
		{"RFC 7638 3.1 RSA key", strings.Replace(rfc7638, `"RS256"`, `"PS512"`, 1), "", false},
		{"RFC 7517 A.1 EC P-256 key", rfc7517, "ES256", false},
		{"RFC 7517 A.1 EC P-256 key", rfc7517, "ES384", true},
		{"RFC 7517 A.1 EC P-256 key", rfc7517, "RS256", true},
		{"RFC 7515 A.3 EC P-256 key", rfc7515A3, "ES256", false},
		{"RFC 7515 A.3 EC P-256 key", rfc7515A3, "ES512", true},
		{"RFC 7515 A.4 EC P-521 key", rfc7515A4, "ES512", false},
		{"RFC 7515 A.4 EC P-521 key", rfc7515A4, "ES256", true},
		{"RFC 8037 A.2 Ed25519 key", rfc8037A2, "EdDSA", false},
		{"RFC 8037 A.2 Ed25519 key", rfc8037A2, "ES256", true},
	} {
		data := c.jwk
		if c.alg != "" {
			data = withMember(data, "alg", strconv.Quote(c.alg))
		}
		_, err := Parse([]byte(data))
		var ue *UseError
		switch {
		case c.refused && (!errors.As(err, &ue) || ue.Member != AttrAlg):
			t.Errorf("%s with alg %s: %v, want a *UseError on alg", c.what, c.alg, err)
		case !c.refused && err != nil:
			t.Errorf("%s with alg %s: %v", c.what, c.alg, err)
		}
	}
}

// The example keys of RFC 7515 (A.3, A.4: their public halves) and RFC
// 8037 (A.2).
const (
	rfc7515A3 = `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`
	rfc7515A4 = `{"kty":"EC","crv":"P-521","x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk","y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"}`
	rfc8037A2 = `{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`
)

// The alg that does not fit the key is refused in a PEM header too, and a
// set's entry so marked is skipped alone, reported by its member.
func TestAlgFitsKeyPEMAndSet(t *testing.T) {
	k := testKey(t, EC256)
	for alg, ok := range map[string]bool{"ES256": true, "ES384": false, "EdDSA": false, "RS256": false} {
		pemData := mustMarshal(t, withAttrs(k, Attributes{AttrAlg: []byte(strconv.Quote(alg))}), PEM, false)
		_, err := ReadFile(writeFile(t, t.TempDir(), "key.pem", pemData, 0o644))
		var ue *UseError
		if ok != (err == nil) || !ok && (!errors.As(err, &ue) || ue.Member != AttrAlg || asParseError(t, err).Member != AttrAlg) {
			t.Errorf("PEM alg %s: %v", alg, err)
		}
	}
	a := string(mustMarshal(t, k, JWK, false))
	b := string(mustMarshal(t, testKey(t, Ed25519), JWK, false))
	set := `{"keys":[` + withMember(a, "alg", `"ES256"`) + "," + withMember(b, "alg", `"ES256"`) + "," + withMember(b, "alg", `"EdDSA"`) + "]}"
	entries, err := ParseSet([]byte(set))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || entries[0].Err != nil || entries[1].Err == nil || entries[1].Err.Member != "keys[1].alg" || entries[2].Err != nil {
		t.Fatalf("entries: %+v", entries)
	}
}
