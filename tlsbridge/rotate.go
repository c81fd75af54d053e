package tlsbridge

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/keytool/keytool/internal/atomicfile"
	homedir "github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// Rotation is what RotateHome did.
type Rotation struct {
	Old, New *jwk.Key
	// OldFile is where the replaced identity was kept (key.old.*), and
	// KeyFile the identity's file now.
	OldFile, KeyFile string
}

// NoNextKeyError means a home has no next key to rotate to.
type NoNextKeyError struct{ Home string }

func (e *NoNextKeyError) Error() string {
	return fmt.Sprintf("tlsbridge: no next key in %s (looked for %v)", e.Home, homedir.NextNames())
}

// RotateHome makes the home's next key (key.next.*) its identity: the
// identity is first kept as key.old.<UTC time><ext> (a hard link, which
// never replaces a file), then the next key is renamed over it, and its
// public half becomes pub_key.*. At every moment the home holds a
// complete identity — the old one, then the new one — so a process that
// watches it (IdentityWatcher) goes from one to the other for its next
// handshakes (docs/design.md, "Announced rotation"). With a CA-issued
// cert.pem, the certificate must already be the next key's.
func RotateHome(home string) (*Rotation, error) {
	h := homedir.Dir(home)
	cur, err := jwk.FindIdentity(home)
	if err != nil {
		return nil, err
	}
	nextFile, err := jwk.FindNextKey(home)
	if err != nil {
		return nil, err
	}
	if nextFile == "" {
		return nil, &NoNextKeyError{Home: home}
	}
	old, err := ReadHomeKey(home, cur)
	if err != nil {
		return nil, err
	}
	next, err := ReadHomeKey(home, nextFile)
	if err != nil {
		return nil, err
	}
	if err := certFitsNext(h.Cert(), next); err != nil {
		return nil, err
	}
	ext := filepath.Ext(nextFile)
	r := &Rotation{Old: old, New: next, OldFile: h.Old(time.Now().UTC().Format("20060102T150405Z"), filepath.Ext(cur)), KeyFile: filepath.Join(home, "key"+ext)}
	if err := os.Link(cur, r.OldFile); err != nil {
		return nil, fmt.Errorf("tlsbridge: keeping the identity as %s: %w", r.OldFile, err)
	}
	if err := os.Rename(nextFile, r.KeyFile); err != nil {
		return nil, fmt.Errorf("tlsbridge: the identity is still %s (also kept as %s): %w", cur, r.OldFile, err)
	}
	if r.KeyFile != cur {
		// The next key had another format: the old name goes (it is kept
		// as OldFile), or the home would hold two identities.
		if err := os.Remove(cur); err != nil {
			return r, fmt.Errorf("tlsbridge: the identity is %s, but %s could not be removed: %w", r.KeyFile, cur, err)
		}
	}
	if err := atomicfile.SyncDir(home); err != nil {
		return r, err
	}
	return r, rotatePublic(h, next, ext)
}

// certFitsNext refuses a CA-issued certificate (cert.pem) that is not for
// the next key: after the rotation the identity would not load. No
// certificate is fine.
func certFitsNext(certFile string, next *jwk.Key) error {
	if _, err := os.Lstat(certFile); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	data, _, err := trustfile.Rule{Top: filepath.Dir(certFile)}.ReadFile(certFile)
	if err != nil {
		return fmt.Errorf("tlsbridge: the identity's certificate %s: %w", certFile, err)
	}
	if _, err := NewIdentityWithChain(next, certFile, data); err != nil {
		return fmt.Errorf("tlsbridge: not rotating: %w", err)
	}
	return nil
}

// rotatePublic writes the new identity's public half as pub_key<ext> and
// removes the other public files (the next key's, the old identity's in
// another format).
func rotatePublic(h homedir.Dir, next *jwk.Key, ext string) error {
	pub := filepath.Join(string(h), "pub_key"+ext)
	f := jwk.JWK
	if ext == ".pem" {
		f = jwk.PEM
	}
	if err := jwk.WritePublicKeyFile(pub, next, f, jwk.Overwrite); err != nil {
		return fmt.Errorf("tlsbridge: the identity is rotated, but its public half %s could not be written: %w", pub, err)
	}
	for _, p := range append(h.Public(), h.NextPublic()...) {
		if p == pub {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("tlsbridge: the identity is rotated, but %s could not be removed: %w", p, err)
		}
	}
	return nil
}
