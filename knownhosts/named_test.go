package knownhosts

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// selfSigned returns a fresh key and a certificate for it, self-signed,
// naming dns and ips (no CA involved: the pin is what trusts the key).
func selfSigned(t *testing.T, dns []string, ips ...string) (*jwk.Key, *x509.Certificate) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: dns}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwk.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k, cert
}

// Docker's proposal, verbatim: "Copy /var/lib/docker/pub_key.json on
// server to ~/.docker/trusted_hosts.d/server.json on client" — a public key
// with no address, admitted wherever its certificate names the host
// dialled (x509's VerifyHostname: DNS names, wildcards, IP addresses),
// refused where it names another host or none.
func TestKeyPinnedWithoutAddress(t *testing.T) {
	k, named := selfSigned(t, []string{"server", "*.pool.example"}, "127.0.0.1")
	_, other := selfSigned(t, []string{"elsewhere"})
	_, bare := selfSigned(t, nil)
	home := t.TempDir()
	opts := HomeOptions(home)
	file := filepath.Join(opts.Dirs[0], "server.json")
	keydirtest.Write(t, file, keydirtest.JWK(t, k)) // pub_key.json as it is
	s := Load(opts)
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	if e := s.Entries(); len(e) != 1 || !e[0].AnyNamedAddress() || e[0].File != file {
		t.Fatalf("entries %+v, want one key pinned without an address in %s", e, file)
	}
	sum := k.SPKIHash()
	for _, addr := range []string{"server:2376", "127.0.0.1:2376", "node1.pool.example:2376", "Server:1", "elsewhere:2376"} {
		d := s.Decide(addr, sum)
		var ne *NeedsNameError
		if d.Verdict != PinnedIfNamed || !errors.As(d.Err, &ne) || ne.File != file {
			t.Errorf("Decide(%s) = %v, %v; want PinnedIfNamed naming %s", addr, d.Verdict, d.Err, file)
		}
		// Check sees no certificate: never a plain yes.
		if err := s.Check(addr, k); !errors.As(err, &ne) {
			t.Errorf("Check(%s) = %v, want *NeedsNameError", addr, err)
		}
	}
	for _, c := range []struct {
		addr string
		cert *x509.Certificate
		ok   bool
	}{
		{"server:2376", named, true},
		{"SERVER:2376", named, true},
		{"127.0.0.1:2376", named, true},
		{"node1.pool.example:2376", named, true},
		{"pool.example:2376", named, false}, // a wildcard names one label only
		{"127.0.0.2:2376", named, false},
		{"elsewhere:2376", named, false},
		{"server:2376", other, false}, // names another host
		{"server:2376", bare, false},  // names none
		{"server:2376", nil, false},
	} {
		d := WithCertificate(s.Decide(c.addr, sum), c.addr, c.cert)
		if c.ok {
			if d.Verdict != Pinned || d.Err != nil || ErrorOf(d, c.addr, sum) != nil {
				t.Errorf("%s: %v, %v; want Pinned", c.addr, d.Verdict, d.Err)
			}
			continue
		}
		var me *NameMismatchError
		if d.Verdict != Refused || !errors.As(d.Err, &me) || me.File != file || me.Fingerprint != k.Fingerprint() || me.Addr != c.addr {
			t.Errorf("%s: %v, %v; want Refused with *NameMismatchError", c.addr, d.Verdict, d.Err)
			continue
		}
		if c.cert != nil && !slices.Equal(me.Names, append(slices.Clone(c.cert.DNSNames), ipStrings(c.cert)...)) {
			t.Errorf("%s: mismatch names %v", c.addr, me.Names)
		}
	}
	// Another key is not rescued by it, and WithCertificate changes no
	// other verdict.
	k2 := key(t, 2)
	if d := WithCertificate(s.Decide("server:2376", k2.SPKIHash()), "server:2376", named); d.Verdict != Unknown {
		t.Errorf("another key: %v, want Unknown", d.Verdict)
	}
	// A key with no address is pinned by fingerprint only: Remove takes it.
	if _, err := s.Remove(k.Fingerprint()); err != nil {
		t.Fatal(err)
	}
	if d := s.Decide("server:2376", sum); d.Verdict != Unknown {
		t.Errorf("after Remove: %v, want Unknown", d.Verdict)
	}
}

func ipStrings(c *x509.Certificate) []string {
	var out []string
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	return out
}

// The address's own pins decide first: a pin of another key for the
// address is a changed key, never rescued by the key pinned without an
// address; a wildcard pin of another key is not (it cannot know this host
// had another key). A revoked key is refused, and so is every key while a
// revocation input cannot be read.
func TestKeyPinnedWithoutAddressComesLast(t *testing.T) {
	k, named := selfSigned(t, []string{"server"})
	home := t.TempDir()
	opts := HomeOptions(home)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "server.json"), keydirtest.JWK(t, k))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "server_2376.json"), keydirtest.JWK(t, pinned(t, 2, "server:2376")))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "wild.json"), keydirtest.JWK(t, pinned(t, 3, "*.example", "server:9")))
	s := Load(opts)
	sum := k.SPKIHash()

	var changed *KeyChangedError
	d := WithCertificate(s.Decide("server:2376", sum), "server:2376", named)
	if d.Verdict != Changed || !errors.As(d.Err, &changed) || len(changed.Want) != 1 || changed.Want[0].Fingerprint != key(t, 2).Fingerprint() {
		t.Errorf("an address pinned to another key: %v, %v; want Changed naming it", d.Verdict, d.Err)
	}
	if d := s.Decide("server:9", sum); d.Verdict != Changed {
		t.Errorf("server:9, pinned to another key in a file of wildcards: %v, want Changed", d.Verdict)
	}
	if d := WithCertificate(s.Decide("server:22", sum), "server:22", named); d.Verdict != Pinned {
		t.Errorf("another port, no pin: %v, %v; want Pinned", d.Verdict, d.Err)
	}
	if d := s.Decide("server.example:22", sum); d.Verdict != PinnedIfNamed {
		t.Errorf("a host a wildcard of another key matches: %v; want PinnedIfNamed", d.Verdict)
	}
	// Revoked.
	keydirtest.Write(t, filepath.Join(home, "revoked_keys.d", "server.json"), keydirtest.JWK(t, k))
	s.Reload()
	var revoked *RevokedError
	if d := WithCertificate(s.Decide("server:22", sum), "server:22", named); d.Verdict != Revoked || !errors.As(d.Err, &revoked) {
		t.Errorf("revoked: %v, %v; want Revoked", d.Verdict, d.Err)
	}
}

// A key without an address in a trusted-hosts *file* (several keys, one
// file) is still an entry's problem: only a file of the directory, copied
// as it is, stands for a host.
func TestKeyWithoutAddressInTheFileIsAProblem(t *testing.T) {
	k, _ := selfSigned(t, []string{"server"})
	home := t.TempDir()
	keydirtest.Write(t, filepath.Join(home, "trusted_hosts.json"), keydirtest.JWK(t, k, pinned(t, 2, "db:1")))
	s := Load(HomeOptions(home))
	if e := s.Entries(); len(e) != 1 || e[0].AnyNamedAddress() {
		t.Fatalf("entries %+v, want the one with an address", e)
	}
	if p := s.Problems(); len(p) != 1 || p[0].Member != "keys[0].address" {
		t.Fatalf("problems %+v, want keys[0].address", p)
	}
	var skipped *SkippedFilesError
	if d := s.Decide("server:2376", k.SPKIHash()); d.Verdict != Skipped || !errors.As(d.Err, &skipped) {
		t.Errorf("%v, %v; want Skipped", d.Verdict, d.Err)
	}
}

// Pins without an address for purposes: a connection of another purpose
// does not see them, one of theirs does, whichever file comes first; one
// without a purpose sees them and is refused (PurposesOnlyError).
func TestKeyPinnedWithoutAddressByPurpose(t *testing.T) {
	k, _ := selfSigned(t, []string{"server"})
	home := t.TempDir()
	opts := HomeOptions(home)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "a-ldap.json"), keydirtest.JWK(t, withPurpose(k, "ldap")))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "b-pool.json"), keydirtest.JWK(t, withPurpose(k, "pool")))
	s := Load(opts)
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	for purpose, want := range map[string]Verdict{"": Refused, "ldap": PinnedIfNamed, "pool": PinnedIfNamed, "other": Unknown} {
		if d := s.DecidePurpose("server:443", purpose, k.SPKIHash()); d.Verdict != want {
			t.Errorf("purpose %q: %v, want %v", purpose, d.Verdict, want)
		}
	}
}

func withPurpose(k *jwk.Key, purpose string) *jwk.Key {
	k = k.PublicKey()
	if k.Attrs == nil {
		k.Attrs = jwk.Attributes{}
	}
	k.Attrs.SetList(jwk.AttrPurpose, []string{purpose})
	return k
}

// Skipped trust never widens trust, for a key pinned without an address
// too: it is admitted only where no pin of the address holds another key
// (TestKeyPinnedWithoutAddressComesLast), and a skipped file may hold
// such a pin. While a file of pins is skipped — a typo in the address's
// own pin file, a mode made too open — the key is refused naming it
// (Skipped), as an unknown host is, where it would connect wherever its
// certificate names itself: at the address whose pin of another key is
// in the skipped file, the changed-key error turned into a connection.
// Once the file is fixed, the changed key again; elsewhere, a connection.
func TestKeyPinnedWithoutAddressWhileFilesSkipped(t *testing.T) {
	k, named := selfSigned(t, []string{"server"})
	home := t.TempDir()
	opts := HomeOptions(home)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "anykey.json"), keydirtest.JWK(t, k))
	pin := filepath.Join(opts.Dirs[0], "server_2376.json")
	sum := k.SPKIHash()
	for _, tc := range []struct {
		what  string
		spoil func()
	}{
		{"a purpose that is no name", func() {
			keydirtest.Write(t, pin, keydirtest.JWK(t, withPurpose(pinned(t, 2, "server:2376"), "ld ap")))
		}},
		{"the pin file 0666", func() {
			keydirtest.Write(t, pin, keydirtest.JWK(t, pinned(t, 2, "server:2376")))
			if err := os.Chmod(pin, 0o666); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			tc.spoil()
			s := Load(opts)
			if len(s.Problems()) != 1 {
				t.Fatalf("problems %v, want the pin file's", s.Problems())
			}
			for _, addr := range []string{"server:2376", "server:22"} {
				var skipped *SkippedFilesError
				d := WithCertificate(s.Decide(addr, sum), addr, named)
				if d.Verdict != Skipped || !errors.As(d.Err, &skipped) || len(skipped.Problems) != 1 || skipped.Problems[0].Path != pin {
					t.Errorf("%s while %s is skipped: %v, %v; want Skipped naming it", addr, pin, d.Verdict, d.Err)
				}
			}
			keydirtest.Write(t, pin, keydirtest.JWK(t, pinned(t, 2, "server:2376")))
			if err := os.Chmod(pin, 0o644); err != nil {
				t.Fatal(err)
			}
			s.Reload()
			if d := WithCertificate(s.Decide("server:2376", sum), "server:2376", named); d.Verdict != Changed {
				t.Errorf("server:2376 once fixed: %v, %v; want Changed", d.Verdict, d.Err)
			}
			if d := WithCertificate(s.Decide("server:22", sum), "server:22", named); d.Verdict != Pinned {
				t.Errorf("server:22 once fixed: %v, %v; want Pinned", d.Verdict, d.Err)
			}
		})
	}
}
