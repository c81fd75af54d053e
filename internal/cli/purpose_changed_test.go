package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// TestTrustHostPurposesChangedKey: trust-host --purpose with several
// purposes, one of which pins the address to another key, meets a
// changed key, whatever the order the purposes are given in — the
// changed-key message, never the first-use question as for a host with
// no pin. trust-host decided by the first purpose that did not pin the
// key, so --purpose ldap,pool (no pin for ldap, another key pinned for
// pool) asked as for an unknown host, and without a terminal said "no
// key is pinned for it" and advised a command that then failed, where
// --purpose pool,ldap said the key had changed (found by review).
// Nothing is pinned either way.
func TestTrustHostPurposesChangedKey(t *testing.T) {
	addr, key := keytoolServer(t)
	for _, purposes := range []string{"pool,ldap", "ldap,pool", "ldap,pool,backup"} {
		t.Run(purposes, func(t *testing.T) {
			home := newClientHome(t)
			old, _ := jwk.Generate(jwk.EC256)
			file := filepath.Join(t.TempDir(), "old.json")
			if err := jwk.WritePublicKeyFile(file, old, jwk.JWK, jwk.CreateNew); err != nil {
				t.Fatal(err)
			}
			if _, e, code := keytoolIn(t, home, "trust-host", addr, "--key", file, "--purpose", "pool"); code != 0 {
				t.Fatal(e)
			}
			before, _ := os.ReadFile(pinFile(home, addr))
			_, e, code := keytoolIn(t, home, "trust-host", addr, "--purpose", purposes)
			if code != 1 || !strings.Contains(e, "The host key of "+addr+" has changed!") ||
				!strings.Contains(e, key.Fingerprint()) || !strings.Contains(e, old.Fingerprint()) || strings.Contains(e, "no key is pinned") {
				t.Errorf("trust-host --purpose %s: exit %d, want 1 with the changed-key message naming both keys:\n%s", purposes, code, e)
			}
			if after, _ := os.ReadFile(pinFile(home, addr)); string(after) != string(before) {
				t.Error("the pin changed")
			}
			if entries, _ := keyDirEntries(filepath.Join(home, "trusted_hosts.d")); len(entries) != 1 {
				t.Errorf("trusted_hosts.d holds %d files, want the one pin", len(entries))
			}
		})
	}
}
