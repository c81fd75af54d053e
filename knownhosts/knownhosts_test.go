package knownhosts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

func key(tb testing.TB, n int) *jwk.Key { return keydirtest.Key(tb, n) }

func pinned(tb testing.TB, n int, addrs ...string) *jwk.Key {
	k := key(tb, n).PublicKey()
	k.Attrs = jwk.Attributes{}
	k.Attrs.SetList(jwk.AttrAddress, addrs)
	return k
}

func TestPatterns(t *testing.T) {
	for in, want := range map[string]string{
		"Host.Example.COM.":      "host.example.com.",
		"host:443":               "host:443",
		"host:*":                 "host",
		"10.0.0.1":               "10.0.0.1",
		"[::1]:22":               "[::1]:22",
		"[::1]":                  "::1",
		"2001:DB8:0:0::1":        "2001:db8::1",
		"[2001:db8:0::1]:443":    "[2001:db8::1]:443",
		"::ffff:10.0.0.1":        "10.0.0.1",
		"*.example.com":          "*.example.com",
		"!bad.example.com":       "!bad.example.com",
		"10.0.0.?:22":            "10.0.0.?:22",
		"[fe80::1%eth0]:22":      "[fe80::1%eth0]:22",
		"under_score.example.io": "under_score.example.io",
	} {
		got, err := ParsePattern(in)
		if err != nil || got != want {
			t.Errorf("ParsePattern(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "host:", "host:0", "host:65536", "host:x", "[::1", "[::1]x", "a b", "a/b", "a..b", "../x", "x\n", "1.2.3.4:22:33x", "ho%st", "!"} {
		if got, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) = %q, want an error", bad, got)
		}
	}
}

func load(t *testing.T, files map[string]*jwk.Key) (*Store, Options) {
	t.Helper()
	home := t.TempDir()
	opts := HomeOptions(home)
	for name, k := range files {
		keydirtest.Write(t, filepath.Join(opts.Dirs[0], name), keydirtest.JWK(t, k))
	}
	s := Load(opts)
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	return s, opts
}

func TestCheck(t *testing.T) {
	k1, k2, k3, k4, k5, k6, k7 := key(t, 1), key(t, 2), key(t, 3), key(t, 4), key(t, 5), key(t, 6), key(t, 7)
	s, _ := load(t, map[string]*jwk.Key{
		"web.json":   pinned(t, 1, "web.example.com"),                     // every port
		"api.json":   pinned(t, 2, "api.example.com:443", "10.0.0.5:443"), // one key, several hosts
		"api2.json":  pinned(t, 3, "api.example.com:443"),                 // several keys per host
		"wild.json":  pinned(t, 4, "*.lab.example.com", "!secret.lab.example.com"),
		"v6.json":    pinned(t, 5, "[2001:db8::1]:8443"),
		"ipv4.json":  pinned(t, 6, "192.168.1.?"),
		"mixed.json": pinned(t, 7, "db.example.com:5432", "*.db.example.com:5432"),
	})
	type ok = admitted
	var (
		unknown = new(*UnknownHostError)
		changed = new(*KeyChangedError)
	)
	for _, c := range []struct {
		addr string
		k    *jwk.Key
		want any
	}{
		{"web.example.com:443", k1, ok{}},
		{"WEB.example.com:8080", k1, ok{}},
		{"web.example.com.:8080", k1, unknown}, // rooted: another name (TestRootedAndRelativeNamesPinApart)
		{"web.example.com", k1, ok{}},
		{"web.example.com:443", k2, changed},
		{"api.example.com:443", k2, ok{}},
		{"api.example.com:443", k3, ok{}},
		{"api.example.com:443", k1, changed},
		{"api.example.com:80", k2, unknown}, // pinned for another port only
		{"10.0.0.5:443", k2, ok{}},
		{"[::ffff:10.0.0.5]:443", k2, ok{}},
		{"10.0.0.6:443", k2, unknown},
		{"x.lab.example.com:22", k4, ok{}},
		{"a.b.lab.example.com:22", k4, ok{}},
		{"secret.lab.example.com:22", k4, unknown}, // negated
		{"x.lab.example.com:22", k1, unknown},      // wildcard with another key: unknown, not changed
		{"lab.example.com:22", k4, unknown},
		{"[2001:db8::1]:8443", k5, ok{}},
		{"[2001:db8:0::1]:8443", k5, ok{}},
		{"[2001:db8::1]:8443", k6, changed},
		{"[2001:db8::1]:443", k5, unknown},
		{"192.168.1.7:22", k6, ok{}},
		{"192.168.1.17:22", k6, unknown},
		{"db.example.com:5432", k7, ok{}},
		{"db.example.com:5432", k1, changed},
		{"a.db.example.com:5432", k7, ok{}},
		{"a.db.example.com:5432", k1, unknown},
		{"nowhere.example.com:1", k1, unknown},
	} {
		expectCheck(t, s, c.addr, c.k, keyNum(c.k, k1, k2, k3, k4, k5, k6, k7), c.want)
	}
	var ce *KeyChangedError
	if err := s.Check("api.example.com:443", k1); !errors.As(err, &ce) || len(ce.Want) != 2 {
		t.Fatalf("want both pinned keys: %v", err)
	}
}

// admitted is the want of a Check that admits the key (expectCheck).
type admitted struct{}

// expectCheck fails t unless s.Check(addr, k) admits k (want admitted{})
// or returns an error that errors.As finds as want (a pointer to an error
// pointer); n names the key in the message.
func expectCheck(t *testing.T, s *Store, addr string, k *jwk.Key, n int, want any) {
	t.Helper()
	err := s.Check(addr, k)
	if _, ok := want.(admitted); ok {
		if err != nil {
			t.Errorf("%s with key %d: %v", addr, n, err)
		}
	} else if !errors.As(err, want) {
		t.Errorf("%s with key %d: got %v, want %T", addr, n, err, want)
	}
}

func keyNum(k *jwk.Key, keys ...*jwk.Key) int {
	for i, x := range keys {
		if x.Equal(k) {
			return i + 1
		}
	}
	return 0
}

func TestKeyChangedMessage(t *testing.T) {
	old, nw := key(t, 1), key(t, 2)
	s, opts := load(t, map[string]*jwk.Key{"h.json": pinned(t, 1, "[2001:db8::1]:443")})
	err := s.Check("[2001:db8::1]:443", nw)
	msg := err.Error()
	t.Log("\n" + msg)
	for _, want := range []string{
		"knownhosts: the host key of [2001:db8::1]:443 has changed",
		old.Fingerprint(), nw.Fingerprint(),
		filepath.Join(opts.Dirs[0], "h.json"),
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q", want)
		}
	}
	// One line of data; the advice (reinstalled or intercepted, the
	// commands) is the command line's: internal/cli's trust-host tests.
	if strings.Contains(msg, "\n") || strings.Contains(msg, "keytool ") {
		t.Errorf("message %q: want one line without a command", msg)
	}
	var ce *KeyChangedError
	if !errors.As(err, &ce) || ce.Addr != "[2001:db8::1]:443" || ce.Fingerprint != nw.Fingerprint() ||
		len(ce.Want) != 1 || ce.Want[0].Fingerprint != old.Fingerprint() || ce.Want[0].File != filepath.Join(opts.Dirs[0], "h.json") {
		t.Errorf("KeyChangedError fields: %+v", ce)
	}
}

func TestRevoked(t *testing.T) {
	s, opts := load(t, map[string]*jwk.Key{"h.json": pinned(t, 1, "h:443")})
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "k.pem"), keydirtest.PEM(t, key(t, 1)))
	s.Reload()
	var re *RevokedError
	if err := s.Check("h:443", key(t, 1)); !errors.As(err, &re) || re.Err != nil {
		t.Fatalf("got %v", err)
	}
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "bad.pem"), []byte("nonsense"))
	s.Reload()
	if err := s.Check("other:443", key(t, 5)); !errors.As(err, &re) || re.Err == nil {
		t.Fatalf("unreadable revocation list: got %v", err)
	}
}

// A bad address is a problem; a key file without one, in the directory,
// is a key pinned for any address its certificate names (named_test.go).
func TestHostKeyWithABadAddressIsAProblem(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "noaddr.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "badaddr.json"), keydirtest.JWK(t, pinned(t, 2, "a b")))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "ok.json"), keydirtest.JWK(t, pinned(t, 3, "ok")))
	s := Load(opts)
	if p := s.Problems(); len(p) != 1 || p[0].Member != "address" || filepath.Base(p[0].Path) != "badaddr.json" {
		t.Fatalf("problems %v", p)
	}
	if err := s.Check("ok:1", key(t, 3)); err != nil {
		t.Fatal(err)
	}
	// While badaddr.json is skipped, it may pin another key for the
	// address (TestKeyPinnedWithoutAddressWhileFilesSkipped).
	if d := s.Decide("any:1", key(t, 1).SPKIHash()); d.Verdict != Skipped {
		t.Fatalf("noaddr.json beside a skipped file: %v, want Skipped", d.Verdict)
	}
	if err := os.Remove(filepath.Join(opts.Dirs[0], "badaddr.json")); err != nil {
		t.Fatal(err)
	}
	s.Reload()
	if d := s.Decide("any:1", key(t, 1).SPKIHash()); d.Verdict != PinnedIfNamed {
		t.Fatalf("noaddr.json: %v, want PinnedIfNamed", d.Verdict)
	}
}

func TestLibtrustHosts(t *testing.T) {
	k := key(t, 1).PublicKey()
	k.Attrs = jwk.Attributes{}
	k.Attrs.SetList(jwk.AttrHosts, []string{"docker.example.com:2376"})
	s, _ := load(t, map[string]*jwk.Key{"d.json": k})
	if err := s.Check("docker.example.com:2376", k); err != nil {
		t.Fatal(err)
	}
}

func TestFileName(t *testing.T) {
	for in, want := range map[string]string{
		"host.example.com:443": "host.example.com_443.json",
		"Host.Example.com":     "host.example.com.json",
		"[::1]:22":             "__1_22.json",
		"2001:db8::1":          "2001_db8__1.json",
		"10.0.0.1:8443":        "10.0.0.1_8443.json",
		"*.example.com":        "%2A.example.com.json",
		"under_score:1":        "under%5Fscore_1.json",
		"[fe80::1%eth0]:22":    "fe80__1%25eth0_22.json",
	} {
		got, err := FileName(in)
		if err != nil || got != want {
			t.Errorf("FileName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"../x", "a/b", "!host", "x\n", ".."} {
		if got, err := FileName(bad); err == nil {
			t.Errorf("FileName(%q) = %q", bad, got)
		}
	}
}

func TestAddAndRemove(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	s := Load(opts)
	k1, k2 := key(t, 1), key(t, 2)
	path, err := s.Add("Web.Example.com:443", k1)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(opts.Dirs[0], "web.example.com_443.json"); path != want {
		t.Fatalf("path %s, want %s", path, want)
	}
	keys, err := jwk.ReadFile(path)
	if err != nil || len(keys) != 1 {
		t.Fatal(err)
	}
	if a, _ := keys[0].Attrs.Addresses(); len(a) != 1 || a[0] != "web.example.com:443" {
		t.Fatalf("address %v", a)
	}
	if err := s.Check("web.example.com:443", k1); err != nil {
		t.Fatal(err)
	}
	// Again: nothing written, same file.
	if p, err := s.Add("web.example.com:443", k1); err != nil || p != path {
		t.Fatal(p, err)
	}
	// Another key for the same address: refused, nothing written.
	var ce *KeyChangedError
	if _, err := s.Add("web.example.com:443", k2); !errors.As(err, &ce) || ce.Want[0].File != path {
		t.Fatalf("got %v", err)
	}
	// A port-less pin conflicts too.
	if _, err := s.Add("web.example.com", k2); err != nil {
		t.Fatalf("a port-less pin for another key is a different address: %v", err)
	}
	if _, err := s.Add("web.example.com:8443", k1); err == nil || !errors.As(err, &ce) {
		t.Fatalf("the port-less pin now covers :8443 with k2: %v", err)
	}
	entries, _ := keyDirEntries(opts.Dirs[0])
	if len(entries) != 2 {
		t.Fatalf("files: %v", entries)
	}
	// Remove by address.
	rm, err := s.Remove("web.example.com")
	if err != nil || len(rm) != 1 || rm[0].Fingerprint != k2.Fingerprint() {
		t.Fatal(rm, err)
	}
	// One key pinned for two addresses: removing one keeps the other.
	multi := pinned(t, 3, "a.example.com:1", "b.example.com:1")
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "multi.json"), keydirtest.JWK(t, multi))
	if _, err := s.Remove("a.example.com:1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Check("b.example.com:1", multi); err != nil {
		t.Fatal(err)
	}
	var ue *UnknownHostError
	if err := s.Check("a.example.com:1", multi); !errors.As(err, &ue) {
		t.Fatalf("got %v", err)
	}
	// Remove by fingerprint.
	rm, err = s.Remove(multi.Fingerprint())
	if err != nil || len(rm) != 1 {
		t.Fatal(rm, err)
	}
	if _, err := os.Stat(filepath.Join(opts.Dirs[0], "multi.json")); !os.IsNotExist(err) {
		t.Fatal("file left behind")
	}
	if _, err := s.Remove("nothing.example.com"); err == nil {
		t.Fatal("removing nothing must fail")
	}
}

func TestCheckAllocs(t *testing.T) {
	s, _ := load(t, map[string]*jwk.Key{"a.json": pinned(t, 1, "host.example.com:443"), "b.json": pinned(t, 2, "10.1.2.3")})
	sum1, sum2 := key(t, 1).SPKIHash(), key(t, 2).SPKIHash()
	if n := testing.AllocsPerRun(500, func() {
		if s.CheckSPKI("host.example.com:443", sum1) != nil || s.CheckSPKI("10.1.2.3:22", sum2) != nil {
			t.Fatal("check failed")
		}
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

func FuzzPattern(f *testing.F) {
	for _, s := range []string{"host", "host:443", "host.:443", "*.", "[::1]:22", "*.example.com", "!x", "10.0.0.?:1", "[fe80::1%eth0]:22", "a:b:c", "[", "?*?*", "::ffff:1.2.3.4"} {
		f.Add(s, "host.example.com:443")
	}
	f.Fuzz(func(t *testing.T, pat, target string) {
		p, err := parsePattern(pat)
		if err != nil {
			return
		}
		norm := p.String()
		again, err := ParsePattern(norm)
		if err != nil || again != norm {
			t.Fatalf("%q → %q → %q, %v: the normal form must be stable", pat, norm, again, err)
		}
		if name, err := FileName(norm); err == nil {
			if strings.ContainsAny(name, "/\\\x00\n") || name[0] == '.' || strings.Contains(name, "..") && !strings.HasPrefix(name, "%") && strings.Contains(name, "/") {
				t.Fatalf("unsafe file name %q for %q", name, norm)
			}
			for i := 0; i < len(name); i++ {
				c := name[i]
				if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == '%') {
					t.Fatalf("file name %q holds %q", name, c)
				}
			}
		}
		if ip, host, port, err := parseTarget(target); err == nil {
			p.match(ip, host, port) // must not panic
		}
	})
}

// TestHostNamesFoldASCIIOnly: host names compare without case for ASCII
// letters only (RFC 4343, OpenSSH). Unicode case folding would make
// U+212A KELVIN SIGN a 'k', and a name no one pinned look up key.example's
// pins.
func TestHostNamesFoldASCIIOnly(t *testing.T) {
	s, _ := load(t, map[string]*jwk.Key{"a.json": pinned(t, 1, "key.example:443")})
	sum := key(t, 1).SPKIHash()
	if err := s.CheckSPKI("KEY.Example:443", sum); err != nil {
		t.Fatalf("ASCII case must not matter: %v", err)
	}
	for _, target := range []string{"\u212aey.example:443", "\u212aEY.EXAMPLE:443"} {
		if err := s.CheckSPKI(target, sum); err == nil {
			t.Errorf("%q was admitted by key.example's pin", target)
		}
	}
	if norm, err := ParsePattern("\u212aey.example"); err == nil {
		t.Errorf("pattern with a Kelvin sign accepted as %q", norm)
	}
}

// TestCheckLookalikeAddresses: addresses an attacker would offer in place
// of a pinned one — a suffix or prefix of the name, its Unicode form, a
// zone or port written another way, an IPv4 address as the C library's
// inet_aton reads it (010.0.0.7 is 8.0.0.7 to glibc, 10.7 is 10.0.0.7) —
// are neither admitted by the pin nor made a changed key by it: each is
// another address (unknown), or not an address at all. Only the forms
// that name the same destination share the pin: case, IPv4-mapped IPv6, a
// zero-padded port, an IPv6 address written longer. (Review of the
// client's host-key decision, docs/security.md.)
func TestCheckLookalikeAddresses(t *testing.T) {
	k1, k2 := key(t, 1), key(t, 2)
	s, _ := load(t, map[string]*jwk.Key{
		"a.json": pinned(t, 1, "example.com:443"),
		"b.json": pinned(t, 1, "[fe80::1%eth0]:443"),
		"c.json": pinned(t, 1, "10.0.0.7"),
		"d.json": pinned(t, 1, "xn--bcher-kva.example:443"),
	})
	type ok = admitted
	var (
		unknown = new(*UnknownHostError)
		changed = new(*KeyChangedError)
	)
	for _, c := range []struct {
		addr string
		want any // for k1; k2 is then changed where k1 is admitted, else the same
	}{
		{"example.com:443", ok{}},
		{"EXAMPLE.COM:443", ok{}},
		{"example.com:0443", ok{}},
		{"example.com.evil:443", unknown},
		{"evil.example.com:443", unknown},
		{"example.com.:443", unknown},
		{"exampl.com:443", unknown},
		{"[fe80::1%eth0]:443", ok{}},
		{"[fe80::0001%eth0]:443", ok{}},
		{"[fe80::1]:443", unknown},
		{"[fe80::1%2]:443", unknown},
		{"[fe80::1%eth1]:443", unknown},
		{"10.0.0.7:22", ok{}},
		{"[::ffff:10.0.0.7]:22", ok{}},
		{"10.0.0.7.:22", unknown},
		{"010.0.0.7:22", unknown},
		{"10.7:22", unknown},
		{"xn--bcher-kva.example:443", ok{}},
		{"XN--BCHER-KVA.example:443", ok{}},
		{"bücher.example:443", unknown},
	} {
		expectCheck(t, s, c.addr, k1, 1, c.want)
		want2 := c.want
		if _, admits := c.want.(ok); admits {
			want2 = changed
		}
		expectCheck(t, s, c.addr, k2, 2, want2)
	}
	for _, addr := range []string{"example.com:https", "example.com:+443", "example.com:0", "example.com:65979"} {
		if err := s.Check(addr, k1); err == nil || errors.As(err, new(*UnknownHostError)) || errors.As(err, new(*KeyChangedError)) {
			t.Errorf("Check(%q) = %v, want the address refused", addr, err)
		}
	}
}
