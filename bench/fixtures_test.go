package bench

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keytool/keytool/bench/internal/fixturekeys"
	"github.com/keytool/keytool/jwk"
)

// scratch is the directory of this process's fixtures, removed by TestMain.
var scratch string

func TestMain(m *testing.M) {
	if dir := os.Getenv(rssChildEnv); dir != "" {
		os.Exit(rssChild(dir)) // BenchmarkRSS's child: load, report, exit
	}
	d, err := os.MkdirTemp(os.Getenv("BENCH_TMP"), "keytool-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scratch = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// envInt reads a size from the environment, for quick runs of the suite.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// jwkSet joins JWKs into a JWK Set document.
func jwkSet(keys []string) []byte {
	var sb strings.Builder
	sb.Grow(len(keys) * 140)
	sb.WriteString(`{"keys":[`)
	for i, k := range keys {
		if i > 0 {
			sb.WriteString(",\n")
		}
		sb.WriteString(k)
	}
	sb.WriteString("]}\n")
	return []byte(sb.String())
}

// fixture returns a directory made once per process by make (under
// scratch/name).
var (
	fixMu sync.Mutex
	fixes = map[string]string{}
)

func fixture(tb testing.TB, name string, make func(dir string) error) string {
	fixMu.Lock()
	defer fixMu.Unlock()
	if d, ok := fixes[name]; ok {
		return d
	}
	d := filepath.Join(scratch, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := make(d); err != nil {
		tb.Fatal(err)
	}
	fixes[name] = d
	return d
}

// keyDir returns a directory of n single-key JWK files (the deterministic
// P-256 keys [0, n)).
func keyDir(tb testing.TB, n int) string {
	return fixture(tb, fmt.Sprintf("dir-%d", n), func(d string) error {
		return fixturekeys.WriteFiles(d, n, func(int) os.FileMode { return 0o644 })
	})
}

// keySetFile returns a JWK Set file of the deterministic P-256 keys [0, n).
func keySetFile(tb testing.TB, n int) string {
	d := fixture(tb, fmt.Sprintf("set-%d", n), func(d string) error {
		return os.WriteFile(filepath.Join(d, "authorized_keys.json"), jwkSet(fixturekeys.JWKs(n)), 0o644)
	})
	return filepath.Join(d, "authorized_keys.json")
}

// fillerSets writes n-… keys [from, from+n) as JWK Sets of at most 50,000
// keys into dir (the layout that makes 1,000,000 keys quick to load).
func fillerSets(dir string, from, n int) error {
	const per = 50_000
	keys := fixturekeys.JWKs(from + n)[from:]
	for f := 0; len(keys) > 0; f++ {
		c := min(per, len(keys))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("filler-%03d.json", f)), jwkSet(keys[:c]), 0o644); err != nil {
			return err
		}
		keys = keys[c:]
	}
	return nil
}

// setsDir returns a directory holding the fixture keys [0, n) as JWK Sets
// of at most 50,000 keys.
func setsDir(tb testing.TB, n int) string {
	return fixture(tb, fmt.Sprintf("sets-%d", n), func(d string) error { return fillerSets(d, 0, n) })
}

// edJWK returns the deterministic Ed25519 JWK number i (distinct from the
// fixture keys for i beyond them).
func edJWK(i int) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	x := sha256.Sum256(append(b[:], 'e'))
	return `{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(x[:]) + `"}`
}

// mustGenerate makes a key of type t.
func mustGenerate(tb testing.TB, t jwk.Type) *jwk.Key {
	k, err := jwk.Generate(t)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}
