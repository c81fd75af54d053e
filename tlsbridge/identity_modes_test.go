package tlsbridge

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// TestHomeIdentityStrictModes: the identity of a home is a trust input
// like cert.pem: in a home that group or others can write (0777, 0770),
// anyone who can write there can put their own key in its place — a
// private key file of theirs, mode 0600, which a proxy running as root
// reads all the same — and the home then presents, announces and hands
// out (`keytool pub`) a key the other user holds. The identity was loaded
// from such a home, and from a key.json owned by another user; it is
// refused with the *trustfile.PermissionError naming the home or the
// file, as the trust files beside it are, and loaded again once fixed.
func TestHomeIdentityStrictModes(t *testing.T) {
	h := newHome(t, jwk.EC256)
	keyFile := filepath.Join(h.dir, "key.json")
	if err := jwk.WritePrivateKeyFile(keyFile, h.id.Key, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHomeIdentity(h.dir, CertOptions{}); err != nil {
		t.Fatalf("a home of mode 0700: %v", err)
	}
	var pe *trustfile.PermissionError
	for _, mode := range []os.FileMode{0o777, 0o770, 0o722} {
		if err := os.Chmod(h.dir, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadHomeIdentity(h.dir, CertOptions{}); !errors.As(err, &pe) || pe.Path != h.dir {
			t.Errorf("a home of mode %04o: %v, want a *trustfile.PermissionError naming it", mode, err)
		}
		if _, _, err := LoadOrGenerateHomeIdentity(h.dir, jwk.EC256, CertOptions{}); !errors.As(err, &pe) {
			t.Errorf("a home of mode %04o, load or generate: %v, want a *trustfile.PermissionError", mode, err)
		}
	}
	if err := os.Chmod(h.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHomeIdentity(h.dir, CertOptions{}); err != nil {
		t.Fatalf("the home fixed: %v", err)
	}
	if os.Geteuid() != 0 {
		return // only root can give a file to another user
	}
	if err := os.Chown(keyFile, 65534, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHomeIdentity(h.dir, CertOptions{}); !errors.As(err, &pe) || pe.Path != keyFile || pe.Owner != 65534 {
		t.Errorf("key.json owned by uid 65534: %v, want a *trustfile.PermissionError naming it and its owner", err)
	}
}

// TestHomeIdentityReadOnce: the identity of a home is loaded from the
// bytes its strict-modes check read. It was read twice, once to check and
// once to load: a key.json replaced in between — here right after the
// check's read — was loaded unchecked, another key than the one checked.
func TestHomeIdentityReadOnce(t *testing.T) {
	h := newHome(t, jwk.EC256)
	keyFile := filepath.Join(h.dir, "key.json")
	if err := jwk.WritePrivateKeyFile(keyFile, h.id.Key, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	other, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	reads := 0
	defer func(read func(trustfile.Rule, string) ([]byte, fs.FileInfo, error)) { readIdentityFile = read }(readIdentityFile)
	readIdentityFile = func(r trustfile.Rule, path string) ([]byte, fs.FileInfo, error) {
		reads++
		data, fi, err := r.ReadFile(path)
		if err := jwk.WritePrivateKeyFile(keyFile, other, jwk.JWK, jwk.Overwrite); err != nil {
			t.Fatal(err)
		}
		return data, fi, err
	}
	id, err := LoadHomeIdentity(h.dir, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := id.Key.Fingerprint(), h.id.Key.Fingerprint(); got != want || reads != 1 {
		t.Fatalf("loaded %s after %d checked reads, want the key checked, %s, read once (the file now holds %s)",
			got, reads, want, other.Fingerprint())
	}
}
