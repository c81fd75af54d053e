package knownhosts

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// TestPinPurposes: a pin may be for some purposes only (XAPI's pinned
// certificates by purpose, the "purpose" member as a JSON list or a PEM
// header). For a connection of another purpose it is not there: it
// neither admits its key nor makes another key a changed one. Pins
// without a purpose apply to every purpose, and Decide (no purpose) sees
// every pin. An empty list is an error, not "every purpose".
func TestPinPurposes(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "trusted_hosts.d")
	ldap := pinned(t, 1, "ldap.example:636")
	ldap.Attrs.SetList(jwk.AttrPurpose, []string{"ldap", "appliance"})
	keydirtest.Write(t, filepath.Join(dir, "ldap.json"), keydirtest.JWK(t, ldap))
	keydirtest.Write(t, filepath.Join(dir, "any.json"), keydirtest.JWK(t, pinned(t, 2, "any.example:443")))
	pool := pinned(t, 3, "pool.example:443")
	pool.Attrs.SetString(jwk.AttrPurpose, "pool") // a PEM header: "purpose: pool"
	keydirtest.Write(t, filepath.Join(dir, "pool.pem"), keydirtest.PEM(t, pool))
	s := Load(HomeOptions(home))
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	for _, c := range []struct {
		addr, purpose string
		key           int
		want          Verdict
	}{
		{"ldap.example:636", "ldap", 1, Pinned},
		{"ldap.example:636", "appliance", 1, Pinned},
		{"ldap.example:636", "ldap", 9, Changed},
		{"ldap.example:636", "pool", 1, Unknown}, // not pinned for pool
		{"ldap.example:636", "pool", 9, Unknown}, // nor a changed key
		{"ldap.example:636", "", 1, Pinned},      // no purpose: every pin
		{"ldap.example:636", "", 9, Changed},
		{"any.example:443", "ldap", 2, Pinned}, // a pin without purpose: every purpose
		{"any.example:443", "ldap", 9, Changed},
		{"pool.example:443", "pool", 3, Pinned}, // from the PEM header
		{"pool.example:443", "ldap", 3, Unknown},
	} {
		if got := s.DecidePurpose(c.addr, c.purpose, key(t, c.key).SPKIHash()).Verdict; got != c.want {
			t.Errorf("DecidePurpose(%s, %q, key %d) = %v, want %v", c.addr, c.purpose, c.key, got, c.want)
		}
	}
	if got := s.Entries()[1].Purposes; strings.Join(got, ",") != "ldap,appliance" {
		t.Errorf("Entry.Purposes = %v", got)
	}

	empty := pinned(t, 4, "e.example")
	empty.Attrs.SetList(jwk.AttrPurpose, []string{})
	keydirtest.Write(t, filepath.Join(dir, "empty.json"), keydirtest.JWK(t, empty))
	s.Reload()
	if p := s.Problems(); len(p) != 1 || !strings.Contains(p[0].Error(), "purpose") {
		t.Fatalf("an empty purpose list: problems %v", p)
	}
}
