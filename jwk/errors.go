package jwk

import (
	"errors"

	"fmt"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/internal/trustfile"
	"strconv"
)

// ParseError reports why a key could not be read, and where: the file, the
// line (PEM and OpenSSH) or the JSON member (JWK, e.g. "keys[3].x").
//
// Callers that keep going after a bad file (the trust stores) report the
// whole ParseError; callers that stop print it as is.
type ParseError struct {
	File   string // empty when the input did not come from a file
	Line   int    // 1-based; 0 when unknown
	Member string // JSON member path; empty when unknown
	Err    error
	// Key is the SPKI hash of the key at fault when its material read
	// and only its attributes did not (a JWK's "expires", "from", "use"…):
	// a store that skips the entry can still refuse the key where another
	// entry holds it (docs/design.md, "Skipped trust never widens trust").
	// Nil otherwise.
	Key *[32]byte
}

func (e *ParseError) Error() string {
	where := termtext.Safe(e.File) // a file may have any name: none drives a terminal
	if where == "" {
		where = "input"
	}
	if e.Line > 0 {
		where += ":" + strconv.Itoa(e.Line)
	}
	if e.Member != "" {
		return fmt.Sprintf("%s: member %q: %v", where, e.Member, e.Err)
	}
	return fmt.Sprintf("%s: %v", where, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Errors that callers may test for with errors.Is.
var (
	// ErrUnknownFormat means the content is neither JWK, JWK Set, PEM nor
	// OpenSSH key lines.
	ErrUnknownFormat = errors.New("not a JWK, JWK Set, PEM or OpenSSH key")
	// ErrNoKey means the input is well formed but holds no key.
	ErrNoKey = errors.New("no key found")
	// ErrUnsupportedKey means the key type or size is not one keytool uses.
	ErrUnsupportedKey = errors.New("unsupported key type")
	// ErrEncrypted means a private key is protected by a passphrase.
	ErrEncrypted = errors.New("the private key is encrypted; keytool reads only unencrypted keys")
	// ErrTooLarge means a file exceeds MaxFileSize.
	ErrTooLarge = trustfile.ErrTooLarge
)

// KeyIDMismatchError means a "kid" written in libtrust form does not match
// the key it is attached to: the file is corrupt or was edited by hand.
// Docker relies on this check to detect damaged key.json files.
type KeyIDMismatchError struct {
	Stated   string // the kid found in the file
	Computed string // the key ID of the key material
}

func (e *KeyIDMismatchError) Error() string {
	return fmt.Sprintf("kid %s does not match the key, whose key ID is %s (the file is corrupt or was edited)", e.Stated, e.Computed)
}

// PermissionError means a private key file can be read by group or others.
type PermissionError struct {
	File string
	Mode uint32
}

func (e *PermissionError) Error() string {
	return fmt.Sprintf("jwk: permissions %04o for %s are too open: a private key must not be accessible by others", e.Mode, termtext.Safe(e.File))
}
