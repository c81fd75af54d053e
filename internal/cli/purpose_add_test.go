package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// TestPurposesOnlyBesideOtherKeysPinsWithAdd: the server's key is pinned
// for ldap, another key for pool. A connection without a purpose is
// refused, and trust-host without --purpose meets a changed key; both
// say to pin the key beside the other one (trust-host ADDR --add
// --fingerprint FP), and that command, pasted, pins it for every purpose
// — it refused it as a changed key, so the advice sent the user round in
// a loop (found by review, 2026-12-06).
func TestPurposesOnlyBesideOtherKeysPinsWithAdd(t *testing.T) {
	client := newClientHome(t)
	clientKey := pinnedKeyOf(t, client)
	addr, key := tlsTestServer(t, clientKey)
	other, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile, otherFile := filepath.Join(dir, "server.json"), filepath.Join(dir, "other.json")
	for f, k := range map[string]*jwk.Key{keyFile: key.PublicKey(), otherFile: other.PublicKey()} {
		if err := jwk.WritePublicKeyFile(f, k, jwk.JWK, jwk.CreateNew); err != nil {
			t.Fatal(err)
		}
	}
	for _, pin := range [][]string{{keyFile, "ldap"}, {otherFile, "pool"}} {
		if _, e, code := keytoolIn(t, client, "trust-host", addr, "--key", pin[0], "--purpose", pin[1]); code != 0 {
			t.Fatal(e)
		}
	}
	add := "keytool -H " + client + " trust-host " + addr + " --add --fingerprint " + key.Fingerprint()
	_, e, code := keytoolIn(t, client, "connect", addr)
	if code != 1 || !strings.Contains(e, "not for a connection without a purpose") || !strings.Contains(e, "\n  "+add+"\n") && !strings.HasSuffix(strings.TrimRight(e, "\n"), "\n  "+add) {
		t.Errorf("connect without a purpose: exit %d, want 1 and the advice %q:\n%s", code, add, e)
	}
	_, e, code = keytoolIn(t, client, "trust-host", addr, "--yes")
	if code != 1 || !strings.Contains(e, "has changed!") || !strings.Contains(e, "\n  "+add) {
		t.Errorf("trust-host --yes: exit %d, want 1, a changed key and the advice %q:\n%s", code, add, e)
	}
	// The advice, pasted.
	args := strings.Fields(add)[3:] // after keytool -H HOME
	out, e, code := keytoolIn(t, client, args...)
	if code != 0 || !strings.Contains(out, "Pinned ") {
		t.Fatalf("%s: exit %d\n%s%s", add, code, out, e)
	}
	hosts := knownhosts.Load(knownhosts.HomeOptions(client))
	if d := hosts.Decide(addr, key.SPKIHash()); d.Verdict != knownhosts.Pinned {
		t.Errorf("after %s: %v (%v)", add, d.Verdict, d.Err)
	}
	if d := hosts.DecidePurpose(addr, "pool", other.SPKIHash()); d.Verdict != knownhosts.Pinned {
		t.Errorf("the other key's pin for pool: %v (%v)", d.Verdict, d.Err)
	}
	if d := hosts.Decide(addr, other.SPKIHash()); d.Verdict == knownhosts.Pinned {
		t.Errorf("the other key, pinned for pool, admits a connection without a purpose")
	}
	out, e, code = keytoolIn(t, client, "connect", addr)
	if code != 0 || !strings.Contains(out, "hello") {
		t.Errorf("connect after pinning for every purpose: exit %d\n%s%s", code, out, e)
	}
}

// pinnedKeyOf is the public key of home's identity.
func pinnedKeyOf(t *testing.T, home string) *jwk.Key {
	t.Helper()
	keys, err := jwk.ReadFile(filepath.Join(home, "pub_key.json"))
	if err != nil {
		if _, statErr := os.Stat(home); statErr != nil {
			t.Fatal(statErr)
		}
		t.Fatal(err)
	}
	return keys[0]
}
