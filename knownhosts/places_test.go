package knownhosts

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/fewset"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// A pin's exact addresses are indexed once each, however many it lists
// and however they repeat (places keeps a set past fewset.Max):
// the same places as a search of the list, and each address finds the
// pin once.
func TestPlacesOfManyAddresses(t *testing.T) {
	key, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, fewset.Max, fewset.Max + 1, 200} {
		var addrs []string
		for i := range n {
			addrs = append(addrs, fmt.Sprintf("h%d.example:443", i))
		}
		for i := range n {
			addrs = append(addrs, fmt.Sprintf("H%d.EXAMPLE:443", n-1-i)) // each again, in another case
		}
		addrs = append(addrs, "*.wild.example:443")
		home := t.TempDir()
		dir := filepath.Join(home, "trusted_hosts.d")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		k := key.PublicKey()
		k.Attrs = jwk.Attributes{}
		k.Attrs.SetList(jwk.AttrAddress, addrs)
		keydirtest.Write(t, filepath.Join(dir, "many.json"), keydirtest.JWK(t, k))
		s := Load(HomeOptions(home))
		entries := s.Entries()
		if len(entries) != 1 {
			t.Fatalf("%d addresses: %d entries, %v", n, len(entries), s.Problems())
		}
		exact, named, wild := entries[0].places(nil)
		var want []hostKey
		for _, p := range entries[0].pos {
			if k := p.key(); !p.wild && !slices.Contains(want, k) {
				want = append(want, k)
			}
		}
		if !slices.Equal(exact, want) || len(exact) != n || named || !wild {
			t.Errorf("%d addresses: places %d exact (want %d), named %v, wild %v", n, len(exact), len(want), named, wild)
		}
		for i := range n {
			addr := fmt.Sprintf("h%d.example:443", i)
			if got := s.exactEntries(mustPattern(t, addr)); len(got) != 1 {
				t.Fatalf("%d addresses: %s finds %d entries", n, addr, len(got))
			}
		}
		if got := s.AddressesOf(key.SPKIHash()); len(got) != n+1 || strings.Count(strings.Join(got, " "), "h0.example") != 1 {
			t.Errorf("%d addresses: AddressesOf lists %d: %v", n, len(got), got)
		}
	}
}

func mustPattern(t *testing.T, s string) pattern {
	t.Helper()
	p, err := parsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
