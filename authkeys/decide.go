package authkeys

import (
	"net/netip"
	"time"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// Verdict is what an authorized-keys store says of a client key.
type Verdict int

const (
	// Unknown: the key is in no authorized-keys file. A server may still
	// admit it by its CA (PKI mode), or let it only enroll.
	Unknown Verdict = iota
	// Authorized: the key may connect.
	Authorized
	// Revoked: the key is listed as revoked, or a revocation input cannot
	// be read. Final: refused in the handshake even where unknown keys may
	// finish it, and never admitted by a CA.
	Revoked
	// Expired: the entry's "expires" time has passed. Final.
	Expired
	// WrongNetwork: the client connected from outside the entry's "from"
	// networks. Final.
	WrongNetwork
)

func (v Verdict) String() string {
	switch v {
	case Unknown:
		return "unknown"
	case Authorized:
		return "authorized"
	case Revoked:
		return "revoked"
	case Expired:
		return "expired"
	case WrongNetwork:
		return "wrong network"
	}
	return "invalid verdict"
}

// Decision is a store's answer for one client key: the one contract
// between a store of client keys and tlsbridge (docs/design.md,
// "Decisions"). A custom store answers the same way and gets exactly the
// behaviour this one gets.
type Decision struct {
	Verdict Verdict
	// Entry is the entry that decided: set for Authorized, and for Expired
	// and WrongNetwork when known; nil otherwise.
	Entry *Entry
	// Err says why a key is not Authorized, for the server's log and its
	// administrator (it names files and entries: never send it to the
	// peer). A custom store may leave it nil; tlsbridge then makes one
	// from the verdict.
	Err error
	// Incomplete is set when files of authorized keys were skipped (bad
	// modes, unreadable, malformed): an Unknown key may be in one of them,
	// with limits ("expires", "from") that a CA would not apply, so a CA
	// must not admit it in their place. It is set too for a key refused
	// because an entry of it was skipped (*SkippedEntryError).
	Incomplete bool
}

// Decide decides whether the key with SPKI hash sum may connect from
// remote (the zero Addr if unknown). In order: a revoked key (or an
// unreadable revocation list) is Revoked, a key in no file is Unknown, as
// is a key of which an entry was skipped (*SkippedEntryError, Incomplete:
// that entry may be the one in effect, with tighter limits), an
// expired entry is Expired, a remote address outside the entry's "from"
// networks is WrongNetwork; otherwise the key is Authorized.
//
// Decide takes no lock and, when the key is Authorized, allocates nothing
// but the key's Entry the first time one is asked for. The Entry must not
// be modified. (A store OpenEarly made decides before its full load as
// OpenEarly says: under a lock, reading files, or waiting for the load.)
func (s *Store) Decide(sum [32]byte, remote netip.Addr) Decision {
	return s.decide(sum, remote, true)
}

// DecideOnce is Decide for a caller that asks once about each of many
// keys (keytool bundle decides every authorized key): an Authorized
// key's Entry is made for this decision only, where Decide keeps it for
// the key's next handshake — at 100,000 keys some 40 MB kept live for
// as long as the store is.
func (s *Store) DecideOnce(sum [32]byte, remote netip.Addr) Decision {
	return s.decide(sum, remote, false)
}

// decide is Decide, keeping the Entry made (madeEntries) if keep is set.
func (s *Store) decide(sum [32]byte, remote netip.Addr, keep bool) Decision {
	if e := s.early.Load(); e != nil {
		if d, ok := e.decide(sum, remote); ok {
			return d
		}
		s.waitLoaded()
	}
	sn := s.snap.Load()
	if err := sn.revoked.Err(); err != nil {
		return Decision{Verdict: Revoked, Err: &RevokedError{Fingerprint: jwk.FormatFingerprint(sum), Err: err}}
	}
	if r, ok := sn.revoked.Lookup(sum); ok {
		return Decision{Verdict: Revoked, Err: revokedError(r)}
	}
	r := sn.keys.lookup(&sum)
	if r.file == 0 {
		err := &NotAuthorizedError{Fingerprint: jwk.FormatFingerprint(sum), Skipped: sn.hidden, First: sn.firstHidden}
		return Decision{Verdict: Unknown, Err: err, Incomplete: sn.skipped}
	}
	if p := sn.skippedKeys[sum]; p != nil {
		// An entry of the key was skipped: it may be the one that would
		// be in effect (the first entry of a key wins), with limits the
		// entry found lacks. Skipped trust never widens trust.
		return Decision{Verdict: Unknown, Err: &SkippedEntryError{Fingerprint: jwk.FormatFingerprint(sum), Problem: *p}, Incomplete: true}
	}
	var e *Entry
	if keep {
		e = s.made.entry(sn.keys.files, r)
	} else {
		e = entryAt(sn.keys.files, r)
	}
	if !e.Expires.IsZero() {
		if now := time.Now(); !now.Before(e.Expires) {
			return Decision{Verdict: Expired, Entry: e, Err: &ExpiredError{Entry: e, Now: now}}
		}
	}
	if e.From != nil {
		// A network carries no zone, and Prefix.Contains is false for
		// a zoned address (fe80::1%eth0, as net.TCPAddr gives a
		// link-local client): the address is compared without it, as
		// OpenSSH's from= compares the address (docs/trust-stores.md).
		ip := remote.Unmap().WithZone("")
		for _, p := range e.From {
			if p.Contains(ip) {
				return Decision{Verdict: Authorized, Entry: e}
			}
		}
		return Decision{Verdict: WrongNetwork, Entry: e, Err: &SourceNotAllowedError{Entry: e, Remote: remote}}
	}
	return Decision{Verdict: Authorized, Entry: e}
}

// revokedError is the error of a key that r revokes.
func revokedError(r keydir.Found[item]) *RevokedError {
	return &RevokedError{Fingerprint: jwk.FormatFingerprint(r.Item.sum), File: r.File.Path()}
}
