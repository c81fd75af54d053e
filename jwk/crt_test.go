package jwk

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"testing"
)

// An RSA private JWK's dp, dq and qi must be all present or all absent,
// and be what d, p and q give (checkRSACRT): a wrong one, read from a real
// file, is a *CRTError naming it, for keys go-jose reads and keys keytool
// reads itself (more than 4096 bits) alike. Go's Validate alone let a wrong
// dp through when dq or qi was absent, and export wrote it back.
func TestRSACRTChecked(t *testing.T) {
	dir := t.TempDir()
	for _, k := range []*Key{testKey(t, RSA2048), bigRSA(t)} {
		full := mustMarshal(t, k, JWK, true)
		edit := func(f func(m map[string]any)) []byte {
			m := jsonObject(t, full)
			f(m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		bump := func(name string) func(m map[string]any) {
			return func(m map[string]any) {
				b, _ := base64.RawURLEncoding.DecodeString(m[name].(string))
				v := new(big.Int).Add(new(big.Int).SetBytes(b), big.NewInt(2))
				m[name] = base64.RawURLEncoding.EncodeToString(v.Bytes())
			}
		}
		for _, c := range []struct {
			name    string
			data    []byte
			member  string
			missing bool
		}{
			{"dp wrong, dq and qi absent", edit(func(m map[string]any) { bump("dp")(m); delete(m, "dq"); delete(m, "qi") }), "dq", true},
			{"dp wrong", edit(bump("dp")), "dp", false},
			{"dq wrong", edit(bump("dq")), "dq", false},
			{"qi wrong", edit(bump("qi")), "qi", false},
			{"dp and dq swapped", edit(func(m map[string]any) { m["dp"], m["dq"] = m["dq"], m["dp"] }), "dp", false},
			{"qi absent", edit(func(m map[string]any) { delete(m, "qi") }), "qi", true},
			{"dp absent", edit(func(m map[string]any) { delete(m, "dp") }), "dp", true},
			{"dq and qi absent", edit(func(m map[string]any) { delete(m, "dq"); delete(m, "qi") }), "dq", true},
		} {
			path := writeFile(t, dir, "key.json", c.data, 0o600)
			_, err := ReadFile(path)
			pe := asParseError(t, err)
			var ce *CRTError
			if !errors.As(err, &ce) || pe.Member != c.member || ce.Member != c.member || ce.Missing != c.missing || pe.File != path {
				t.Errorf("%s %s: %v (member %q), want a *CRTError on %q (missing %v)", k.Algorithm(), c.name, err, pe.Member, c.member, c.missing)
			}
		}

		// Without any of the three, the key reads, and is written back
		// with the values d, p and q give.
		bare := edit(func(m map[string]any) { delete(m, "dp"); delete(m, "dq"); delete(m, "qi") })
		back, err := ReadPrivateKeyFile(writeFile(t, dir, "key.json", bare, 0o600))
		if err != nil {
			t.Fatalf("%s without dp, dq, qi: %v", k.Algorithm(), err)
		}
		want := k.Signer().(*rsa.PrivateKey).Precomputed
		got := jsonObject(t, mustMarshal(t, back, JWK, true))
		for name, v := range map[string]*big.Int{"dp": want.Dp, "dq": want.Dq, "qi": want.Qinv} {
			if s, _ := got[name].(string); s != base64.RawURLEncoding.EncodeToString(v.Bytes()) {
				t.Errorf("%s: written %s %q, want the value of d, p and q", k.Algorithm(), name, s)
			}
		}
	}
}
