package knownhosts

import (
	"fmt"
	"strings"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// PinnedKey is a key pinned for an address, and the file that pins it.
type PinnedKey struct {
	Fingerprint string
	File        string
}

// UnknownHostError means no pin applies to the address (or only wildcard
// pins of other keys): the caller's unknown-host policy decides.
type UnknownHostError struct {
	Addr        string
	Key         *jwk.Key // the presented key; nil from CheckSPKI
	Fingerprint string   // of the presented key
}

func (e *UnknownHostError) Error() string {
	return fmt.Sprintf("host %s is unknown: no key is pinned for it (it presented %s); after checking that fingerprint with the host's administrator, run: keytool trust-host %s --fingerprint %s",
		e.Addr, e.Fingerprint, keydir.ShellQuote(e.Addr), e.Fingerprint)
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
	var b strings.Builder
	fmt.Fprintf(&b, "the host key of %s has changed!\n", e.Addr)
	fmt.Fprintf(&b, "  it presented now:  %s\n", e.Fingerprint)
	for _, w := range e.Want {
		fmt.Fprintf(&b, "  pinned before:     %s  (in %s)\n", w.Fingerprint, w.File)
	}
	b.WriteString("Either the host was reinstalled with a new key, or someone is intercepting the connection (a man-in-the-middle attack).\n")
	b.WriteString("Check the new fingerprint with the host's administrator through another channel. If the change is expected, replace the pin:\n")
	fmt.Fprintf(&b, "  keytool trust-host --remove %s\n", keydir.ShellQuote(e.Addr))
	fmt.Fprintf(&b, "  keytool trust-host %s --fingerprint %s", keydir.ShellQuote(e.Addr), e.Fingerprint)
	return b.String()
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
		return fmt.Sprintf("refusing %s's key %s: a revocation list cannot be read, so every key is refused until it is fixed: %v", e.Addr, e.Fingerprint, e.Err)
	}
	return fmt.Sprintf("host %s presented key %s, which is revoked (listed in %s)", e.Addr, e.Fingerprint, e.File)
}

func (e *RevokedError) Unwrap() error { return e.Err }
