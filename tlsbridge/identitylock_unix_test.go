//go:build linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd

package tlsbridge

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// LockIdentity makes the home's lock file (0600) and takes it; a lock
// file group or others may open is not taken, and says why — the writer
// goes ahead; a home that does not exist is no error, and RotateHome on
// it says there is no identity, as before the lock. A rotation without
// the lock says why in Rotation.Unlocked, and one with it says nothing.
func TestLockIdentity(t *testing.T) {
	home := t.TempDir()
	unlock, unlocked, err := LockIdentity(home)
	if err != nil || unlocked != nil {
		t.Fatalf("LockIdentity: %v, unlocked %v", err, unlocked)
	}
	unlock()
	lock := filepath.Join(home, ".keytool.lock")
	if fi, err := os.Stat(lock); err != nil || fi.Mode() != 0o600 {
		t.Fatalf("the lock file: %v, %v; want a regular file, mode 0600", fi, err)
	}

	missing := filepath.Join(home, "missing")
	unlock, unlocked, err = LockIdentity(missing)
	if err != nil || unlocked != nil {
		t.Fatalf("LockIdentity of a missing home: %v, unlocked %v; want neither", err, unlocked)
	}
	unlock()
	var none *jwk.NoIdentityError
	if _, err := RotateHome(missing); !errors.As(err, &none) {
		t.Errorf("RotateHome of a missing home: %v; want a *jwk.NoIdentityError", err)
	}

	rotate := func() *Rotation {
		t.Helper()
		for _, name := range []string{"key.json", "key.next.json"} {
			k, err := jwk.Generate(jwk.EC256)
			if err != nil {
				t.Fatal(err)
			}
			if err := jwk.WritePrivateKeyFile(filepath.Join(home, name), k, jwk.JWK, jwk.Overwrite); err != nil {
				t.Fatal(err)
			}
		}
		r, err := RotateHome(home)
		if err != nil {
			t.Fatal(err)
		}
		// The next rotation, in the same second, would keep the identity
		// under this one's name.
		if err := os.Remove(r.OldFile); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := rotate(); r.Unlocked != nil {
		t.Errorf("a rotation with the lock: Unlocked %v", r.Unlocked)
	}
	if err := os.Chmod(lock, 0o644); err != nil {
		t.Fatal(err)
	}
	var u *keydir.UnlockedError
	if r := rotate(); !errors.As(r.Unlocked, &u) || u.Reason != keydir.LockOpenToOthers || u.Path != lock {
		t.Errorf("a rotation with a 0644 lock file: Unlocked %v; want its *keydir.UnlockedError", r.Unlocked)
	}
}
