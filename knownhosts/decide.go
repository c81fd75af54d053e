package knownhosts

import (
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"net"

	"github.com/keytool/keytool/jwk"
)

// Verdict is what a store of host keys says of the key an address
// presented.
type Verdict int

const (
	// Unknown: no pin applies to the address. The client's CA (PKI mode)
	// or its unknown-host policy decides.
	Unknown Verdict = iota
	// Pinned: a pin for the address holds the key.
	Pinned
	// Changed: the address is pinned to other keys. Final: never a prompt,
	// never a CA in the pin's place.
	Changed
	// Revoked: the key is revoked, or a revocation input cannot be read.
	// Final.
	Revoked
	// Skipped: no pin was found, but files of pins were skipped, so the
	// address may be pinned after all. Final: skipped trust never widens
	// trust.
	Skipped
	// Refused: any other final refusal (an address the store cannot read,
	// a certificate that does not name the host: *NameMismatchError).
	Refused
	// PinnedIfNamed: the key is pinned without an address (Docker's
	// proposal: a public key file copied into the trusted-hosts
	// directory). It is admitted only if the certificate it came in names
	// the dialled host; WithCertificate turns it into Pinned or Refused.
	// The address's own pins decide first: a pin of another key for the
	// address is Changed, never rescued by a key pinned without one.
	PinnedIfNamed
)

func (v Verdict) String() string {
	switch v {
	case Unknown:
		return "unknown"
	case Pinned:
		return "pinned"
	case Changed:
		return "changed"
	case Revoked:
		return "revoked"
	case Skipped:
		return "skipped"
	case Refused:
		return "refused"
	case PinnedIfNamed:
		return "pinned if named"
	}
	return "invalid verdict"
}

// Decision is a store's answer for the key an address presented: the one
// contract between a store of host keys and tlsbridge (docs/design.md,
// "Decisions"). A custom store answers the same way.
type Decision struct {
	Verdict Verdict
	// Err says why the key is not Pinned (an *UnknownHostError,
	// *KeyChangedError, *RevokedError, *SkippedFilesError…). A custom store
	// may leave it nil; tlsbridge then makes one from the verdict.
	Err error
}

// Decide is Check as a Decision, for a key known by its SPKI hash.
func (s *Store) Decide(addr string, sum [32]byte) Decision {
	return decisionOf(s.check(addr, sum, nil, ""))
}

// DecidePurpose is Decide for a connection of purpose (XAPI's pinned
// certificates by purpose, docs/design.md "Purposes"): a pin whose
// "purpose" member does not name it is not there for this connection —
// neither admitting the key nor making another key Changed. Pins without
// a purpose apply to every purpose. With purpose "" it is Decide: every
// pin is there, but only a pin for every purpose admits — a key pinned
// for some purposes only is Refused (*PurposesOnlyError), and makes
// another key Changed.
func (s *Store) DecidePurpose(addr, purpose string, sum [32]byte) Decision {
	return decisionOf(s.check(addr, sum, nil, purpose))
}

// DecideAnother is Decide for a caller that will pin the key as one more
// key of addr (AddKey with AddAnother) once it has checked it: a key that
// the address's exact pins of other keys make Changed is Unknown instead,
// so that the caller's check decides. Revoked, Skipped and Refused stay
// final, and AddKey still refuses a revoked key and skipped files.
func (s *Store) DecideAnother(addr string, sum [32]byte) Decision {
	d := s.Decide(addr, sum)
	if d.Verdict == Changed {
		return Decision{Verdict: Unknown, Err: &UnknownHostError{Addr: addr, Fingerprint: jwk.FormatFingerprint(sum)}}
	}
	return d
}

// decisionOf turns Check's error into a verdict.
func decisionOf(err error) Decision {
	var (
		unknown *UnknownHostError
		changed *KeyChangedError
		revoked *RevokedError
		skipped *SkippedFilesError
		named   *NeedsNameError
	)
	switch {
	case err == nil:
		return Decision{Verdict: Pinned}
	case errors.As(err, &unknown):
		return Decision{Verdict: Unknown, Err: err}
	case errors.As(err, &changed):
		return Decision{Verdict: Changed, Err: err}
	case errors.As(err, &revoked):
		return Decision{Verdict: Revoked, Err: err}
	case errors.As(err, &skipped):
		return Decision{Verdict: Skipped, Err: err}
	case errors.As(err, &named):
		return Decision{Verdict: PinnedIfNamed, Err: err}
	}
	return Decision{Verdict: Refused, Err: err}
}

// ErrorOf returns d's error, or for a decision without one (a custom
// store's), the built-in store's error for the verdict; nil when Pinned.
func ErrorOf(d Decision, addr string, sum [32]byte) error {
	if d.Err != nil || d.Verdict == Pinned {
		return d.Err
	}
	fp := jwk.FormatFingerprint(sum)
	switch d.Verdict {
	case Unknown:
		return &UnknownHostError{Addr: addr, Fingerprint: fp}
	case Changed:
		return &KeyChangedError{Addr: addr, Fingerprint: fp}
	case Revoked:
		return &RevokedError{Addr: addr, Fingerprint: fp}
	case Skipped:
		return &SkippedFilesError{Addr: addr, Fingerprint: fp}
	case PinnedIfNamed:
		return &NeedsNameError{Addr: addr, Fingerprint: fp}
	}
	return &RefusedError{Addr: addr, Fingerprint: fp}
}

// RefusedError is the error of a Refused decision that gave none.
type RefusedError struct {
	Addr        string
	Fingerprint string
}

func (e *RefusedError) Error() string {
	return "knownhosts: host " + e.Addr + "'s key " + e.Fingerprint + " is refused"
}

// WithCertificate completes a decision on the key of leaf, the certificate
// the host at addr presented: PinnedIfNamed becomes Pinned if leaf names
// the host (x509's VerifyHostname: a DNS name, wildcards included, or an
// IP address among its subject alternative names; no CA is involved, the
// pin is what trusts the key), and Refused with *NameMismatchError if it
// does not. Every other decision is returned as it is. This is Docker's
// rule for a key pinned without an address: the server must hold the key
// and present a certificate naming the host the client dialled.
func WithCertificate(d Decision, addr string, leaf *x509.Certificate) Decision {
	if d.Verdict != PinnedIfNamed {
		return d
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	if leaf != nil && leaf.VerifyHostname(host) == nil {
		return Decision{Verdict: Pinned}
	}
	me := &NameMismatchError{Addr: addr, Host: host}
	var named *NeedsNameError
	if errors.As(d.Err, &named) {
		me.Fingerprint, me.File = named.Fingerprint, named.File
	}
	if leaf != nil {
		if me.Fingerprint == "" {
			me.Fingerprint = jwk.FormatFingerprint(sha256.Sum256(leaf.RawSubjectPublicKeyInfo))
		}
		me.Names = append(me.Names, leaf.DNSNames...)
		for _, ip := range leaf.IPAddresses {
			me.Names = append(me.Names, ip.String())
		}
	}
	return Decision{Verdict: Refused, Err: me}
}
