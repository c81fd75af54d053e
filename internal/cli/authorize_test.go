package cli

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// runKeytool runs keytool in-process and returns its output and status.
func runKeytool(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// keyDirEntries lists dir as os.ReadDir does, without the lock file
// keytool's writers of the directory take (keydir's .keytool.lock, made
// by the first of them: docs/design.md, "Concurrent writers").
func keyDirEntries(dir string) ([]os.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	return slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == ".keytool.lock" }), err
}

// filesUnder lists every file and directory under root, relative to it.
func filesUnder(t *testing.T, root string) []string {
	t.Helper()
	var list []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		list = append(list, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func writePublicKey(t *testing.T, path string, attrs map[string]string) *jwk.Key {
	t.Helper()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	pk := k.PublicKey()
	pk.Attrs = jwk.Attributes{}
	for n, v := range attrs {
		pk.Attrs.SetString(n, v)
	}
	if err := jwk.WritePublicKeyFile(path, pk, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	return pk
}

// TestAuthorizeHostileNames gives --name values that could leave
// authorized_keys.d, hide the file, or upset a terminal: each is bad usage
// (exit 2) and nothing is written anywhere.
func TestAuthorizeHostileNames(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	key := filepath.Join(root, "client.json")
	writePublicKey(t, key, nil)
	if err := os.MkdirAll(filepath.Join(home, "authorized_keys.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := filesUnder(t, root)

	for _, name := range []string{
		"../x", "../../x", "..", ".", "a/b", "/abs", `a\b`, ".hidden", "x/../../y",
		"a\nb", "a\rb", "a\tb", "a\x00b", "\x1b[31mred", "a\u2028b", "a\u0085b",
		"bad\xffutf8", "backup~", "#autosave#", strings.Repeat("n", 201),
	} {
		stdout, stderr, code := runKeytool(t, "", "-H", home, "authorize", "--name", name, key)
		if code != 2 {
			t.Errorf("--name %q: exit status %d, want 2\nstdout: %s\nstderr: %s", name, code, stdout, stderr)
		}
		if !strings.Contains(stderr, "invalid name") {
			t.Errorf("--name %q: stderr does not say the name is invalid: %s", name, stderr)
		}
		if strings.ContainsAny(stderr[:len(stderr)-1], "\r\x00\x1b") || strings.Count(stderr, "\n") != 2 {
			t.Errorf("--name %q: the raw name reached the terminal: %q", name, stderr)
		}
	}
	if after := filesUnder(t, root); !slices.Equal(before, after) {
		t.Errorf("files changed:\nbefore %q\nafter  %q", before, after)
	}
}

// TestAuthorizeDerivedNames checks that names taken from a key's comment or
// "name" attribute, or from the file's name, are made safe: whatever they
// hold, the key lands in authorized_keys.d under a plain name.
func TestAuthorizeDerivedNames(t *testing.T) {
	for _, tc := range []struct {
		attr, value string // an attribute of the key
		file        string // the file's name
		want        string // the entry name
	}{
		{"comment", "../../etc/passwd", "k.json", "etc-passwd"},
		{"comment", "alice@laptop", "k.json", "alice@laptop"},
		{"comment", "\x1b[31mred\nline", "k.json", "31mred-line"},
		{"comment", "Zoë's key", "k.json", "Zo-s-key"},
		{"name", "/srv/../x", "k.json", "srv-..-x"},
		{"comment", "...", "..alice..pub", "alice"},
		{"", "", "pub_bob.json", "bob"},
		{"", "", "carol.pub", "carol"},
		{"", "", "dave.pem", "dave"},
		{"", "", "\x1b]0;evil\x07.json", "0-evil"},
	} {
		root := t.TempDir()
		home := filepath.Join(root, "home")
		mkHome(t, home) // commands that write refuse a home that is not there
		key := filepath.Join(root, tc.file)
		attrs := map[string]string{}
		if tc.attr != "" {
			attrs[tc.attr] = tc.value
		}
		writePublicKey(t, key, attrs)
		stdout, stderr, code := runKeytool(t, "", "-H", home, "authorize", key)
		if code != 0 {
			t.Errorf("%s %q in %q: exit status %d\n%s", tc.attr, tc.value, tc.file, code, stderr)
			continue
		}
		want := filepath.Join(home, "authorized_keys.d", tc.want+".json")
		if _, err := os.Stat(want); err != nil {
			t.Errorf("%s %q in %q: %v\nstdout: %s\nstderr: %s", tc.attr, tc.value, tc.file, err, stdout, stderr)
		}
		got := filesUnder(t, root)
		if len(got) != 6 { // ., home, home/authorized_keys.d, its .keytool.lock, the entry, the key file
			t.Errorf("%s %q in %q: files %q", tc.attr, tc.value, tc.file, got)
		}
	}
}

// TestAuthorizeNoName: with no --name and nothing to take a name from, the
// key is refused with a hint, and nothing is written.
func TestAuthorizeNoName(t *testing.T) {
	for _, file := range []string{"pub_key.json", "id_ed25519.pub", "key.pem", "---.json"} {
		root := t.TempDir()
		home := filepath.Join(root, "home")
		mkHome(t, home) // commands that write refuse a home that is not there
		key := filepath.Join(root, file)
		writePublicKey(t, key, nil)
		_, stderr, code := runKeytool(t, "", "-H", home, "authorize", key)
		if code != 1 || !strings.Contains(stderr, "authorize --name NAME") {
			t.Errorf("%s: exit status %d, stderr %s", file, code, stderr)
		}
		if _, err := os.Stat(filepath.Join(home, "authorized_keys.d")); err == nil {
			t.Errorf("%s: authorized_keys.d was created", file)
		}
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 500, time.UTC)
	for in, want := range map[string]string{
		"30d":                       "2030-01-31T12:00:00Z",
		"2w":                        "2030-01-15T12:00:00Z",
		"99999d":                    "2303-10-17T12:00:00Z",
		"99999w":                    "3946-07-09T12:00:00Z",
		"12h":                       "2030-01-02T00:00:00Z",
		"1h30m":                     "2030-01-01T13:30:00Z",
		"2031-02-03T04:05:06Z":      "2031-02-03T04:05:06Z",
		"2031-02-03T04:05:06+02:00": "2031-02-03T02:05:06Z",
	} {
		got, err := parseExpiry(in, now)
		if err != nil || got.Format(time.RFC3339) != want {
			t.Errorf("parseExpiry(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "-1h", "30", "30 d", "1y", "2029-12-31T00:00:00Z", "2030-01-31", "tomorrow", "999999d"} {
		if got, err := parseExpiry(in, now); err == nil {
			t.Errorf("parseExpiry(%q) = %v, want an error", in, got)
		}
	}
}
