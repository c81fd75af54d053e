package bench

import (
	"testing"
	"time"

	"github.com/keytool/keytool/bench/internal/fixturekeys"
	"github.com/keytool/keytool/jwk"
)

func TestP256Fixtures(t *testing.T) {
	n := envInt("BENCH_GEN", 1000)
	start := time.Now()
	keys := fixturekeys.JWKs(n)
	t.Logf("%d keys in %v", n, time.Since(start))
	for _, i := range []int{0, 1, n / 2, n - 1} {
		if _, err := jwk.Parse([]byte(keys[i])); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
	}
	ks, err := jwk.Parse(jwkSet(keys[:min(n, 1000)]))
	if err != nil || len(ks) != min(n, 1000) {
		t.Fatal(err)
	}
	seen := map[[32]byte]bool{}
	for _, k := range ks {
		seen[k.SPKIHash()] = true
	}
	if len(seen) != len(ks) {
		t.Fatal("duplicate keys")
	}
}
