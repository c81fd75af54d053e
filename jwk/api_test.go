package jwk

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// The lists jwk exports are the caller's copies: changing one changes
// nothing in jwk, nor what the next caller gets.
func TestExportedListsAreCopies(t *testing.T) {
	types := Types()
	types[0] = "dsa"
	if Types()[0] != EC256 {
		t.Errorf("Types()[0] = %q after a caller changed its copy", Types()[0])
	}
	if _, err := ParseType("ec256"); err != nil {
		t.Errorf("ParseType(ec256) after a caller changed its copy: %v", err)
	}

	names := IdentityFileNames()
	pub := PublicFileNames()
	if !slices.Equal(names, []string{"key.json", "key.jwk", "key.pem"}) || !slices.Equal(pub, []string{"pub_key.json", "pub_key.jwk", "pub_key.pem"}) {
		t.Fatalf("IdentityFileNames() = %q, PublicFileNames() = %q", names, pub)
	}
	names[0], pub[0] = "other.json", "other.json"
	if IdentityFileNames()[0] != "key.json" || PublicFileNames()[0] != "pub_key.json" {
		t.Errorf("the lists changed with a caller's copy: %q, %q", IdentityFileNames(), PublicFileNames())
	}
	members := PrivateMembers()
	members[0] = "kid"
	if !IsPrivateMember("d") || IsPrivateMember("kid") || PrivateMembers()[0] != "d" {
		t.Errorf("the private members changed with a caller's copy: %q", PrivateMembers())
	}
	home := t.TempDir()
	writeFile(t, home, "other.json", []byte("x"), 0o600)
	want := writeFile(t, home, "key.json", []byte("x"), 0o600)
	if got, err := FindIdentity(home); err != nil || got != want {
		t.Errorf("FindIdentity = %q, %v, want %q", got, err, want)
	}
}

// WriteMode says at the call what a bool did not: CreateNew never replaces
// a file, Overwrite does.
func TestWriteMode(t *testing.T) {
	k, other := testKey(t, EC256), testKey(t, Ed25519)
	dir := t.TempDir()
	for _, c := range []struct {
		name  string
		write func(path string, k *Key, mode WriteMode) error
	}{
		{"WritePrivateKeyFile", func(p string, k *Key, m WriteMode) error { return WritePrivateKeyFile(p, k, JWK, m) }},
		{"WritePublicKeyFile", func(p string, k *Key, m WriteMode) error { return WritePublicKeyFile(p, k, JWK, m) }},
	} {
		path := filepath.Join(dir, c.name+".json")
		if err := c.write(path, k, CreateNew); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if err := c.write(path, other, CreateNew); !errors.Is(err, fs.ErrExist) {
			t.Errorf("%s CreateNew over a file: %v, want fs.ErrExist", c.name, err)
		}
		if got := readOne(t, path); !got.Equal(k) {
			t.Errorf("%s CreateNew replaced the file", c.name)
		}
		if err := c.write(path, other, Overwrite); err != nil {
			t.Errorf("%s Overwrite: %v", c.name, err)
		}
		if got := readOne(t, path); !got.Equal(other) {
			t.Errorf("%s Overwrite left the old key", c.name)
		}
	}
	path := filepath.Join(dir, "bad-mode.json")
	if err := WritePublicKeyFile(path, k, JWK, WriteMode(7)); err == nil {
		t.Error("WriteMode(7) wrote a file")
	} else {
		wantSubstrings(t, err.Error(), "WriteMode(7)")
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteMode(7) left %s: %v", path, err)
	}
	if CreateNew.String() != "CreateNew" || Overwrite.String() != "Overwrite" {
		t.Errorf("WriteMode strings: %v %v", CreateNew, Overwrite)
	}
}

func readOne(t *testing.T, path string) *Key {
	t.Helper()
	keys, err := ReadPublicKeys(path)
	if err != nil || len(keys) != 1 {
		t.Fatalf("reading %s: %d keys, %v", path, len(keys), err)
	}
	return keys[0]
}
