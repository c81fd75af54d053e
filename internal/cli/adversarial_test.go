package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// TestTrustHostHostileAddresses gives `keytool trust-host` addresses that
// try to leave trusted_hosts.d, hide the file, or smuggle a second line or
// member into it. Each is either refused (nothing written anywhere) or
// pinned in exactly one new file directly inside trusted_hosts.d, under a
// safe name, holding one key whose address list is exactly the normalised
// address (no injected pattern).
func TestTrustHostHostileAddresses(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	keyFile := filepath.Join(root, "host.json")
	writePublicKey(t, keyFile, nil)
	hostDir := filepath.Join(home, "trusted_hosts.d")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	pinned := 0
	for _, addr := range []string{
		"../../etc/passwd:22", "..:22", ".:22", "./x:22", "a/b:22", "/abs:443", `a\b:22`, "x/../../y",
		"a\nb:22", "host:22\n*", "evil\naddress: *", `evil","address":["*"],"x":"`, "a\rb:22", "a\tb:22",
		"a\x00b:22", "\x1b[31mred:22", "a\u2028b:22", "bad\xffutf8:22", ".hidden:22", "host:22/../../x",
		"[::1/../x]:22", "[fe80::1%eth0/..]:22", "*", "!host:22", strings.Repeat("n", 300) + ":22",
	} {
		before := filesUnder(t, root)
		stdout, stderr, code := runKeytool(t, "", "-H", home, "trust-host", addr, "--key", keyFile)
		after := filesUnder(t, root)
		var added []string
		for _, f := range after {
			// The lock file of the directory's writers (docs/design.md,
			// "Concurrent writers"), made by the first pin, is no file
			// the address chose.
			if !slices.Contains(before, f) && f != filepath.Join("home", "trusted_hosts.d", ".keytool.lock") {
				added = append(added, f)
			}
		}
		if code != 0 {
			if len(added) != 0 {
				t.Errorf("%q refused (exit %d) but files were written: %q", addr, code, added)
			}
			if !strings.Contains(stderr, "keytool trust-host: address") {
				t.Errorf("%q: refused without saying the address is invalid: %s", addr, stderr)
			}
			if strings.ContainsAny(strings.TrimSuffix(stderr, "\n"), "\r\x00\x1b") {
				t.Errorf("%q: the raw address reached the terminal: %q", addr, stderr)
			}
			continue
		}
		pinned++
		if len(added) != 1 || filepath.Dir(filepath.Join(root, added[0])) != hostDir {
			t.Errorf("%q: files written %q, want one inside trusted_hosts.d\nstdout: %s\nstderr: %s", addr, added, stdout, stderr)
			continue
		}
		name := filepath.Base(added[0])
		if err := keydir.CheckName(strings.TrimSuffix(name, ".json")); err != nil || keydir.Ignored(name) {
			t.Errorf("%q: pinned under the unsafe name %q (%v)", addr, name, err)
		}
		keys, err := jwk.ReadFile(filepath.Join(hostDir, name))
		if err != nil || len(keys) != 1 {
			t.Errorf("%q: %s holds %d keys, err %v", addr, name, len(keys), err)
			continue
		}
		addrs, _ := keys[0].Attrs.List(jwk.AttrAddress)
		if len(addrs) != 1 || strings.ContainsAny(addrs[0], "\n\r/\\\x00") {
			t.Errorf("%q: pinned addresses %q", addr, addrs)
		}
		t.Logf("%q pinned as %q in %s", addr, addrs, name)
		if err := os.Remove(filepath.Join(hostDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d addresses pinned under safe names, the others refused", pinned)
}
