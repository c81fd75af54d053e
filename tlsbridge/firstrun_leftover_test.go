package tlsbridge

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// leftoverHome is a home whose identity was made, with what is given
// beside it (a next key, a cert.pem for it), and then removed by hand:
// what a rotation interrupted by an admin, or a tool that knows only
// key.json, leaves.
func leftoverHome(t *testing.T, next, cert bool) (home string, id *Identity) {
	t.Helper()
	home = t.TempDir()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(home, "key.json")
	if err := jwk.WritePrivateKeyFile(key, k, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if next {
		n, err := jwk.Generate(jwk.EC256)
		if err != nil {
			t.Fatal(err)
		}
		if err := jwk.WritePrivateKeyFile(filepath.Join(home, "key.next.json"), n, jwk.JWK, jwk.CreateNew); err != nil {
			t.Fatal(err)
		}
	}
	if id, err = NewIdentity(k, CertOptions{}); err != nil {
		t.Fatal(err)
	}
	if cert {
		if err := os.WriteFile(filepath.Join(home, "cert.pem"), id.CertificatePEM(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	return home, id
}

// TestLoadOrGenerateBesideANextKey: a home holds a next key (key.next.*,
// which the identity announced to its peers) and no identity. A first
// run must not make a fresh identity beside it without a word — one no
// peer was told of, announcing the key they were: it is refused with
// *NextKeyWithoutIdentityError, naming the file, and nothing is written,
// as keytool gen (without --force) and keytool list say (docs/cli.md,
// gen). Before (found by review, 2026-12-05): key.json was made, and the
// server started with it.
func TestLoadOrGenerateBesideANextKey(t *testing.T) {
	home, _ := leftoverHome(t, true, false)
	_, generated, err := LoadOrGenerateHomeIdentity(home, jwk.EC256, CertOptions{})
	var nk *NextKeyWithoutIdentityError
	if !errors.As(err, &nk) || nk.File != filepath.Join(home, "key.next.json") || generated {
		t.Fatalf("first run beside a next key: %v (generated %v); want *NextKeyWithoutIdentityError naming key.next.json", err, generated)
	}
	if errors.Is(err, os.ErrNotExist) {
		t.Error("the error is taken for no identity (fs.ErrNotExist)")
	}
	for _, name := range []string{"key.json", "pub_key.json"} {
		if _, err := os.Lstat(filepath.Join(home, name)); err == nil {
			t.Errorf("%s was written beside the next key", name)
		}
	}
	if _, err := LoadHomeIdentity(home, CertOptions{}); !errors.As(err, &nk) {
		t.Errorf("LoadHomeIdentity: %v; want *NextKeyWithoutIdentityError", err)
	}
}

// TestLoadOrGenerateBesideACertFile: a home in PKI mode (cert.pem, issued
// for its key) whose key was removed. A new key would not fit cert.pem,
// so the home would not load once it was written: none is made, and the
// error (*CertKeyError, Key empty) says why. Before (found by review,
// 2026-12-05): key.json was written, then its load failed on cert.pem,
// and every later start failed on a home keytool itself had made so.
func TestLoadOrGenerateBesideACertFile(t *testing.T) {
	home, id := leftoverHome(t, false, true)
	_, generated, err := LoadOrGenerateHomeIdentity(home, jwk.EC256, CertOptions{})
	var ck *CertKeyError
	if !errors.As(err, &ck) || ck.Key != "" || ck.CertKey != id.Key.Fingerprint() || generated {
		t.Fatalf("first run beside cert.pem: %v (generated %v); want *CertKeyError for %s, no identity", err, generated, id.Key.Fingerprint())
	}
	if _, err := os.Lstat(filepath.Join(home, "key.json")); err == nil {
		t.Error("key.json was written beside a cert.pem it does not fit")
	}
	// With an identity of another key, the error names both.
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePrivateKeyFile(filepath.Join(home, "key.json"), k, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHomeIdentity(home, CertOptions{}); !errors.As(err, &ck) || ck.Key != k.Fingerprint() || ck.CertKey != id.Key.Fingerprint() {
		t.Errorf("cert.pem for another key: %v; want *CertKeyError naming both keys", err)
	}
}

// TestRotateHomeWithoutIdentity: RotateHome on a home that holds a next
// key and no identity (the fix NextKeyWithoutIdentityError's advice
// gives, keytool rotate) makes the next key the identity, as the rotation
// would have: under key.json, its public half pub_key.json, no next key
// left, nothing kept as the old identity (there was none). Before, it
// failed with *jwk.NoIdentityError, and the only way out was by hand.
func TestRotateHomeWithoutIdentity(t *testing.T) {
	home, _ := leftoverHome(t, true, false)
	next, err := ReadHomeKey(home, filepath.Join(home, "key.next.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := RotateHome(home)
	if err != nil || r.Old != nil || r.OldFile != "" || !r.New.Equal(next) || r.KeyFile != filepath.Join(home, "key.json") {
		t.Fatalf("RotateHome without an identity: %+v, %v; want the next key made key.json", r, err)
	}
	id, err := LoadHomeIdentity(home, CertOptions{})
	if err != nil || !id.Key.Equal(next) {
		t.Fatalf("the home after: %v; want the next key as its identity", err)
	}
	if _, err := os.Lstat(filepath.Join(home, "key.next.json")); err == nil {
		t.Error("key.next.json is still there")
	}
	pub, err := jwk.ReadPublicKeys(filepath.Join(home, "pub_key.json"))
	if err != nil || len(pub) != 1 || !pub[0].Equal(next) {
		t.Errorf("pub_key.json: %v; want the next key's public half", err)
	}

	// A cert.pem for another key: nothing moves.
	home, _ = leftoverHome(t, true, true)
	if _, err := RotateHome(home); err == nil {
		t.Fatal("RotateHome beside a cert.pem for another key: no error")
	}
	if _, err := os.Lstat(filepath.Join(home, "key.json")); err == nil {
		t.Error("key.json made beside a cert.pem it does not fit")
	}
}
