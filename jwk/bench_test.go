package jwk

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// benchJWK is a realistic trust-store entry: a P-256 public key with a
// libtrust kid, an address list, a comment and an expiry, as `keytool
// authorize` and `trust-host` write them.
var benchJWK = []byte(`{
  "kty": "EC",
  "crv": "P-256",
  "x": "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
  "y": "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
  "kid": "KG4U:JTP2:KRGU:YMTT:VJV7:GUDC:LJ65:KO53:NJYX:EMTU:6U4L:DGRA",
  "address": [
    "db1.example.com:8443",
    "10.1.2.3:8443"
  ],
  "comment": "db1, rack 4",
  "expires": "2030-01-31T00:00:00Z"
}
`)

// BenchmarkParsePublicJWK is keytool's whole parse of one entry: scanning
// the members, decoding the key (on the fast path: fastkey.go), the SPKI
// hash and the attribute checks.
// Compare with BenchmarkGoJoseUnmarshal, the baseline, in the same run.
func BenchmarkParsePublicJWK(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchJWK)))
	for b.Loop() {
		keys, err := Parse(benchJWK)
		if err != nil || len(keys) != 1 {
			b.Fatal(err)
		}
	}
}

// BenchmarkGoJoseUnmarshal decodes the same bytes with go-jose alone,
// which keeps no attribute and computes no identity.
func BenchmarkGoJoseUnmarshal(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchJWK)))
	for b.Loop() {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(benchJWK); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePEMBundle(b *testing.B) {
	var keys []*Key
	for _, typ := range []Type{EC256, EC384, Ed25519} {
		keys = append(keys, withAttrs(testKey(b, typ), Attributes{"comment": []byte(`"c"`)}))
	}
	data, err := MarshalPublicSet(keys, PEM)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFingerprintMatch(b *testing.B) {
	k := testKey(b, EC256)
	fp, err := ParseFingerprint(k.Fingerprint())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !fp.Match(k) {
			b.Fatal("no match")
		}
	}
}

// BenchmarkParseBigSet parses a JWK Set of 20,000 P-256 keys
// (BENCH_SET_KEYS) on one CPU, the baseline, and on every CPU
// (parseJWKs), in the same run: `go test -run '^$' -bench ParseBigSet
// -count 6 ./jwk`, the ratio of each pair of rounds.
func BenchmarkParseBigSet(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("BENCH_SET_KEYS")); err == nil && v > 0 {
		n = v
	}
	var pool [][]byte
	for range 64 {
		pool = append(pool, mustMarshal(b, testKey(b, EC256).PublicKey(), JWK, false))
	}
	var buf bytes.Buffer
	buf.WriteString(`{"keys": [`)
	for i := range n {
		if i > 0 {
			buf.WriteString(",\n")
		}
		buf.Write(pool[i%len(pool)])
	}
	buf.WriteString("]}\n")
	data := buf.Bytes()
	for _, procs := range []int{1, runtime.NumCPU()} {
		b.Run("cpus="+strconv.Itoa(procs), func(b *testing.B) {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if keys, err := Parse(data); err != nil || len(keys) != n {
					b.Fatal(len(keys), err)
				}
			}
		})
	}
}
