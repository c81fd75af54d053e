package bench

import (
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

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

// p256JWKs returns the public JWKs (no kid) of the deterministic fixture
// keys [0, n), cached for the process. The first p256Max() are P-256 keys:
// key i is the point (i+1)·G, made by point additions, in parallel. They
// are real points on the curve, which libtrust, go-jose and crypto/x509
// all check. The rest are Ed25519 keys (the SHA-256 of i: any 32 bytes are
// an Ed25519 public key as far as parsing goes), which cost nothing to make.
var (
	jwkMu    sync.Mutex
	jwkCache []string
)

func p256JWKs(n int) []string {
	jwkMu.Lock()
	defer jwkMu.Unlock()
	if len(jwkCache) >= n {
		return jwkCache[:n]
	}
	from := len(jwkCache)
	out := make([]string, n)
	copy(out, jwkCache)
	p := min(n, p256Max())
	if from < p {
		genP256(out, from, p)
	}
	for i := max(from, p); i < n; i++ {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		x := sha256.Sum256(b[:])
		out[i] = `{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(x[:]) + `"}`
	}
	jwkCache = out
	return out
}

// genP256 fills out[from:to] with P-256 JWKs.
func genP256(out []string, from, to int) {
	c := elliptic.P256()
	workers := runtime.GOMAXPROCS(0)
	chunk := (to - from + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := from+w*chunk, min(to, from+(w+1)*chunk)
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			x, y := c.ScalarBaseMult(big.NewInt(int64(lo + 1)).Bytes())
			var xb, yb [32]byte
			for i := lo; i < hi; i++ {
				if i > lo {
					x, y = c.Add(x, y, c.Params().Gx, c.Params().Gy)
				}
				x.FillBytes(xb[:])
				y.FillBytes(yb[:])
				out[i] = `{"kty":"EC","crv":"P-256","x":"` + base64.RawURLEncoding.EncodeToString(xb[:]) +
					`","y":"` + base64.RawURLEncoding.EncodeToString(yb[:]) + `"}`
			}
		}()
	}
	wg.Wait()
}

// p256Max is how many of the fixture keys are P-256 keys (BENCH_P256,
// default 100,000): the ones libtrust is compared on. A P-256 point costs
// about 18 µs to make here (18 s for a million), so further keys are
// Ed25519, which libtrust cannot read anyway.
func p256Max() int { return envInt("BENCH_P256", 100_000) }

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
		return writeKeyFiles(d, n, func(int) os.FileMode { return 0o644 })
	})
}

// writeKeyFiles writes the deterministic P-256 keys [0, n) into dir, one
// JWK file each (k0000000.json …), key i's file of mode mode(i). Four
// writers share the files: a million of them take half a minute so on
// this kind of VM, where one writer took minutes.
func writeKeyFiles(dir string, n int, mode func(i int) os.FileMode) error {
	keys := p256JWKs(n)
	const writers = 4
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("k%07d.json", i)), []byte(keys[i]+"\n"), mode(i)); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// keySetFile returns a JWK Set file of the deterministic P-256 keys [0, n).
func keySetFile(tb testing.TB, n int) string {
	d := fixture(tb, fmt.Sprintf("set-%d", n), func(d string) error {
		return os.WriteFile(filepath.Join(d, "authorized_keys.json"), jwkSet(p256JWKs(n)), 0o644)
	})
	return filepath.Join(d, "authorized_keys.json")
}

// fillerSets writes n-… keys [from, from+n) as JWK Sets of at most 50,000
// keys into dir (the layout that makes 1,000,000 keys quick to load).
func fillerSets(dir string, from, n int) error {
	const per = 50_000
	keys := p256JWKs(from + n)[from:]
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
