package knownhosts

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// KeysPinnableAt holds every key Decide finds Pinned at an address, by
// any pin (a pin of its own, a host without a port, a wildcard, with a
// purpose or not), so that trust-host asks Decide of those keys' pins
// only and misses no pin that covers the address.
func TestKeysPinnableAtHoldsEveryPinnedKey(t *testing.T) {
	opts := removalHome(t, rand.New(rand.NewPCG(1, 1)))
	d := opts.Dirs[0]
	keydirtest.Write(t, filepath.Join(d, "ips.json"), keydirtest.JWK(t,
		pinnedFor(t, 141, "10.0.0.1:443", "10.0.0.*:22"),
		pinnedFor(t, 142, "[2001:db8::1]", "db.example:22"),
		keydirtest.WithAttrs(pinnedFor(t, 143, "*.example:8443"), "purpose", "xapi")))
	s := Load(opts)
	addrs := append([]string{"a.example:443", "bad.example:443", "db.example:22", "db.example:443", "h3.example:443",
		"web.example:8443", "10.0.0.1:443", "10.0.0.7:22", "[2001:db8::1]:443", "nobody.example:443", "not an address"}, removalAddrs...)
	asked := 0
	for _, addr := range addrs {
		pinnable := s.KeysPinnableAt(addr)
		for _, e := range s.Entries() {
			pinned := s.Decide(addr, e.SPKIHash).Verdict == Pinned
			for _, p := range e.Purposes {
				pinned = pinned || s.DecidePurpose(addr, p, e.SPKIHash).Verdict == Pinned
			}
			if pinned {
				asked++
				if !pinnable[e.SPKIHash] {
					t.Errorf("%s: key %s (%s) is Pinned there, but not among KeysPinnableAt", addr, e.Fingerprint, filepath.Base(e.File))
				}
			}
		}
	}
	if asked < 10 {
		t.Fatalf("only %d pinned keys asked about: the fixture does not test much", asked)
	}
}
