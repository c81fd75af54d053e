package authkeys

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/keytool/keytool/internal/keydir"
)

// NotAuthorizedError means the key is in no authorized-keys file.
type NotAuthorizedError struct {
	Fingerprint string
}

func (e *NotAuthorizedError) Error() string {
	return fmt.Sprintf("key %s is not authorized; to let it in, save the client's public key to a file and run: keytool authorize --name NAME FILE", e.Fingerprint)
}

// RevokedError means the key is listed as revoked, or (Err set) that a
// revocation list could not be read, so every key is refused until it is
// fixed.
type RevokedError struct {
	Fingerprint string
	File        string // the revocation file listing the key
	Err         error  // set when the revocation list is unreadable
}

func (e *RevokedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("refusing key %s: a revocation list cannot be read, so every key is refused until it is fixed: %v", e.Fingerprint, e.Err)
	}
	return fmt.Sprintf("key %s is revoked (listed in %s); to lift the revocation run: keytool revoke --remove %s", e.Fingerprint, e.File, e.Fingerprint)
}

func (e *RevokedError) Unwrap() error { return e.Err }

// ExpiredError means the entry's "expires" time has passed.
type ExpiredError struct {
	Entry *Entry
	Now   time.Time
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("authorization of key %s (%s, in %s) expired at %s; to renew it, edit \"expires\" in that file or run: keytool authorize --name %s --expires TIME FILE",
		e.Entry.Fingerprint, e.Entry.Name, e.Entry.File, e.Entry.Expires.Format(time.RFC3339), keydir.ShellQuote(e.Entry.Name))
}

// SourceNotAllowedError means the key connected from an address outside
// its entry's "from" networks.
type SourceNotAllowedError struct {
	Entry  *Entry
	Remote netip.Addr
}

func (e *SourceNotAllowedError) Error() string {
	nets := make([]string, len(e.Entry.From))
	for i, p := range e.Entry.From {
		nets[i] = p.String()
	}
	remote := "an unknown address"
	if e.Remote.IsValid() {
		remote = e.Remote.String()
	}
	return fmt.Sprintf("key %s (%s) may connect only from %s, not from %s (the \"from\" member in %s)",
		e.Entry.Fingerprint, e.Entry.Name, strings.Join(nets, ", "), remote, e.Entry.File)
}

// NameExistsError means Add was asked to store a key under a name that
// already holds a different key.
type NameExistsError struct {
	Name        string
	File        string
	Fingerprint string // of the key already there, if it could be read
}

func (e *NameExistsError) Error() string {
	return fmt.Sprintf("the name %q is already taken by key %s in %s; choose another name, or remove it first: keytool authorize --remove %s",
		e.Name, e.Fingerprint, e.File, keydir.ShellQuote(e.Name))
}

// AlreadyAuthorizedError means Add was given a key that is already
// authorized under another name or in another file.
type AlreadyAuthorizedError struct {
	Entry *Entry // the existing entry
	Name  string // the name Add was asked to use
}

func (e *AlreadyAuthorizedError) Error() string {
	return fmt.Sprintf("key %s is already authorized as %q (in %s); to rename it: keytool authorize --remove %s, then add it again",
		e.Entry.Fingerprint, e.Entry.Name, e.Entry.File, keydir.ShellQuote(e.Entry.Name))
}
