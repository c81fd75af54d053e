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
	defer func(read func(trustfile.Rule, string) ([]byte, fs.FileInfo, error)) { readHomeKeyFile = read }(readHomeKeyFile)
	readHomeKeyFile = func(r trustfile.Rule, path string) ([]byte, fs.FileInfo, error) {
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

// TestHomeNextKeyStrictModes: the home's next key (key.next.*), which the
// identity announces and a rotation makes the identity, is read as
// key.json is (ReadHomeKey), and so is every key RotateHome reads. Only
// the home's directory was checked for it, and the file read with
// jwk.ReadPrivateKeyFile: a next key owned by another user, or a link to
// a file in a directory others may write, was announced and rotated to;
// a mode the rule refuses was refused for another reason (readable by
// others). Each is now the *trustfile.PermissionError key.json gets,
// naming the file, or the directory at fault on the way to it.
func TestHomeNextKeyStrictModes(t *testing.T) {
	h := newHome(t, jwk.EC256)
	keyFile, nextFile := filepath.Join(h.dir, "key.json"), filepath.Join(h.dir, "key.next.json")
	writeKey(t, keyFile, h.id.Key, 0o600)
	next := mustGenerate(t, jwk.EC256)
	shared := filepath.Join(h.dir, "shared")
	if err := os.Mkdir(shared, 0o700); err != nil {
		t.Fatal(err)
	}
	writeKey(t, filepath.Join(shared, "next.json"), next, 0o600)
	if err := os.Chmod(shared, 0o777); err != nil { // after the write: umask
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		make  func(t *testing.T)
		fault string // the path the error names as at fault
		owner int
		root  bool
	}{
		{"mode 0620", func(t *testing.T) { writeKey(t, nextFile, next, 0o620) }, nextFile, -1, false},
		{"a link into a directory others may write", func(t *testing.T) {
			if err := os.Symlink(filepath.Join("shared", "next.json"), nextFile); err != nil {
				t.Fatal(err)
			}
		}, shared, -1, false},
		{"owned by uid 65534", func(t *testing.T) {
			writeKey(t, nextFile, next, 0o600)
			if err := os.Chown(nextFile, 65534, -1); err != nil {
				t.Fatal(err)
			}
		}, nextFile, 65534, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Geteuid() != 0 {
				t.Skip("only root can give a file to another user")
			}
			os.Remove(nextFile)
			tc.make(t)
			defer os.Remove(nextFile)
			check := func(what string, err error) {
				t.Helper()
				var pe *trustfile.PermissionError
				if !errors.As(err, &pe) || pe.Path != tc.fault || pe.Owner != tc.owner ||
					!strings.Contains(err.Error(), "the next key "+nextFile+": ") {
					t.Errorf("%s: %v, want a *trustfile.PermissionError naming %s (owner %d) for the next key %s",
						what, err, tc.fault, tc.owner, nextFile)
				}
			}
			id, err := LoadHomeIdentity(h.dir, CertOptions{})
			if err == nil {
				t.Errorf("LoadHomeIdentity announced %v", id.Announced())
			}
			check("LoadHomeIdentity", err)
			_, err = RotateHome(h.dir)
			check("RotateHome", err)
			if got, err := ReadHomeKey(h.dir, keyFile); err != nil || !got.Equal(h.id.Key) {
				t.Fatalf("the identity after a refused rotation: %v", err)
			}
		})
	}
	// Fixed, the next key is announced; the identity a rotation reads is
	// checked as well.
	writeKey(t, nextFile, next, 0o600)
	if id, err := LoadHomeIdentity(h.dir, CertOptions{}); err != nil || len(id.Announced()) != 1 || !id.Announced()[0].Equal(next) {
		t.Fatalf("a next key of mode 0600: %v", err)
	}
	if os.Geteuid() != 0 {
		return
	}
	if err := os.Chown(keyFile, 65534, -1); err != nil {
		t.Fatal(err)
	}
	var pe *trustfile.PermissionError
	if _, err := RotateHome(h.dir); !errors.As(err, &pe) || pe.Path != keyFile || pe.Owner != 65534 || !strings.Contains(err.Error(), "the identity "+keyFile+": ") {
		t.Errorf("RotateHome from a key.json owned by uid 65534: %v, want a *trustfile.PermissionError naming it and its owner", err)
	}
	if _, err := os.Lstat(nextFile); err != nil {
		t.Errorf("the refused rotation moved the next key: %v", err)
	}
}

// TestHomeKeyErrorsNameTheRole: a key of the home refused once read — a
// next key others may read, an identity that holds a public key only —
// is refused naming its role, as a refusal by the strict-modes rule is
// ("tlsbridge: the next key: jwk: ... key.next.json ..."). Only those of
// the rule did since the next key is read as the identity is; before,
// every error of the next key's did.
func TestHomeKeyErrorsNameTheRole(t *testing.T) {
	h := newHome(t, jwk.EC256)
	keyFile, nextFile := filepath.Join(h.dir, "key.json"), filepath.Join(h.dir, "key.next.json")
	writeKey(t, keyFile, h.id.Key, 0o600)
	writeKey(t, nextFile, mustGenerate(t, jwk.EC256), 0o640) // the rule allows it; jwk does not
	var pe *jwk.PermissionError
	for what, err := range map[string]error{
		"LoadHomeIdentity": func() error { _, err := LoadHomeIdentity(h.dir, CertOptions{}); return err }(),
		"RotateHome":       func() error { _, err := RotateHome(h.dir); return err }(),
	} {
		if !errors.As(err, &pe) || pe.File != nextFile || !strings.HasPrefix(err.Error(), "tlsbridge: the next key: jwk: ") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s with a next key of mode 0640: %v, want one line, a *jwk.PermissionError naming %s, for the next key", what, err, nextFile)
		}
	}
	if err := os.Remove(nextFile); err != nil {
		t.Fatal(err)
	}
	pub, err := h.id.Key.PublicKey().MarshalPublic(jwk.JWK)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, keyFile, pub, 0o600)
	var np *jwk.NotPrivateKeyError
	if _, err := LoadHomeIdentity(h.dir, CertOptions{}); !errors.As(err, &np) || !strings.HasPrefix(err.Error(), "tlsbridge: the identity: "+keyFile+": ") || !strings.Contains(err.Error(), keyFile) {
		t.Errorf("an identity holding its public key only: %v, want a *jwk.NotPrivateKeyError naming %s, for the identity", err, keyFile)
	}
}
