package knownhosts

import (
	"fmt"
	"strings"

	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/jwk"
)

// The errors say what happened, in one line, and carry the data a caller
// needs to act; what to do about them is the caller's to say (cmd/keytool
// turns them into commands).

// PinnedKey is a key pinned for an address, and the file that pins it.
type PinnedKey struct {
	Fingerprint string
	File        string
	// Address is the address as the pin holds it, in normal form: the
	// dialled host:port, or the host alone when the pin holds every port
	// (what trust-host --remove takes to unpin it). Empty when unknown.
	Address string
}

// UnknownHostError means no pin applies to the address (or only wildcard
// pins of other keys): the caller's unknown-host policy decides.
type UnknownHostError struct {
	Addr        string
	Key         *jwk.Key // the presented key; nil from CheckSPKI
	Fingerprint string   // of the presented key
}

func (e *UnknownHostError) Error() string {
	return fmt.Sprintf("knownhosts: host %s is unknown: no key is pinned for it (it presented %s)", e.Addr, e.Fingerprint)
}

// KeyChangedError means the address is pinned to other keys than the one
// presented: the host was reinstalled, or someone is intercepting the
// connection.
type KeyChangedError struct {
	Addr        string
	Got         *jwk.Key // the presented key; nil from CheckSPKI
	Fingerprint string   // of the presented key
	Want        []PinnedKey
}

func (e *KeyChangedError) Error() string {
	want := make([]string, len(e.Want))
	for i, w := range e.Want {
		want[i] = fmt.Sprintf("%s (in %s)", w.Fingerprint, termtext.Safe(w.File))
	}
	return fmt.Sprintf("knownhosts: the host key of %s has changed: it presented %s, pinned is %s", e.Addr, e.Fingerprint, strings.Join(want, ", "))
}

// RevokedError means the presented key is revoked, or (Err set) that a
// revocation list cannot be read, so every key is refused.
type RevokedError struct {
	Addr        string
	Fingerprint string
	File        string // the revocation file listing the key
	Err         error  // set when a revocation list is unreadable
}

func (e *RevokedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("knownhosts: refusing %s's key %s: a revocation list cannot be read, so every key is refused: %v", e.Addr, e.Fingerprint, e.Err)
	}
	return fmt.Sprintf("knownhosts: host %s presented key %s, which is revoked (listed in %s)", e.Addr, e.Fingerprint, termtext.Safe(e.File))
}

func (e *RevokedError) Unwrap() error { return e.Err }

// SkippedFilesError means no pin for the address was found, but files of
// pins were skipped (their modes, content or a link), so the address may
// be pinned after all: it is refused, never treated as unknown — no
// prompt, no accept-new, no pin written beside the skipped one, no CA in
// its place — nor admitted by a pin of the key without an address, which
// a pin of another key for the address would overrule. Problems says
// which files and why.
type SkippedFilesError struct {
	Addr        string
	Fingerprint string // of the presented key
	Problems    []Problem
}

func (e *SkippedFilesError) Error() string {
	first := ""
	if len(e.Problems) > 0 {
		first = ": " + e.Problems[0].Error()
	}
	more := ""
	if len(e.Problems) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(e.Problems)-1)
	}
	return fmt.Sprintf("knownhosts: refusing host %s (key %s): trusted-hosts files were skipped, so whether it is pinned cannot be told%s%s", e.Addr, e.Fingerprint, first, more)
}

// FileExistsError means Add found the file it would write already there,
// holding something else than a pin of the address.
type FileExistsError struct {
	Addr string
	File string
}

func (e *FileExistsError) Error() string {
	return fmt.Sprintf("knownhosts: %s already exists and does not pin %s", termtext.Safe(e.File), e.Addr)
}

// TooManyKeysError means AddKeyAtMost found Most keys or more pinned for
// the address (Pinned of them, counted as KeysPinnedAt counts) and did
// not pin one more.
type TooManyKeysError struct {
	Addr        string
	Fingerprint string // of the key not pinned
	Pinned      int
	Most        int
}

func (e *TooManyKeysError) Error() string {
	return fmt.Sprintf("knownhosts: not pinning key %s for %s: %d keys are pinned for it, and at most %d may be", e.Fingerprint, e.Addr, e.Pinned, e.Most)
}

// NotFoundError means Remove found no pin for the address or fingerprint,
// or RemoveKey (Key set) no pin of that key for the address.
type NotFoundError struct {
	Query string
	Key   string // the fingerprint RemoveKey was given
}

func (e *NotFoundError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("knownhosts: key %s is not pinned for %q", e.Key, e.Query)
	}
	return fmt.Sprintf("knownhosts: no host key is pinned for %q", e.Query)
}

// NeedsNameError means the key is pinned without an address (File): it is
// admitted only if the certificate it came in names the host
// (WithCertificate). Check and CheckSPKI, which see no certificate, return
// it; Decide answers PinnedIfNamed.
type NeedsNameError struct {
	Addr        string
	Fingerprint string // of the presented key
	File        string // the file pinning the key without an address
}

func (e *NeedsNameError) Error() string {
	return fmt.Sprintf("knownhosts: host %s presented key %s, which %s pins for any address its certificate names: the certificate must be checked", e.Addr, e.Fingerprint, termtext.Safe(e.File))
}

// PurposesOnlyError means a connection without a purpose met a key the
// address pins for some purposes only (File): refused, final. A key
// accepted for one kind of connection is not thereby trusted for the
// others, and a connection without a purpose is one more kind: admitting
// it there let a key a client of one purpose pinned on first use (a
// man in the middle it met) be trusted by every client without one
// (docs/design.md, "Purposes"). A pin for every purpose admits it.
type PurposesOnlyError struct {
	Addr        string
	Fingerprint string   // of the presented key
	File        string   // the first file pinning it for some purposes
	Purposes    []string // the purposes the address's pins of the key serve
	// Others are the address's exact pins of other keys, for some
	// purposes or every one: a writer pinning the key for every purpose
	// meets them as changed keys (Store.AddKey).
	Others []PinnedKey
}

func (e *PurposesOnlyError) Error() string {
	return fmt.Sprintf("knownhosts: host %s presented key %s, which %s pins for connections of purpose %s only, not for a connection without a purpose",
		e.Addr, e.Fingerprint, termtext.Safe(e.File), strings.Join(e.Purposes, ", "))
}

// NameMismatchError means the host presented a key pinned without an
// address (File), in a certificate that does not name the host dialled:
// refused, as a pin for another address would be.
type NameMismatchError struct {
	Addr        string
	Host        string // the host the certificate had to name
	Fingerprint string
	File        string
	Names       []string // the DNS names and IP addresses the certificate names
}

func (e *NameMismatchError) Error() string {
	names := "no host"
	if len(e.Names) > 0 {
		// The certificate's maker wrote them: a DNS name may hold any
		// ASCII byte, a line feed too.
		safe := make([]string, len(e.Names))
		for i, n := range e.Names {
			safe[i] = termtext.Safe(n)
		}
		names = strings.Join(safe, ", ")
	}
	return fmt.Sprintf("knownhosts: host %s presented key %s, which %s pins for the addresses its certificate names, but the certificate names %s, not %s", e.Addr, e.Fingerprint, termtext.Safe(e.File), names, e.Host)
}
