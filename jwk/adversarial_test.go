package jwk

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A PEM "file" with a million blocks. keytool's answer is bounded by the
// 64 MiB file limit and a parser that is linear in its input:
//
//   - a million real key blocks do not fit in 64 MiB (the smallest, an
//     Ed25519 PUBLIC KEY block, takes 113 bytes), so such a file is
//     refused from its size, before it is read;
//   - a million blocks that do fit — empty skipped blocks, or BEGIN lines
//     with no END — are parsed in time and memory linear in the input,
//     and refused with a specific error;
//   - the most keys that fit (about 590,000 Ed25519 blocks in 64 MiB) load,
//     in bounded time and memory (a key file that large is legitimate:
//     an organisation's key set).
func TestMillionPEMBlocks(t *testing.T) {
	ed := testKey(t, Ed25519)
	block := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ed.SPKI()})

	t.Run("a million key blocks: refused by size", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "million.pem")
		data := bytes.Repeat(block, 1_000_000)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err := ReadFile(path)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "113000000 bytes") {
			t.Fatalf("err = %v, want ErrTooLarge for 113000000 bytes", err)
		}
		t.Logf("refused in %v", time.Since(start))
	})

	bounded := func(t *testing.T, data []byte, check func(keys []*Key, err error)) {
		t.Helper()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		keys, err := Parse(data)
		took := time.Since(start)
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%d bytes: %d keys in %v, %d MB allocated", len(data), len(keys), took.Round(time.Millisecond), alloc>>20)
		check(keys, err)
		if took > 60*time.Second {
			t.Errorf("took %v", took)
		}
		if lim := uint64(40 * len(data)); alloc > lim {
			t.Errorf("allocated %d MB for %d MB of input", alloc>>20, len(data)>>20)
		}
	}
	t.Run("a million empty skipped blocks", func(t *testing.T) {
		data := bytes.Repeat([]byte("-----BEGIN EC PARAMETERS-----\n-----END EC PARAMETERS-----\n"), 1_000_000)
		if len(data) > MaxFileSize {
			t.Fatalf("%d bytes: the case would be refused by size", len(data))
		}
		bounded(t, data, func(_ []*Key, err error) {
			if !errors.Is(err, ErrNoKey) {
				t.Errorf("err = %v, want ErrNoKey", err)
			}
		})
	})
	t.Run("a million BEGIN lines without END", func(t *testing.T) {
		data := bytes.Repeat([]byte("-----BEGIN PUBLIC KEY-----\n"), 1_000_000)
		bounded(t, data, func(_ []*Key, err error) {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line != 1 || !strings.Contains(err.Error(), "malformed or truncated PEM block") {
				t.Errorf("err = %v, want a malformed-block error at line 1", err)
			}
		})
	})
	t.Run("a million blocks, one bad at the end", func(t *testing.T) {
		data := bytes.Repeat([]byte("-----BEGIN EC PARAMETERS-----\n-----END EC PARAMETERS-----\n"), 999_999)
		data = append(data, "-----BEGIN PUBLIC KEY-----\nAAAA\n"...)
		bounded(t, data, func(_ []*Key, err error) {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line != 2*999_999+1 {
				t.Errorf("err = %v, want a malformed-block error at line %d", err, 2*999_999+1)
			}
		})
	})
	t.Run("as many key blocks as fit", func(t *testing.T) {
		if testing.Short() {
			t.Skip("-short: parses 64 MiB of keys")
		}
		data := bytes.Repeat(block, MaxFileSize/len(block))
		bounded(t, data, func(keys []*Key, err error) {
			if err != nil || len(keys) != MaxFileSize/len(block) {
				t.Errorf("%d keys, err %v", len(keys), err)
			}
		})
	})
}

// Deeply nested JSON in every position keytool reads JSON: refused at the
// 33rd level with a message saying so, without recursion proportional to
// the input (a million levels would overflow a recursive parser's stack
// or take quadratic time).
func TestDeeplyNestedJSON(t *testing.T) {
	const n = 1_000_000
	for name, data := range map[string]string{
		"arrays in a member":  `{"kty":"EC","a":` + strings.Repeat("[", n) + strings.Repeat("]", n) + "}",
		"objects":             strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n),
		"in a JWK Set":        `{"keys":[` + strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) + "]}",
		"unterminated arrays": `{"kty":"EC","a":` + strings.Repeat("[", n),
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse([]byte(data))
			if !strings.Contains(fmtErr(err), "nested deeper than 32 levels") {
				t.Errorf("err = %v, want the nesting limit", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// A public key file whose "x5c" holds 175,000 small certificates (60 MB)
// took 735 MB to read: go-jose parses each. A chain of up to maxX5C
// certificates reads (go-jose checks it begins with the key's own); one
// more is refused, naming the member, before any is parsed.
func TestLongX5CRefused(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "leaf"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	k, err := NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.MarshalPublic(JWK)
	if err != nil {
		t.Fatal(err)
	}
	cert := `"` + base64.StdEncoding.EncodeToString(der) + `"`
	dir := t.TempDir()
	for _, n := range []int{1, maxX5C, maxX5C + 1, 175_000} {
		path := filepath.Join(dir, fmt.Sprintf("x5c-%d.json", n))
		data := strings.TrimSuffix(strings.TrimSpace(string(pub)), "}") + `,"x5c":[` + strings.Repeat(cert+",", n-1) + cert + "]}"
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		keys, err := ReadFile(path)
		var pe *ParseError
		switch {
		case n <= maxX5C && (err != nil || len(keys) != 1 || !keys[0].Equal(k)):
			t.Errorf("%d certificates: %v, want the key", n, err)
		case n > maxX5C && (!errors.As(err, &pe) || pe.Member != "x5c" || !strings.Contains(err.Error(), "more than 16 certificates")):
			t.Errorf("%d certificates: %v, want x5c refused", n, err)
		}
	}
}

// A "public" RSA key made by deleting "d" from a private JWK keeps p, q,
// dp, dq and qi, any of which factors n. go-jose reads it as public (it
// looks at "d" alone), so it passed as a public key, at 0644 too, where a
// private key is refused. Every such member in a key read as public is
// refused, naming it; the private key it came from still reads (0600).
func TestSecretMembersInPublicKeyRefused(t *testing.T) {
	dir := t.TempDir()
	for _, typ := range []Type{RSA2048, EC256, Ed25519} {
		k := testKey(t, typ)
		var priv map[string]any
		if err := json.Unmarshal(mustMarshal(t, k, JWK, true), &priv); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, string(typ)+".json")
		write := func(m map[string]any, perm os.FileMode) {
			t.Helper()
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, perm); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, perm); err != nil {
				t.Fatal(err)
			}
		}
		write(priv, 0o600)
		if keys, err := ReadFile(path); err != nil || !keys[0].IsPrivate() {
			t.Fatalf("%s: the private key: %v", typ, err)
		}
		delete(priv, "d")
		if typ != RSA2048 {
			priv["dp"] = "AQAB" // an EC or Ed25519 key has no CRT member: add one
		}
		write(priv, 0o644)
		keys, err := ReadFile(path)
		var pe *ParseError
		if !errors.As(err, &pe) || !slices.Contains(privateMembers, pe.Member) || !strings.Contains(err.Error(), "secret key material in a public key") || pe.File != path {
			t.Errorf("%s without d, at 0644: %d keys, %v; want the secret member refused", typ, len(keys), err)
		}
	}
}

// Which members hold private key material is one rule, isPrivateMember's
// switch, which classify and checkNoSecret each once spelled, and the CLI
// twice more (from PrivateMembers now): the switch holds the names of
// PrivateMembers, no other (read from the source), and every one of them,
// and no other name, is private to each of IsPrivateMember, classify and
// checkNoSecret, compared exactly. The comparison on a member's bytes,
// asked of every member parsed, allocates nothing, however long the name.
func TestPrivateMembersOneRule(t *testing.T) {
	if got := PrivateMembers(); !slices.Equal(got, privateMembers) {
		t.Errorf("PrivateMembers() = %q, want %q", got, privateMembers)
	}
	if got := switchCases(t, "jwkjson.go", "isPrivateMember"); !slices.Equal(got, PrivateMembers()) {
		t.Errorf("isPrivateMember's switch holds %q, PrivateMembers() %q", got, PrivateMembers())
	}
	public := []string{"kty", "crv", "x", "y", "n", "e", "pub"} // material, not private
	others := []string{"use", "alg", "key_ops", "x5c", "x5t#S256", AttrKeyID, AttrComment,
		"", "D", "K", "\u212a", "Priv", "dd", "d ", "\x00d", "o", "th", "private"}
	for _, name := range slices.Concat(privateMembers, public, others) {
		private := slices.Contains(privateMembers, name)
		kind := classify([]byte(name))
		secret, err := checkNoSecret([]member{{name: []byte("kty")}, {name: []byte(name)}})
		if IsPrivateMember(name) != private || (kind == material) != (private || slices.Contains(public, name)) || (err != nil) != private || secret != name && private {
			t.Errorf("%q: IsPrivateMember %v, classify %v, checkNoSecret %q, %v; want private %v", name, IsPrivateMember(name), kind, secret, err, private)
		}
	}
	long := []byte(strings.Repeat("priv", 20))
	ms := []member{{name: long}, {name: []byte("kid")}}
	if n := testing.AllocsPerRun(100, func() {
		if classify(long) != attribute || isPrivateMember(long) {
			t.Fatal("a long name classified as private")
		}
		if _, err := checkNoSecret(ms); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("classify and checkNoSecret allocate %v times per call", n)
	}
}

// switchCases returns the string constants of the cases of the first
// switch in the function fn of the package's file.
func switchCases(t *testing.T, file, fn string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var cases []string
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok && d.Name.Name == fn {
			ast.Inspect(d.Body, func(n ast.Node) bool {
				if sw, ok := n.(*ast.SwitchStmt); ok && cases == nil {
					cases = []string{}
					for _, c := range sw.Body.List {
						for _, e := range c.(*ast.CaseClause).List {
							lit, ok := e.(*ast.BasicLit)
							if !ok || lit.Kind != token.STRING {
								t.Fatalf("%s: a case that is not a string constant: %T", fn, e)
							}
							s, err := strconv.Unquote(lit.Value)
							if err != nil {
								t.Fatal(err)
							}
							cases = append(cases, s)
						}
					}
				}
				return cases == nil
			})
		}
	}
	if cases == nil {
		t.Fatalf("no switch in %s of %s", fn, file)
	}
	return cases
}
