package knownhosts

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestRootedAndRelativeNamesPinApart: a name written with its final dot
// (rooted: api.dev.) and without (relative: api.dev) are two names, as in
// OpenSSH's known_hosts. A relative name may be resolved through the
// system's search list (api.dev.corp.example), so a pin made for the
// rooted name must not admit that key at a relative dial, nor the other
// way round; and neither is the other's changed key, which would stop a
// host known by both names from being pinned under each (docs/design.md,
// "Rooted and relative names").
func TestRootedAndRelativeNamesPinApart(t *testing.T) {
	s, opts := load(t, map[string]*jwk.Key{
		"public.json":   pinned(t, 1, "API.dev.:443"), // written by hand, rooted
		"internal.json": pinned(t, 2, "api.dev:443"),  // relative, as every pin of earlier versions
		"only.json":     pinned(t, 1, "only.example.:443"),
		"onlyrel.json":  pinned(t, 2, "onlyrel.example:443"),
		"wild.json":     pinned(t, 3, "*.lab.example"),
		"wildroot.json": pinned(t, 4, "*.lab.example."),
		"all.json":      pinned(t, 5, "*", "!secret.lab.example", "!hidden.lab.example."),
	})
	type ok = admitted
	var (
		unknown = new(*UnknownHostError)
		changed = new(*KeyChangedError)
	)
	for _, c := range []struct {
		addr string
		n    int
		want any
	}{
		{"api.dev.:443", 1, ok{}},
		{"Api.Dev.:443", 1, ok{}},
		{"api.dev:443", 1, changed}, // the rooted name's key, at a relative dial: not a pin of it
		{"api.dev:443", 2, ok{}},
		{"api.dev.:443", 2, changed}, // and the other way round
		{"only.example:443", 1, unknown},
		{"onlyrel.example.:443", 2, unknown},
		{"db.lab.example:22", 3, ok{}},
		{"db.lab.example.:22", 3, unknown},
		{"db.lab.example.:22", 4, ok{}},
		{"db.lab.example:22", 4, unknown},
		{"x.example:1", 5, ok{}},
		{"x.example.:1", 5, ok{}}, // "*" matches every name, rooted or not
		// A negation excludes the name written either way: a wider
		// exclusion never admits more.
		{"secret.lab.example:1", 5, unknown},
		{"secret.lab.example.:1", 5, unknown},
		{"hidden.lab.example:1", 5, unknown},
		{"hidden.lab.example.:1", 5, unknown},
	} {
		expectCheck(t, s, c.addr, key(t, c.n), c.n, c.want)
	}

	// Each name is pinned in a file of its own, and adding one is not a
	// changed key of the other.
	for _, c := range []struct {
		addr, norm, file string
		n                int
	}{
		{"App.Example.:8443", "app.example.:8443", "app.example._8443.json", 6},
		{"app.example:8443", "app.example:8443", "app.example_8443.json", 7},
		{"app.example.", "app.example.", "app.example..json", 6},
		{"*.app.example.:8443", "*.app.example.:8443", "%2A.app.example._8443.json", 8},
	} {
		if norm, err := NormalizeAddr(c.addr); err != nil || norm != c.norm {
			t.Errorf("NormalizeAddr(%q) = %q, %v; want %q", c.addr, norm, err, c.norm)
		}
		file, err := s.Add(c.addr, key(t, c.n))
		if err != nil {
			t.Fatalf("Add(%s): %v", c.addr, err)
		}
		if want := filepath.Join(opts.Dirs[0], c.file); file != want {
			t.Errorf("Add(%s) wrote %s, want %s", c.addr, file, want)
		}
	}
	var ce *KeyChangedError
	if err := s.Check("app.example.:8443", key(t, 7)); !errors.As(err, &ce) || len(ce.Want) != 2 || ce.Want[0].Address != "app.example.:8443" || ce.Want[1].Address != "app.example." {
		t.Errorf("the relative name's key at the rooted name: %v (pins %+v)", err, ce)
	}
	if got, want := slices.Sorted(slices.Values(s.AddressesOf(key(t, 6).SPKIHash()))), []string{"app.example.", "app.example.:8443"}; !slices.Equal(got, want) {
		t.Errorf("AddressesOf = %q, want %q", got, want)
	}
	// Removing one name leaves the other's pin.
	if _, err := s.Remove("app.example.:8443"); err != nil {
		t.Fatal(err)
	}
	if err := s.Check("app.example:8443", key(t, 7)); err != nil {
		t.Errorf("the relative pin after removing the rooted one: %v", err)
	}
}

// TestRootedPatterns: the normal form keeps one final dot of a name or
// wildcard; what is left must still be a name (no empty label), and the
// root alone is no host.
func TestRootedPatterns(t *testing.T) {
	for in, want := range map[string]string{
		"Host.Example.COM.": "host.example.com.",
		"host.:443":         "host.:443",
		"host.:*":           "host.",
		"*.":                "*.",
		"*.example.com.:22": "*.example.com.:22",
		"!bad.example.com.": "!bad.example.com.",
		"10.0.0.7.":         "10.0.0.7.", // a name to the resolver (glibc and Go), not the address
	} {
		got, err := ParsePattern(in)
		if err != nil || got != want {
			t.Errorf("ParsePattern(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{".", ".:22", "host..", "host..:22", "*..", "[::1.]", "::1."} {
		if got, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) = %q, want an error", bad, got)
		}
	}
	for _, bad := range []string{".:22", "..:22"} {
		if _, _, _, err := parseTarget(bad); err == nil {
			t.Errorf("parseTarget(%q) took it", bad)
		}
	}
}

// TestLoadForRootedPinsInAnIndexOfEarlierVersions: an admin index made
// when a rooted name was the relative one recorded a pin written
// "api.dev.:443" under the name without its dot, and keeps that record
// while the file does not change. A narrowed load for the rooted name
// still reads the file: trust-host sees the pin (a changed key, not a
// first one) and trust-host --remove takes it.
func TestLoadForRootedPinsInAnIndexOfEarlierVersions(t *testing.T) {
	old := keydir.IndexMinFiles
	keydir.IndexMinFiles = 0
	t.Cleanup(func() { keydir.IndexMinFiles = old })
	opts, d := pinnedHome(t, 20)
	keydirtest.Write(t, filepath.Join(d, "public.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 1), "address", "api.dev.:443")))
	earlier := newStore(opts)
	earlier.IndexBy(func(f *keydir.File[*Entry], i int) []keydir.Term {
		t := []keydir.Term{keydir.KeyTerm(f.Items()[i].SPKIHash)}
		for _, p := range f.Items()[i].pos {
			k := p.key()
			k.name = strings.TrimSuffix(k.name, ".")
			t = append(t, hostTerm(k))
		}
		return t
	})
	earlier.LoadFor(Lookups{}.query())()

	s, finish := LoadFor(opts, Lookups{Addrs: []string{"api.dev.:443"}})
	if err := s.Check("api.dev.:443", key(t, 2)); !errors.As(err, new(*KeyChangedError)) {
		t.Errorf("another key at the rooted name: %v, want a changed key", err)
	}
	removed, err := s.Remove("api.dev.:443")
	finish()
	if err != nil || len(removed) != 1 {
		t.Fatalf("Remove = %v, %v; want the rooted pin", removed, err)
	}
	if _, err := os.Stat(filepath.Join(d, "public.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the rooted pin is still there: %v", err)
	}
}
