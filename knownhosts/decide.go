package knownhosts

import (
	"errors"

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
	// Refused: any other final refusal (an address the store cannot read).
	Refused
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
	return decisionOf(s.check(addr, sum, nil))
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
