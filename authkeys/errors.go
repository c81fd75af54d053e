package authkeys

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/keytool/keytool/internal/termtext"
)

// The errors say what happened, in one line, and carry the data a caller
// needs to act; what to do about them is the caller's to say (cmd/keytool
// turns them into commands). None of them is meant for a remote peer:
// they name files and entries (tlsbridge sends a peer a reason code).

// NotAuthorizedError means the key is in no authorized-keys file that
// loaded. When inputs of authorized keys were skipped whose keys are not
// known (a file that cannot be read or parsed, a feed whose view turned
// stale: Skipped of them, the first being First), the key may be in one
// of them, and the error names the first one's problem: "not authorized"
// alone would send an administrator looking for a missing entry where a
// whole input is missing. It unwraps to First.
type NotAuthorizedError struct {
	Fingerprint string
	Skipped     int      // such inputs (or entries) skipped; revocation ones are not counted
	First       *Problem // the first of them; nil when none was
}

func (e *NotAuthorizedError) Error() string {
	switch {
	case e.First == nil:
		return fmt.Sprintf("authkeys: key %s is not authorized", e.Fingerprint)
	case e.Skipped > 1:
		return fmt.Sprintf("authkeys: key %s is not authorized by the inputs that loaded; it may be in one of %d skipped (files, feeds, entries), the first %v", e.Fingerprint, e.Skipped, *e.First)
	}
	return fmt.Sprintf("authkeys: key %s is not authorized by the inputs that loaded; it may be in the one skipped, %v", e.Fingerprint, *e.First)
}

// Unwrap returns the problem of the first input skipped, if any.
func (e *NotAuthorizedError) Unwrap() error {
	if e.First == nil {
		return nil
	}
	return *e.First
}

// SkippedEntryError means the key is authorized by an entry, but another
// entry of the same key was skipped (Problem): that entry may be the one
// in effect, with limits ("from", "expires") the entry found lacks, so
// the key is refused until the problem is fixed.
type SkippedEntryError struct {
	Fingerprint string
	Problem     Problem
}

func (e *SkippedEntryError) Error() string {
	return fmt.Sprintf("authkeys: refusing key %s: an entry of it was skipped, and may limit it: %v", e.Fingerprint, e.Problem)
}

func (e *SkippedEntryError) Unwrap() error { return e.Problem }

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
		return fmt.Sprintf("authkeys: refusing key %s: a revocation list cannot be read, so every key is refused: %v", e.Fingerprint, e.Err)
	}
	return fmt.Sprintf("authkeys: key %s is revoked (listed in %s)", e.Fingerprint, termtext.Safe(e.File))
}

func (e *RevokedError) Unwrap() error { return e.Err }

// ExpiredError means the entry's "expires" time has passed.
type ExpiredError struct {
	Entry *Entry
	Now   time.Time
}

func (e *ExpiredError) Error() string {
	return fmt.Sprintf("authkeys: the authorization of key %s (%q, in %s) expired at %s",
		e.Entry.Fingerprint, e.Entry.Name, termtext.Safe(e.Entry.File), e.Entry.Expires.Format(time.RFC3339))
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
	return fmt.Sprintf("authkeys: key %s (%q) may connect only from %s, not from %s (the \"from\" member in %s)",
		e.Entry.Fingerprint, e.Entry.Name, strings.Join(nets, ", "), remote, e.Entry.File)
}

// NameExistsError means Add was asked to store a key under a name that
// already holds a different key: in the name's own file, or in another
// (a "name" member, a member of a JWK Set).
type NameExistsError struct {
	Name        string
	File        string // the file holding the name
	Fingerprint string // of the key already there, if it could be read
}

func (e *NameExistsError) Error() string {
	held := "another key"
	if e.Fingerprint != "" {
		held = "key " + e.Fingerprint
	}
	return fmt.Sprintf("authkeys: the name %q is already taken by %s (in %s)", e.Name, held, termtext.Safe(e.File))
}

// AlreadyAuthorizedError means Add was given a key that is already
// authorized under another name or in another file.
type AlreadyAuthorizedError struct {
	Entry *Entry // the existing entry
	Name  string // the name Add was asked to use
}

func (e *AlreadyAuthorizedError) Error() string {
	return fmt.Sprintf("authkeys: key %s is already authorized as %q (in %s)", e.Entry.Fingerprint, e.Entry.Name, termtext.Safe(e.Entry.File))
}

// NotFoundError means Remove or Unrevoke found no key by that name or
// fingerprint.
type NotFoundError struct {
	Query   string // the name or fingerprint asked for
	Revoked bool   // Unrevoke: among the revoked keys
}

func (e *NotFoundError) Error() string {
	if e.Revoked {
		return fmt.Sprintf("authkeys: no revoked key has the fingerprint %s", e.Query)
	}
	return fmt.Sprintf("authkeys: no authorized key is named %q or has that fingerprint", e.Query)
}

// StillAuthorizedError means that after Remove the key is still
// authorized, by the entry it names: another name holds it, or a copy
// could not be removed.
type StillAuthorizedError struct {
	Entry *Entry
}

func (e *StillAuthorizedError) Error() string {
	return fmt.Sprintf("authkeys: key %s is still authorized as %q (in %s)", e.Entry.Fingerprint, e.Entry.Name, termtext.Safe(e.Entry.File))
}

// Error makes a shared name one of a store's problems (SharedNames): the
// name, and the entries holding it. Every one of them is still authorized.
func (s SharedName) Error() string {
	return fmt.Sprintf("authkeys: the name %q is held by %d keys, which it does not tell apart: %s", s.Name, len(s.Entries), describeEntries(s.Entries))
}
