package jwk

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
)

// tmpFiles lists the atomic writer's temporary files left in dir.
func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || strings.HasSuffix(e.Name(), ".tmp") {
			left = append(left, e.Name())
		}
	}
	return left
}

func fileMode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestWriteFiles(t *testing.T) {
	for _, f := range []Format{JWK, PEM} {
		t.Run(string(f), func(t *testing.T) {
			dir := t.TempDir()
			k := withAttrs(testKey(t, EC256), Attributes{})
			k.Attrs.SetString(AttrComment, "first")
			priv := filepath.Join(dir, "key"+f.Ext())
			pub := filepath.Join(dir, "pub_key"+f.Ext())

			if err := WritePrivateKeyFile(priv, k, f, CreateNew); err != nil {
				t.Fatal(err)
			}
			if err := WritePublicKeyFile(pub, k, f, CreateNew); err != nil {
				t.Fatal(err)
			}
			if m := fileMode(t, priv); m != 0o600 {
				t.Errorf("private file mode %04o, want 0600", m)
			}
			if m := fileMode(t, pub); m != 0o644 {
				t.Errorf("public file mode %04o, want 0644", m)
			}
			if left := tmpFiles(t, dir); left != nil {
				t.Errorf("temporary files left: %v", left)
			}
			first, _ := os.ReadFile(priv)
			if !bytes.Equal(first, mustMarshal(t, k, f, true)) {
				t.Error("the private file is not MarshalPrivate's output")
			}
			if got, _ := os.ReadFile(pub); !bytes.Equal(got, mustMarshal(t, k, f, false)) {
				t.Error("the public file is not MarshalPublic's output")
			}

			// Both read back; the private one at 0600 is fine.
			rk, err := ReadPrivateKeyFile(priv)
			if err != nil || !rk.Equal(k) || rk.Attrs.Comment() != "first" {
				t.Fatalf("ReadPrivateKeyFile: %v", err)
			}
			pk, err := ReadFile(pub)
			if err != nil || len(pk) != 1 || pk[0].IsPrivate() || !pk[0].Equal(k) {
				t.Fatalf("ReadFile(pub): %v", err)
			}
			if _, err := ReadPrivateKeyFile(pub); err == nil {
				t.Error("ReadPrivateKeyFile accepted a public key")
			}

			// Create semantics: a second write without overwrite fails and
			// changes nothing.
			other := withAttrs(testKey(t, Ed25519), nil)
			err = WritePrivateKeyFile(priv, other, f, CreateNew)
			if !errors.Is(err, fs.ErrExist) {
				t.Errorf("second WritePrivateKeyFile: %v, want fs.ErrExist", err)
			}
			if got, _ := os.ReadFile(priv); !bytes.Equal(got, first) {
				t.Error("a failed create changed the file")
			}
			if err := WritePublicKeyFile(pub, other, f, CreateNew); !errors.Is(err, fs.ErrExist) {
				t.Errorf("second WritePublicKeyFile: %v, want fs.ErrExist", err)
			}
			if left := tmpFiles(t, dir); left != nil {
				t.Errorf("temporary files left after a failure: %v", left)
			}

			// Overwrite replaces, keeping the modes.
			if err := WritePrivateKeyFile(priv, other, f, Overwrite); err != nil {
				t.Fatal(err)
			}
			if err := WritePublicKeyFile(pub, other, f, Overwrite); err != nil {
				t.Fatal(err)
			}
			if rk, err := ReadPrivateKeyFile(priv); err != nil || !rk.Equal(other) {
				t.Errorf("after overwrite: %v", err)
			}
			if m := fileMode(t, priv); m != 0o600 {
				t.Errorf("overwritten private file mode %04o", m)
			}
			if m := fileMode(t, pub); m != 0o644 {
				t.Errorf("overwritten public file mode %04o", m)
			}

			// A public key cannot be written as a private file; nothing is
			// left behind.
			if err := WritePrivateKeyFile(filepath.Join(dir, "nope"+f.Ext()), k.PublicKey(), f, CreateNew); err == nil {
				t.Error("WritePrivateKeyFile of a public key succeeded")
			}
			if _, err := os.Stat(filepath.Join(dir, "nope"+f.Ext())); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a failed write created the file: %v", err)
			}
			// Writing into a missing directory fails cleanly.
			if err := WritePublicKeyFile(filepath.Join(dir, "missing", "k.json"), k, f, CreateNew); err == nil {
				t.Error("write into a missing directory succeeded")
			}
			if left := tmpFiles(t, dir); left != nil {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

func TestReadFilePermissions(t *testing.T) {
	k := testKey(t, EC256)
	for _, f := range []Format{JWK, PEM} {
		for _, c := range []struct {
			mode    fs.FileMode
			private bool
			ok      bool
		}{
			{0o600, true, true},
			{0o400, true, true},
			{0o700, true, true},
			{0o644, true, false},
			{0o640, true, false},
			{0o604, true, false},
			{0o660, true, false},
			{0o644, false, true},
			{0o666, false, true},
		} {
			dir := t.TempDir()
			path := writeFile(t, dir, "key"+f.Ext(), mustMarshal(t, k, f, c.private), c.mode)
			keys, err := ReadFile(path)
			if c.ok {
				if err != nil || len(keys) != 1 {
					t.Errorf("%s private=%v mode %04o: %v", f, c.private, c.mode, err)
				}
				continue
			}
			var pe *PermissionError
			if !errors.As(err, &pe) {
				t.Errorf("%s mode %04o: got %v, want a *PermissionError", f, c.mode, err)
				continue
			}
			if pe.File != path || fs.FileMode(pe.Mode) != c.mode {
				t.Errorf("PermissionError{%q, %04o}, want {%q, %04o}", pe.File, pe.Mode, path, c.mode)
			}
			wantSubstrings(t, err.Error(), "too open", path)
			if _, err := ReadPrivateKeyFile(path); !errors.As(err, &pe) {
				t.Errorf("ReadPrivateKeyFile: %v, want a *PermissionError", err)
			}
			// The same check of the bytes and information a caller read.
			data, fi, err := trustfile.Read(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParsePrivateKeyFile(path, data, fi); !errors.As(err, &pe) {
				t.Errorf("ParsePrivateKeyFile: %v, want a *PermissionError", err)
			}
			// ReadPublicKeys names the key whatever the mode, and gives
			// only its public half.
			if pub, err := ReadPublicKeys(path); err != nil || len(pub) != 1 || pub[0].IsPrivate() || pub[0].Fingerprint() != k.Fingerprint() {
				t.Errorf("ReadPublicKeys of a private key at %04o: %v %v", c.mode, pub, err)
			}
		}
	}
	// A private key anywhere in a set makes the whole file private.
	dir := t.TempDir()
	set := append(mustMarshal(t, testKey(t, Ed25519), PEM, false), mustMarshal(t, k, PEM, true)...)
	path := writeFile(t, dir, "mixed.pem", set, 0o644)
	var pe *PermissionError
	if _, err := ReadFile(path); !errors.As(err, &pe) {
		t.Errorf("public + private bundle at 0644: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if keys, err := ReadFile(path); err != nil || len(keys) != 2 || keys[0].IsPrivate() || !keys[1].IsPrivate() {
		t.Errorf("public + private bundle at 0600: %v", err)
	}
	if _, err := ReadPrivateKeyFile(path); err == nil {
		t.Error("ReadPrivateKeyFile accepted two keys")
	}
}

func TestFindIdentity(t *testing.T) {
	dir := t.TempDir()
	_, err := FindIdentity(dir)
	var ne *NoIdentityError
	if !errors.As(err, &ne) || ne.Home != dir {
		t.Fatalf("empty home: %v, want a *NoIdentityError", err)
	}
	wantSubstrings(t, err.Error(), "jwk: no identity in "+dir, "key.json", "key.pem")
	// A caller that makes an identity where there is none asks the usual
	// question (found by review: it had to know this type).
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty home: errors.Is(%v, fs.ErrNotExist) = false", err)
	}
	if _, err := FindIdentity(filepath.Join(dir, "missing")); !errors.As(err, &ne) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a home that is not there: %v, want a *NoIdentityError that is fs.ErrNotExist", err)
	}
	// The empty home is the current directory (home.Dir("")'s names are
	// relative), not "in  (looked for …)".
	if got := (&NoIdentityError{}).Error(); !strings.HasPrefix(got, "jwk: no identity in the current directory (looked for key.json") {
		t.Errorf("NoIdentityError{} = %q", got)
	}

	// Public halves and other files are not identities.
	for _, name := range append(PublicFileNames(), "key.json.bak", ".key.json.123.tmp") {
		writeFile(t, dir, name, []byte("x"), 0o644)
	}
	if _, err := FindIdentity(dir); !errors.As(err, &ne) {
		t.Errorf("home with only public keys: %v", err)
	}

	for _, name := range IdentityFileNames() {
		d := t.TempDir()
		want := writeFile(t, d, name, []byte("x"), 0o600)
		if got, err := FindIdentity(d); err != nil || got != want {
			t.Errorf("%s: FindIdentity = %q, %v", name, got, err)
		}
	}

	// A dangling symlink still counts: the admin meant something.
	d := t.TempDir()
	if err := os.Symlink(filepath.Join(d, "elsewhere"), filepath.Join(d, "key.pem")); err != nil {
		t.Fatal(err)
	}
	if got, err := FindIdentity(d); err != nil || got != filepath.Join(d, "key.pem") {
		t.Errorf("symlink: %q, %v", got, err)
	}

	writeFile(t, dir, "key.json", []byte("x"), 0o600)
	writeFile(t, dir, "key.pem", []byte("x"), 0o600)
	_, err = FindIdentity(dir)
	if err == nil || errors.As(err, &ne) {
		t.Fatalf("two identities: %v", err)
	}
	wantSubstrings(t, err.Error(), filepath.Join(dir, "key.json"), filepath.Join(dir, "key.pem"))
}
