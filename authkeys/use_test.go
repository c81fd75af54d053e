package authkeys

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// A client key marked for anything but verifying signatures ("use":"enc",
// a key_ops without "verify") authorizes nothing: its entry is a problem
// naming the file and the member, and the file's other keys still load
// (jwk's rule of what a key is for, docs/keys.md).
func TestKeyForEncryptionNotAuthorized(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	d := opts.Dirs[0]
	alice, bob, carol, dave := key(t, 1), key(t, 2), key(t, 3), key(t, 4)
	withRaw := func(k *jwk.Key, name, raw string) *jwk.Key {
		k = keydirtest.WithAttrs(k)
		if k.Attrs == nil {
			k.Attrs = jwk.Attributes{}
		}
		k.Attrs[name] = []byte(raw)
		return k
	}
	keydirtest.Write(t, filepath.Join(d, "alice.json"), keydirtest.JWK(t, withRaw(alice, "use", `"enc"`)))
	keydirtest.Write(t, filepath.Join(d, "bob.json"), keydirtest.JWK(t, withRaw(bob, "key_ops", `["verify"]`)))
	keydirtest.Write(t, filepath.Join(d, "team.json"), keydirtest.JWK(t, withRaw(carol, "key_ops", `["encrypt"]`), dave))
	s := Load(opts)
	problems := s.Problems()
	if len(problems) != 2 {
		t.Fatalf("problems %v, want alice.json's and team.json's", problems)
	}
	for _, p := range problems {
		var ue *jwk.UseError
		if !errors.As(p.Err, &ue) || !strings.HasSuffix(p.Path, "alice.json") && !strings.HasSuffix(p.Path, "team.json") {
			t.Errorf("problem %v (%T), want a *jwk.UseError", p, p.Err)
		}
		t.Log(p)
	}
	remote := netip.MustParseAddr("192.0.2.1")
	for _, c := range []struct {
		k  *jwk.Key
		ok bool
	}{{alice, false}, {bob, true}, {carol, false}, {dave, true}} {
		_, err := s.LookupKey(c.k, remote)
		var na *NotAuthorizedError
		if c.ok && err != nil || !c.ok && !errors.As(err, &na) {
			t.Errorf("%s: %v, want authorized %v", c.k.Fingerprint(), err, c.ok)
		}
	}
}

// A revoked key is refused whatever it is marked for: a revocation file
// holding a key marked "use":"enc" (beside an unmarked one) revokes both,
// and refuses nothing else — refusing is not using the key, and reading
// the file as a bad one would have refused every key (or, had it been
// skipped, lost the revocation). An authorized copy of the key does not
// help it.
func TestRevokedKeyForEncryptionStillRevoked(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	alice, bob, carol := key(t, 1), key(t, 2), key(t, 3)
	enc := keydirtest.WithAttrs(alice, "use", "enc")
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "alice.json"), keydirtest.JWK(t, alice))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "carol.json"), keydirtest.JWK(t, carol))
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "gone.json"), keydirtest.JWK(t, bob, enc))
	s := Load(opts)
	if p := s.Problems(); len(p) != 0 {
		t.Fatalf("problems %v, want none", p)
	}
	remote := netip.MustParseAddr("192.0.2.1")
	for _, k := range []*jwk.Key{alice, bob} {
		var re *RevokedError
		if _, err := s.LookupKey(k, remote); !errors.As(err, &re) {
			t.Errorf("%s: %v, want a *RevokedError", k.Fingerprint(), err)
		}
	}
	if _, err := s.LookupKey(carol, remote); err != nil {
		t.Errorf("carol, authorized and not revoked: %v", err)
	}
}
