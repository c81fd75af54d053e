package knownhosts

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// holdingPatterns are address forms whose normal form a pin's pattern
// and a query must agree on: rooted names, upper case, "host:*",
// IPv4-mapped and non-canonical IPv6, zones, wildcards, negations.
var holdingPatterns = []string{
	"h1.example", "h1.example:443", "H1.Example.", "h1.example.:443", "h1.example:*",
	"10.0.0.1", "10.0.0.1:22", "::ffff:10.0.0.1", "[::ffff:10.0.0.1]:22", "10.0.0.1.", "10.0.0.1.:22",
	"[2001:DB8::1]:443", "2001:0db8:0::1", "[2001:db8::1]", "fe80::1%eth0", "[fe80::1%ETH0]:443",
	"*.example", "h?.example:22", "!h1.example:443", "!10.0.0.1", "x_y.example", "[::1]:*",
}

// The pins a removal by address takes from the index (snapshot.holding)
// are, in file order, those a scan of every pin finds holding the
// address, for every normal form (holdingPatterns), through 300 random
// file changes each applied to the index as a reload does: a candidate
// set short of one pin would leave it pinned (written in review).
func TestHoldingIsEveryPinThatHoldsTheAddress(t *testing.T) {
	for seed := range uint64(4) {
		r := rand.New(rand.NewPCG(seed, 7))
		f := newIndexFixture(t)
		opts := f.options()
		if seed == 3 {
			opts = f.alikeOptions()
		}
		s := Load(opts)
		var norms []string
		for _, p := range holdingPatterns {
			if n, err := ParsePattern(p); err == nil {
				norms = append(norms, n)
			}
		}
		for step := range 300 {
			path := filepath.Join(f.dir1, fmt.Sprintf("p%d.json", r.IntN(8)))
			if r.IntN(4) == 0 {
				path = filepath.Join(f.dir2, fmt.Sprintf("q%d.json", r.IntN(4)))
			}
			if r.IntN(5) == 0 {
				os.Remove(path)
			} else {
				var keys []*jwk.Key
				for range 1 + r.IntN(3) {
					k := key(t, r.IntN(10)).PublicKey()
					k.Attrs = jwk.Attributes{}
					var addrs []string
					for range 1 + r.IntN(3) {
						addrs = append(addrs, holdingPatterns[r.IntN(len(holdingPatterns))])
					}
					if r.IntN(6) > 0 {
						k.Attrs.SetList(jwk.AttrAddress, addrs)
					}
					if r.IntN(3) == 0 {
						k.Attrs.SetList(jwk.AttrPurpose, []string{"ldap"})
					}
					keys = append(keys, k)
				}
				keydirtest.Put(t, path, keydirtest.JWK(t, keys...))
			}
			s.Loader().Reload(path)
			sn := s.snap.Load()
			for _, norm := range norms {
				keep := func(es []*Entry) []*Entry {
					return slices.DeleteFunc(slices.Clone(es), func(e *Entry) bool { return !slices.Contains(e.Addresses, norm) })
				}
				got, want := keep(sn.holding(norm)), keep(sn.all())
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d step %d %q: holding %d pins, scan %d", seed, step, norm, len(got), len(want))
				}
			}
		}
		if s.updates.Load() < 100 {
			t.Errorf("seed %d: %d reloads derived the index from the last one, want 100 or more", seed, s.updates.Load())
		}
	}
}
