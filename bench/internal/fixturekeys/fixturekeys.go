// Package fixturekeys makes the benchmarks' fixture keys: n public JWKs,
// the same for every run and every benchmark (and for cmd/peakprobe,
// which loads a directory as BenchmarkRSS's child does), made fast enough
// for a million, and written as single-key files.
package fixturekeys

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
	"sync"
)

// jwkCache holds the keys made so far in this process, under jwkMu.
var (
	jwkMu    sync.Mutex
	jwkCache []string
)

// JWKs returns the public JWKs (no kid) of the deterministic fixture
// keys [0, n), cached for the process. The first P256Max() are P-256 keys:
// key i is the point (i+1)·G, made by point additions, in parallel. They
// are real points on the curve, which libtrust, go-jose and crypto/x509
// all check. The rest are Ed25519 keys (the SHA-256 of i: any 32 bytes are
// an Ed25519 public key as far as parsing goes), which cost nothing to make.
func JWKs(n int) []string {
	jwkMu.Lock()
	defer jwkMu.Unlock()
	if len(jwkCache) >= n {
		return jwkCache[:n]
	}
	from := len(jwkCache)
	out := make([]string, n)
	copy(out, jwkCache)
	p := min(n, P256Max())
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

// P256Max is how many of the fixture keys are P-256 keys (BENCH_P256,
// default 100,000): the ones libtrust is compared on. A P-256 point costs
// about 18 µs to make here (18 s for a million), so further keys are
// Ed25519, which libtrust cannot read anyway.
func P256Max() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_P256")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// WriteFiles writes the fixture keys [0, n) (JWKs) into dir, one
// JWK file each (k0000000.json …), key i's file of mode mode(i). Four
// writers share the files: a million of them take half a minute so on
// this kind of VM, where one writer took minutes.
func WriteFiles(dir string, n int, mode func(i int) os.FileMode) error {
	keys := JWKs(n)
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
