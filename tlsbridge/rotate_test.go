package tlsbridge

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// RotateHome makes the next key the identity, keeps the old one as
// key.old.*, and leaves one identity and one public half, also when the
// next key has another format.
func TestRotateHome(t *testing.T) {
	dir := t.TempDir()
	old, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.Ed25519)
	writeKey(t, filepath.Join(dir, "key.json"), old, 0o600)
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, "pub_key.json"), old, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePrivateKeyFile(filepath.Join(dir, "key.next.pem"), next, jwk.PEM, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, "pub_key.next.pem"), next, jwk.PEM, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	id, err := LoadHomeIdentity(dir, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a := id.Announced(); len(a) != 1 || !a[0].Equal(next) {
		t.Fatalf("before: announces %v", a)
	}
	r, err := RotateHome(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Old.Equal(old) || !r.New.Equal(next) || r.KeyFile != filepath.Join(dir, "key.pem") || !strings.HasPrefix(filepath.Base(r.OldFile), "key.old.") || filepath.Ext(r.OldFile) != ".json" {
		t.Fatalf("rotation %+v", r)
	}
	id, err = LoadHomeIdentity(dir, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !id.Key.Equal(next) || len(id.Announced()) != 0 {
		t.Fatal("after: not the next key, or still announcing")
	}
	kept, err := jwk.ReadPrivateKeyFile(r.OldFile)
	if err != nil || !kept.Equal(old) {
		t.Fatalf("the old key: %v", err)
	}
	if fi, _ := os.Stat(r.OldFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("the old key has mode %v", fi.Mode())
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "key.old."+strings.TrimPrefix(filepath.Base(r.OldFile), "key.old.")+" key.pem pub_key.pem" {
		t.Errorf("the home holds %v", names)
	}
	var none *NoNextKeyError
	if _, err := RotateHome(dir); !errors.As(err, &none) {
		t.Fatalf("a second rotation: %v", err)
	}
}

// A CA-issued cert.pem that is not for the next key stops the rotation
// before anything moves: the rotated identity would not load.
func TestRotateHomeRefusesCertForOtherKey(t *testing.T) {
	dir := t.TempDir()
	old, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	writeKey(t, filepath.Join(dir, "key.json"), old, 0o600)
	writeKey(t, filepath.Join(dir, "key.next.json"), next, 0o600)
	oldID, err := NewIdentity(old, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "cert.pem"), oldID.CertificatePEM(), 0o644)
	if _, err := RotateHome(dir); err == nil || !strings.Contains(err.Error(), "not rotating") {
		t.Fatalf("rotation with the old key's cert.pem: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "key.next.json")); err != nil {
		t.Fatal("the next key moved")
	}
	nextID, err := NewIdentity(next, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "cert.pem"), nextID.CertificatePEM(), 0o644)
	if _, err := RotateHome(dir); err != nil {
		t.Fatal(err)
	}
	if id, err := LoadHomeIdentity(dir, CertOptions{}); err != nil || !id.Key.Equal(next) {
		t.Fatalf("after: %v", err)
	}
}

// replaceOnRead makes every read of a home key (readHomeKeyFile) call
// replace with the file's path right after it, as the home's owner
// replacing a key file between RotateHome's read and its move would.
func replaceOnRead(t *testing.T, replace func(path string)) {
	read := readHomeKeyFile
	t.Cleanup(func() { readHomeKeyFile = read })
	readHomeKeyFile = func(r trustfile.Rule, path string) ([]byte, fs.FileInfo, error) {
		data, fi, err := read(r, path)
		replace(path)
		return data, fi, err
	}
}

// rotationHome makes a home whose identity is key.json, old, with its
// public half, and whose next key is key.next<ext>, next, with its own.
func rotationHome(t *testing.T, old, next *jwk.Key, ext string) string {
	dir := t.TempDir()
	writeKey(t, filepath.Join(dir, "key.json"), old, 0o600)
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, "pub_key.json"), old, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	f := formatOf(ext)
	if err := jwk.WritePrivateKeyFile(filepath.Join(dir, "key.next"+ext), next, f, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, "pub_key.next"+ext), next, f, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	return dir
}

func formatOf(ext string) jwk.Format {
	if ext == ".pem" {
		return jwk.PEM
	}
	return jwk.JWK
}

// homeHolds fails unless dir holds exactly the files names, and each
// private key file in keys holds that key.
func homeHolds(t *testing.T, dir string, names string, keys map[string]*jwk.Key) {
	t.Helper()
	var got []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != names {
		t.Errorf("the home holds %v, want %s", got, names)
	}
	for name, want := range keys {
		if k, err := jwk.ReadPrivateKeyFile(filepath.Join(dir, name)); err != nil || !k.Equal(want) {
			t.Errorf("%s: %v, want the key %s", name, err, want.Fingerprint())
		}
	}
}

// TestRotateHomeNextKeyReplaced: the next key RotateHome makes the
// identity is the one it read and checked. It renamed key.next.* by name
// after reading it: a next key replaced in between (here right after the
// read, by another key of the home's owner) became the identity, while
// pub_key.* got the public half of the key read and the rotation reported
// that key. The rotation now stops with a *ReplacedError naming both keys
// and puts the home back: the old identity, the new next key (which the
// identity then announces), nothing kept as key.old.*. Rotating again
// rotates to the key on disk.
func TestRotateHomeNextKeyReplaced(t *testing.T) {
	for _, ext := range []string{".json", ".pem"} {
		t.Run(ext, func(t *testing.T) {
			old, next, other := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.Ed25519)
			dir := rotationHome(t, old, next, ext)
			nextFile := filepath.Join(dir, "key.next"+ext)
			replaced := false
			replaceOnRead(t, func(path string) {
				if path == nextFile && !replaced {
					replaced = true
					if err := jwk.WritePrivateKeyFile(nextFile, other, formatOf(ext), jwk.Overwrite); err != nil {
						t.Fatal(err)
					}
				}
			})
			r, err := RotateHome(dir)
			var re *ReplacedError
			if !errors.As(err, &re) {
				t.Fatalf("RotateHome with %s replaced after its read: %+v, %v; want a *ReplacedError", nextFile, r, err)
			}
			if re.File != nextFile || re.Moved != filepath.Join(dir, "key"+ext) || re.Read != next.Fingerprint() || re.Found != other.Fingerprint() || re.Undo != nil ||
				!strings.HasPrefix(err.Error(), "tlsbridge: not rotating: "+nextFile+" was replaced") || !strings.Contains(err.Error(), "the home is as it was") || strings.Contains(err.Error(), "\n") {
				t.Errorf("the error: %+v: %v", re, err)
			}
			homeHolds(t, dir, "key.json key.next"+ext+" pub_key.json pub_key.next"+ext,
				map[string]*jwk.Key{"key.json": old, "key.next" + ext: other})
			id, err := LoadHomeIdentity(dir, CertOptions{})
			if err != nil || !id.Key.Equal(old) || len(id.Announced()) != 1 || !id.Announced()[0].Equal(other) {
				t.Fatalf("after: %v, want the old identity announcing the key found", err)
			}
			if r, err := RotateHome(dir); err != nil || !r.New.Equal(other) {
				t.Fatalf("rotating again: %v", err)
			}
			if id, err := LoadHomeIdentity(dir, CertOptions{}); err != nil || !id.Key.Equal(other) {
				t.Fatalf("after rotating again: %v", err)
			}
		})
	}
}

// TestRotateHomeIdentityReplaced: the identity RotateHome keeps as
// key.old.* is the one it read (Rotation.Old). It hard-linked key.json by
// name: one replaced after the read was kept instead, and the key read,
// reported as kept, was in no file. The rotation now stops before the
// next key moves, and removes the link it made.
func TestRotateHomeIdentityReplaced(t *testing.T) {
	old, next, other := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	dir := rotationHome(t, old, next, ".json")
	keyFile := filepath.Join(dir, "key.json")
	replaced := false
	replaceOnRead(t, func(path string) {
		if path == keyFile && !replaced {
			replaced = true
			writeKey(t, keyFile, other, 0o600)
		}
	})
	r, err := RotateHome(dir)
	var re *ReplacedError
	if !errors.As(err, &re) {
		t.Fatalf("RotateHome with key.json replaced after its read: %+v, %v; want a *ReplacedError", r, err)
	}
	if re.File != keyFile || !strings.HasPrefix(filepath.Base(re.Moved), "key.old.") || re.Read != old.Fingerprint() || re.Found != other.Fingerprint() || re.Undo != nil {
		t.Errorf("the error: %+v: %v", re, err)
	}
	homeHolds(t, dir, "key.json key.next.json pub_key.json pub_key.next.json",
		map[string]*jwk.Key{"key.json": other, "key.next.json": next})
}

// When the home cannot be put back — here a next key made again while
// the replaced one was being checked, which putting it back as the next
// key must not overwrite — the error says where each key is and what to
// do, and nothing is lost: the key found is the identity, the old
// identity kept, the newest next key in place.
func TestRotateHomeReplacedCannotPutBack(t *testing.T) {
	old, next, other, newest := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	dir := rotationHome(t, old, next, ".json")
	keyFile, nextFile := filepath.Join(dir, "key.json"), filepath.Join(dir, "key.next.json")
	reads := map[string]int{}
	replaceOnRead(t, func(path string) {
		reads[path]++
		switch {
		case path == nextFile && reads[path] == 1:
			writeKey(t, nextFile, other, 0o600)
		case path == keyFile && reads[path] == 2: // the key renamed to key.json
			if err := jwk.WritePrivateKeyFile(nextFile, newest, jwk.JWK, jwk.CreateNew); err != nil {
				t.Fatal(err)
			}
		}
	})
	_, err := RotateHome(dir)
	var re *ReplacedError
	if !errors.As(err, &re) || !errors.Is(re.Undo, fs.ErrExist) {
		t.Fatalf("RotateHome: %v, want a *ReplacedError whose undo found a next key", err)
	}
	oldName := ""
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "key.old.") {
			oldName = e.Name()
		}
	}
	if msg := err.Error(); !strings.Contains(msg, "could not be put back") || !strings.Contains(msg, "is kept as "+filepath.Join(dir, oldName)+": move it back to "+keyFile) || strings.Contains(msg, "\n") {
		t.Errorf("the error: %v", msg)
	}
	homeHolds(t, dir, "key.json key.next.json "+oldName+" pub_key.json pub_key.next.json",
		map[string]*jwk.Key{"key.json": other, "key.next.json": newest, oldName: old})
}
