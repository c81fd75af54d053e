package cli

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
)

// limitsHome is a home for authorize's limits tests, and the directory
// beside it for the clients' key files.
func limitsHome(t *testing.T) (home, files string) {
	t.Helper()
	files = t.TempDir()
	home = filepath.Join(files, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	return home, files
}

// decideFrom is the home's decision on k from addr, freshly loaded.
func decideFrom(home string, k *jwk.Key, addr string) authkeys.Verdict {
	return authkeys.Load(authkeys.HomeOptions(home)).Decide(k.SPKIHash(), netip.MustParseAddr(addr)).Verdict
}

// --from "" and --expires "" (a script's --from "$NETS" with NETS unset)
// are usage errors, as --from " " is: not "no limit", which let the key
// in from anywhere, for ever (found by review, 2026-12-05).
func TestAuthorizeEmptyLimitIsAnError(t *testing.T) {
	home, files := limitsHome(t)
	key := filepath.Join(files, "client.json")
	k := writePublicKey(t, key, nil)
	for _, args := range [][]string{{"--from", ""}, {"--from", " "}, {"--from", ","}, {"--expires", ""}} {
		_, e, code := runKeytool(t, "", append([]string{"-H", home, "authorize", "--name", "bob"}, append(args, key)...)...)
		if code != 2 || !strings.Contains(e, args[0]+":") {
			t.Errorf("authorize %s %q: exit %d, want 2 naming the flag; stderr:\n%s", args[0], args[1], code, e)
		}
	}
	if v := decideFrom(home, k, "203.0.113.9"); v != authkeys.Unknown {
		t.Errorf("after refused commands the key is %v, want unknown", v)
	}
}

// authorize --force replacing the key a name holds warns of the limits
// the old entry had and the new one leaves out, as a rewrite of the same
// key does: the refusal without --force advises --force, and the
// replaced entry's --from and --expires went without a word (found by
// review, 2026-12-05).
func TestAuthorizeForceReplaceWarnsOfDroppedLimits(t *testing.T) {
	home, files := limitsHome(t)
	old, newer := filepath.Join(files, "old.json"), filepath.Join(files, "new.json")
	writePublicKey(t, old, nil)
	k := writePublicKey(t, newer, nil)
	if o, e, code := runKeytool(t, "", "-H", home, "authorize", "--name", "bob", "--from", "10.0.0.0/8", "--expires", "30d", old); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, o, e)
	}
	o, e, code := runKeytool(t, "", "-H", home, "authorize", "--name", "bob", "--force", newer)
	if code != 0 || !strings.HasPrefix(o, "Replaced ") {
		t.Fatalf("--force: exit %d\n%s%s", code, o, e)
	}
	for _, want := range []string{`"bob" may now connect from anywhere: it was limited to 10.0.0.0/8`, `"bob" no longer expires`} {
		if !strings.Contains(e, want) {
			t.Errorf("no warning %q:\n%s", want, e)
		}
	}
	if v := decideFrom(home, k, "203.0.113.9"); v != authkeys.Authorized {
		t.Errorf("the new key is %v, want authorized from anywhere (as the warning says)", v)
	}
}

// authorize --force on the same key, whose client's file now says a wider
// "from" and a later "expires" than the entry had (authorize takes them
// from the file when no flag gives them), warns that the entry is wider:
// a client could widen its own limits each time the admin rewrote its
// entry, say to change its comment (found by review, 2026-12-05).
func TestAuthorizeForceWarnsOfWidenedLimits(t *testing.T) {
	home, files := limitsHome(t)
	first := filepath.Join(files, "bob.json")
	k := writePublicKey(t, first, nil)
	if o, e, code := runKeytool(t, "", "-H", home, "authorize", "--name", "bob", "--from", "10.0.0.0/8", "--expires", "30d", first); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, o, e)
	}
	wide := k.PublicKey()
	wide.Attrs = jwk.Attributes{}
	wide.Attrs.SetList(jwk.AttrFrom, []string{"10.1.0.0/16", "0.0.0.0/0"})
	wide.Attrs.SetString(jwk.AttrExpires, "2099-01-01T00:00:00Z")
	second := filepath.Join(files, "bob2.json")
	if err := jwk.WritePublicKeyFile(second, wide, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	o, e, code := runKeytool(t, "", "-H", home, "authorize", "--name", "bob", "--force", "--comment", "bob laptop", second)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, o, e)
	}
	for _, want := range []string{`"bob" may now connect from 0.0.0.0/0, outside the 10.0.0.0/8`, `"bob" now expires at 2099-01-01T00:00:00Z, later than`} {
		if !strings.Contains(e, want) {
			t.Errorf("no warning %q:\n%s", want, e)
		}
	}
	if strings.Contains(e, "10.1.0.0/16,") || strings.Contains(e, "from 10.1.0.0/16") {
		t.Errorf("a network inside the old limit is named as wider:\n%s", e)
	}
	// Narrower is said nothing of.
	narrow := k.PublicKey()
	narrow.Attrs = jwk.Attributes{}
	narrow.Attrs.SetList(jwk.AttrFrom, []string{"10.2.0.0/16"})
	third := filepath.Join(files, "bob3.json")
	if err := jwk.WritePublicKeyFile(third, narrow, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if o, e, code := runKeytool(t, "", "-H", home, "authorize", "--name", "bob", "--force", "--from", "10.2.0.0/16", "--expires", "1d", third); code != 0 || strings.Contains(e, "warning") {
		t.Errorf("a narrower rewrite: exit %d, stderr:\n%s%s", code, o, e)
	}
}
