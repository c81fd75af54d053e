package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// overwritesPrivateKeyError means -o names a file that holds a private key
// (the identity, say): writing a certificate over it would lose the key.
// replace is the command that does it anyway.
type overwritesPrivateKeyError struct{ path, replace string }

func (e *overwritesPrivateKeyError) Error() string {
	return fmt.Sprintf("%s holds a private key: writing over it would lose the key; choose another file, or replace it with: %s", e.path, e.replace)
}

// withForce is the command line that asks again for what again asks
// (the command and the flags the user gave), with --force: the advice of
// a refusal that --force overrides, whole, as gen gives it.
func (c *cli) withForce(again []string) string {
	return c.command(append(again[:len(again):len(again)], "--force")...)
}

// writePublic writes public material (a certificate, a bundle) to path,
// mode 0644, atomically, replacing what is there — but no command writes
// over a private key without --force: a file holding one (the identity
// itself, a key written by cert --key-out) is left alone unless force,
// and the refusal gives the command that forces it (again, withForce).
func (c *cli) writePublic(path string, data []byte, force bool, again []string) error {
	return c.writePublicFrom(path, force, again, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writePublicFrom is writePublic for what fill writes piece by piece (a
// bundle of any size): path is replaced only once fill has succeeded.
func (c *cli) writePublicFrom(path string, force bool, again []string, fill func(io.Writer) error) error {
	if !force {
		if private, err := holdsPrivateKey(path); err != nil {
			return err
		} else if private {
			return &overwritesPrivateKeyError{path: path, replace: c.withForce(again)}
		}
	}
	return atomicfile.WriteFrom(path, 0o644, fill)
}

// holdsPrivateKey reports whether the file at path holds a private key.
// A file that does not exist, or holds no key keytool reads, does not.
func holdsPrivateKey(path string) (bool, error) {
	data, _, err := trustfile.Read(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case errors.Is(err, trustfile.ErrNotRegular):
		return false, fmt.Errorf("%s is not a regular file; refusing to replace it", path)
	case errors.Is(err, trustfile.ErrTooLarge):
		// Larger than any key file keytool reads (a bundle made before,
		// say): it holds no key keytool could have written or read.
		return false, nil
	case errors.Is(err, fs.ErrPermission):
		// Unreadable to us: most likely a private key of someone else's.
		if _, serr := os.Stat(path); serr == nil {
			return true, nil
		}
		return false, nil
	case err != nil:
		return false, err
	}
	return valueHoldsPrivateKey(data), nil
}

// valueHoldsPrivateKey reports whether data (a key file's bytes, or a
// store entry's) holds a private key: one keytool reads, or — when not
// all of data reads — anything that has a private key's form (looksPrivate).
// A private key keytool cannot read (encrypted, X25519, DSA, damaged) is
// still one: cert -o would otherwise write over it, and sync mirror it
// into a file everyone may read. An entry of a set that does not parse
// does not hide the others.
func valueHoldsPrivateKey(data []byte) bool {
	entries, err := jwk.ParseSet(data)
	read := err == nil
	for _, e := range entries {
		if e.Key != nil && e.Key.IsPrivate() {
			return true
		}
		if e.Err != nil {
			read = false
		}
	}
	return !read && looksPrivate.Match(data)
}

// looksPrivate matches what only a private key holds: the BEGIN line of
// a PEM (OpenSSH, PGP, SSH2) private key, encrypted or not, or a JWK
// member that is private key material (RFC 7518 section 6, RFC 8037; an
// unescaped quote ends a JSON string, so this matches member names only).
var looksPrivate = regexp.MustCompile(`-{4,5} ?BEGIN [^\n]*PRIVATE KEY|PuTTY-User-Key-File-|(?i)"(d|p|q|dp|dq|qi|oth|k|priv)"\s*:`)
