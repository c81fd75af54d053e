package tlsbridge

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
