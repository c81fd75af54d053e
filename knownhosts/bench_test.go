package knownhosts

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// benchPins is the size of the reload benchmark's fixture (100,000 unless
// KEYTOOL_BENCH_KEYS says otherwise): a client trusting a fleet, as
// oVirt's engine or an LXD cluster member does.
func benchPins() int {
	if n, err := strconv.Atoi(os.Getenv("KEYTOOL_BENCH_KEYS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// pinFile is the content of a trusted-hosts file pinning key for addr.
func pinFile(b *testing.B, key *jwk.Key, addr string) []byte {
	k := key.PublicKey()
	k.Attrs = jwk.Attributes{}
	k.Attrs.SetList(jwk.AttrAddress, []string{addr})
	return keydirtest.JWK(b, k)
}

// BenchmarkReload measures what a client trusting N hosts pays when one
// pin file changes (and, for comparison, what a handshake's Decide costs): a directory of N single-pin files (host%06d:443), one
// of them replaced with another key and back, and the reload a file
// event causes (Loader().Reload(changed)). Besides the time and the
// allocations, the process's CPU per reload (the garbage collector's
// included, and the writing of the file, the same in every version) and
// the collections it brings per 1,000 reloads — as authkeys'
// BenchmarkLoad "dir/one-changed-event" measures the server side.
func BenchmarkReload(b *testing.B) {
	n := benchPins()
	dir := filepath.Join(b.TempDir(), "trusted_hosts.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range n {
		data := pinFile(b, keydirtest.Key(b, i), fmt.Sprintf("host%06d:443", i))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("host%06d_443.json", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	s := Load(Options{Dirs: []string{dir}, Rescan: -1})
	if len(s.Entries()) != n {
		b.Fatalf("%d entries", len(s.Entries()))
	}
	// The handshake's question, which the index answers: a pinned key at
	// its address, spread over up to 4,096 hosts.
	b.Run(fmt.Sprintf("pins=%d/decide", n), func(b *testing.B) {
		m := min(n, 4096)
		addrs, sums := make([]string, m), make([][32]byte, m)
		for i := range m {
			addrs[i], sums[i] = fmt.Sprintf("host%06d:443", i*(n/m)), keydirtest.Key(b, i*(n/m)).SPKIHash()
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if d := s.Decide(addrs[i%m], sums[i%m]); d.Verdict != Pinned {
				b.Fatal(d.Err)
			}
			i++
		}
	})
	changed := filepath.Join(dir, "host000007_443.json")
	altKeys := [2]*jwk.Key{keydirtest.Key(b, n+1), keydirtest.Key(b, 7)}
	alt := [2][]byte{pinFile(b, altKeys[0], "host000007:443"), pinFile(b, altKeys[1], "host000007:443")}
	b.Run(fmt.Sprintf("pins=%d/one-changed-event", n), func(b *testing.B) {
		i := keydirtest.BenchReplaced(b, changed, alt, func(p string) { s.Loader().Reload(p) })
		// The reloads must have left the last key written pinned.
		if err := s.Check("host000007:443", altKeys[(i-1)%2]); err != nil {
			b.Fatal(err)
		}
	})
}
