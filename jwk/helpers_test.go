package jwk

import (
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// testTypes are the key types that every table test covers. RSA 3072 and
// 4096 differ from RSA 2048 only in size, and generating them is slow.
var testTypes = []Type{EC256, EC384, EC521, RSA2048, Ed25519}

// privateMembers are the JWK members that hold secret material.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// generated holds one private key of each test type, made once per test
// binary: RSA generation is the slowest thing the tests do.
var generated = sync.OnceValues(func() (map[Type]*Key, error) {
	keys := make(map[Type]*Key, len(testTypes))
	for _, typ := range testTypes {
		k, err := Generate(typ)
		if err != nil {
			return nil, err
		}
		keys[typ] = k
	}
	return keys, nil
})

// testKey returns the shared private key of type typ, with no attributes.
// Callers must not modify it; use withAttrs for a copy with attributes.
func testKey(t testing.TB, typ Type) *Key {
	t.Helper()
	keys, err := generated()
	if err != nil {
		t.Fatalf("generating test keys: %v", err)
	}
	return keys[typ]
}

// withAttrs returns a copy of k with the given attributes.
func withAttrs(k *Key, attrs Attributes) *Key {
	c := *k
	c.Attrs = attrs.Clone()
	return &c
}

// writeFile writes data to name in dir with the given mode, whatever the
// umask, and returns its path.
func writeFile(t testing.TB, dir, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// repoFile reads a file of the repository's shared testdata directory.
func repoFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// asParseError asserts that err is a *ParseError and returns it.
func asParseError(t testing.TB, err error) *ParseError {
	t.Helper()
	if err == nil {
		t.Fatal("got no error, want a *ParseError")
	}
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("got %T %q, want a *ParseError", err, err)
	}
	return pe
}

// wantSubstrings fails unless msg holds every one of subs.
func wantSubstrings(t testing.TB, msg string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(msg, s) {
			t.Errorf("message %q does not contain %q", msg, s)
		}
	}
}

// jsonObject decodes a JSON object.
func jsonObject(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, b)
	}
	return m
}

// noPrivateMembers fails if the JWK object m holds a private member.
func noPrivateMembers(t testing.TB, m map[string]any) {
	t.Helper()
	for _, name := range privateMembers {
		if _, ok := m[name]; ok {
			t.Errorf("public JWK holds private member %q: %v", name, m)
		}
	}
}

// sameKeys fails unless got and want are the same keys in the same order.
func sameKeys(t testing.TB, got, want []*Key) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d keys, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].SPKIHash() != want[i].SPKIHash() {
			t.Errorf("key %d: got %s, want %s", i, got[i].Fingerprint(), want[i].Fingerprint())
		}
	}
}

// canonical decodes and re-encodes a JSON value, so that values can be
// compared regardless of white space and member order.
func canonical(t testing.TB, raw []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("invalid JSON value %s: %v", raw, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sshMarshalPrivate encodes k as an unencrypted OPENSSH PRIVATE KEY block.
func sshMarshalPrivate(k *Key) (*pem.Block, error) {
	return ssh.MarshalPrivateKey(k.Signer(), "test")
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }

func fsMode(m uint32) os.FileMode { return os.FileMode(m) }

func sshMarshalAuthorized(p ssh.PublicKey) []byte { return ssh.MarshalAuthorizedKey(p) }
