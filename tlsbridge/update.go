package tlsbridge

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"time"
	"weak"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// UpdateHostKeys is what a client does with the next keys a host
// announces in its certificate (OIDSignedNextKeys), OpenSSH's UpdateHostKeys:
// only a host that has just presented a key pinned for the address it was
// dialled at is listened to, and an announced key is pinned beside the
// address's pins, never in their place (docs/design.md, "Announced
// rotation").
type UpdateHostKeys int

const (
	// UpdateNo ignores announcements.
	UpdateNo UpdateHostKeys = iota
	// UpdateYes pins announced keys, and logs each.
	UpdateYes
	// UpdateAsk asks the Prompt, if it is an AnnouncementPrompt, showing
	// both keys; any other Prompt means no.
	UpdateAsk
)

// ParseUpdateHostKeys reads OpenSSH's values: yes, ask, no.
func ParseUpdateHostKeys(s string) (UpdateHostKeys, error) {
	switch s {
	case "yes":
		return UpdateYes, nil
	case "ask":
		return UpdateAsk, nil
	case "no":
		return UpdateNo, nil
	}
	return 0, fmt.Errorf("tlsbridge: unknown UpdateHostKeys value %q: use yes, ask or no", s)
}

func (u UpdateHostKeys) String() string {
	return enumString(u, "UpdateHostKeys", "no", "yes", "ask")
}

// AnnouncedKey is what an AnnouncementPrompt is asked about: the key a
// host announces as its next one, and the pinned key it has just proved
// it holds.
type AnnouncedKey struct {
	Addr          string
	Current, Next *jwk.Key
}

// AnnouncementPrompt is a Prompt that can also be asked about an
// announced key (UpdateAsk). Terminal is one.
type AnnouncementPrompt interface {
	AskAnnouncedKey(a AnnouncedKey) (Answer, error)
}

// AnnouncementNotice is an AnnouncementPrompt that is also told of an
// announced key it is not asked about (UpdateAsk) because the address
// holds as many pins as announcements may bring it to (pinned of most:
// its key and MaxAnnounced next ones), so that a yes would be refused
// (knownhosts.TooManyKeysError). Terminal is one. A user is never asked
// a question whose yes is then refused; one who is not asked is told
// why.
type AnnouncementNotice interface {
	AnnouncedKeyNotOffered(a AnnouncedKey, pinned, most int)
}

// roomTeller is a HostKeys store that tells, on its files as they are,
// whether a key would find room under an address's bound of pins
// (knownhosts.Store.RoomNow), by the rule AddKeyAtMost enforces.
type roomTeller interface {
	RoomNow(addr string, sum [32]byte, most int) (pinned int, room bool)
}

// hostKeyAdder is a HostKeys store that can pin one more key for an
// address, bounded by the keys pinned for it, the count and the write one
// step (knownhosts.Store.AddKeyAtMost). A store that cannot bound its
// pins so is never pinned into by an announcement: counted first and
// written after, concurrent handshakes each found room, and together
// passed the bound (found by review, 2026-12-05).
type hostKeyAdder interface {
	AddKeyAtMost(addr string, key *jwk.Key, mode knownhosts.AddMode, most int) (string, error)
}

// awaitHandshake notes that leaf, whose key a pin for an address has
// just admitted in VerifyConnection, may announce keys to learn once a
// handshake presenting it completes (LearnAnnounced).
//
// The note is the leaf's, not the handshake's: crypto/tls shares one
// parsed certificate between every connection presenting the same DER
// while any of them is alive. So it is made once a leaf, with one
// cleanup that drops it when the leaf is collected — a note taken back at
// each handshake and made again at the next attached a cleanup a
// handshake to a leaf an open connection kept alive, without bound —
// and it vouches for nothing on its own: LearnAnnounced asks the store
// again whether the key is pinned for the address it is given (found by
// review, 2026-12-05).
func (c *Client) awaitHandshake(leaf *x509.Certificate) {
	if c.opts.UpdateHostKeys == UpdateNo || c.opts.Policy == Insecure || !hasNextKeys(leaf) {
		return
	}
	w := weak.Make(leaf)
	if _, loaded := c.announcing.LoadOrStore(w, struct{}{}); !loaded {
		runtime.AddCleanup(leaf, func(w weak.Pointer[x509.Certificate]) { c.announcing.Delete(w) }, w)
	}
}

// hasNextKeys reports whether leaf announces keys, in either form: the
// unsigned one (OIDNextKeys) is reported once the handshake completes,
// never learned from.
func hasNextKeys(leaf *x509.Certificate) bool {
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(OIDSignedNextKeys) || ext.Id.Equal(OIDNextKeys) {
			return true
		}
	}
	return false
}

// LearnAnnounced pins the next keys announced by the server of cs, a
// connection to addr, under ClientOptions.UpdateHostKeys — if a pin for
// addr admitted its key and the handshake is complete. Only then has the
// server proved that it holds the pinned key: VerifyConnection runs
// before the server's signature is checked, and a certificate alone is
// public, replayable, perhaps old. DialContext, Transport and LiveConns
// call it; a caller that completes handshakes itself with TLSConfig or
// Configure calls it after each, or no key is learned.
func (c *Client) LearnAnnounced(addr string, cs tls.ConnectionState) {
	if !cs.HandshakeComplete || len(cs.PeerCertificates) == 0 {
		return
	}
	leaf := cs.PeerCertificates[0]
	if _, ok := c.announcing.Load(weak.Make(leaf)); !ok {
		return
	}
	// The note is the leaf's, which another handshake may have left (one
	// whose CertificateVerify failed: an impostor replaying the
	// certificate), so the pin is asked for again, now, for this address
	// and this client's purpose: a host admitted by the question, the
	// policy, PKI mode or DNS never adds a pin this way.
	sum, err := peerKeySum(leaf, "host "+addr)
	if err != nil || c.storeDecision(addr, sum).Verdict != knownhosts.Pinned {
		return
	}
	c.learnAnnounced(addr, leaf)
}

// learnAnnounced pins the next keys that leaf announces for addr, under
// the UpdateHostKeys policy. The caller has found leaf's key pinned for
// addr: the announcement is signed by that key and each next key signed
// its own announcement by it (AnnouncedKeys), so only the holder of a
// pinned key can add a pin, only beside its own, and only of a key it
// holds too. The handshake's outcome does not depend on it: a failure is
// logged.
func (c *Client) learnAnnounced(addr string, leaf *x509.Certificate) {
	if c.opts.UpdateHostKeys == UpdateNo || c.opts.Policy == Insecure {
		return
	}
	adder, ok := c.opts.Hosts.(hostKeyAdder)
	if !ok {
		return
	}
	// A host makes its certificate itself, and may announce other keys
	// at each connection — or an announcement that does not parse: once
	// refused, an address is not tried again for rotationRetry, so that a
	// failure costs one line per wait, not one per connection.
	addrKey := sha256.Sum256([]byte(addr))
	if !c.announceFailed.due(addrKey, time.Now()) {
		return
	}
	next, err := announcedKeys(leaf, func(k *jwk.Key) bool {
		// For the connection's purpose: a pin for some purposes does not
		// admit a connection without one (docs/design.md, "Purposes").
		return c.storeDecision(addr, k.SPKIHash()).Verdict != knownhosts.Pinned
	})
	if err != nil {
		c.opts.Logger.Warn("ignoring the next keys a host announces", "addr", addr, "error", err, "retry_in", rotationRetry.String())
		c.announceFailed.failed(addrKey, time.Now())
		return
	}
	if len(next) == 0 {
		return
	}
	current, err := jwk.NewPublicKey(leaf.PublicKey)
	if err != nil {
		return
	}
	purposes, ok := c.pinnedPurposes(addr, current.SPKIHash())
	if !ok {
		c.opts.Logger.Warn("ignoring the next keys a host announces: the purposes its key is pinned for are unknown", "addr", addr, "current", current.Fingerprint())
		return
	}
	pinned := 0
	for _, k := range next {
		if purposes != nil {
			k = k.PublicKey()
			if k.Attrs == nil {
				k.Attrs = jwk.Attributes{}
			}
			k.Attrs.SetList(jwk.AttrPurpose, purposes)
		}
		if c.opts.UpdateHostKeys == UpdateAsk {
			switch c.askAnnounced(addr, current, k) {
			case askedNo:
				c.opts.Logger.Info("not pinning the next key a host announces", "addr", addr, "fingerprint", k.Fingerprint(), "current", current.Fingerprint())
				continue
			case notAsked:
				// The address holds its bound already: the user was not
				// asked (a yes would be refused below), and was told why
				// where the prompt can be (AnnouncementNotice). A key
				// after it may still be asked about: one the address
				// pins already for other purposes adds no key.
				c.opts.Logger.Info("not asking about a next key a host announces: the address has as many keys pinned as a certificate announces; remove those no longer used",
					"addr", addr, "fingerprint", k.Fingerprint(), "current", current.Fingerprint(), "announced", len(next), "pinned", pinned, "retry_in", rotationRetry.String())
				c.announceFailed.failed(addrKey, time.Now())
				continue
			}
		}
		// An address gets no more pins by announcement than one
		// certificate needs (its key and MaxAnnounced next ones), counted
		// by the store under its write lock.
		file, err := adder.AddKeyAtMost(addr, k, knownhosts.AddAnother, 1+MaxAnnounced)
		var tooMany *knownhosts.TooManyKeysError
		if errors.As(err, &tooMany) {
			c.opts.Logger.Warn("not pinning some next keys a host announces: the address would have more keys pinned than a certificate announces; remove those no longer used",
				"addr", addr, "current", current.Fingerprint(), "announced", len(next), "pinned", pinned, "retry_in", rotationRetry.String())
			c.announceFailed.failed(addrKey, time.Now())
			return
		}
		if err != nil {
			c.opts.Logger.Warn("could not pin the next key a host announces", "addr", addr, "fingerprint", k.Fingerprint(), "error", err, "retry_in", rotationRetry.String())
			c.announceFailed.failed(addrKey, time.Now())
			return
		}
		pinned++
		c.opts.Logger.Warn("pinned the next key a host announces", "addr", addr, "fingerprint", k.Fingerprint(),
			"current", current.Fingerprint(), "file", file, "update_host_keys", c.opts.UpdateHostKeys.String())
	}
}

// noPurpose is a purpose no pin names: only the pins for every purpose
// apply to it.
const noPurpose = "\x00"

// pinnedPurposes returns the purposes for which the key sum is pinned at
// addr (nil: every purpose), which a key it announces is pinned for: an
// announcement never widens the pin of the key that made it
// (docs/design.md, "Purposes"). ok is false when they cannot be told.
func (c *Client) pinnedPurposes(addr string, sum [32]byte) (purposes []string, ok bool) {
	p, isPurpose := c.opts.Hosts.(PurposeHostKeys)
	if !isPurpose || p.DecidePurpose(addr, noPurpose, sum).Verdict == knownhosts.Pinned {
		return nil, true
	}
	if store, listed := c.opts.Hosts.(interface{ Entries() []*knownhosts.Entry }); listed {
		for _, e := range store.Entries() {
			if e.SPKIHash != sum {
				continue
			}
			for _, purpose := range e.Purposes {
				if !slices.Contains(purposes, purpose) && p.DecidePurpose(addr, purpose, sum).Verdict == knownhosts.Pinned {
					purposes = append(purposes, purpose)
				}
			}
		}
	}
	if len(purposes) == 0 && c.opts.Purpose != "" {
		purposes = []string{c.opts.Purpose} // the purpose it was just verified for
	}
	return purposes, len(purposes) > 0
}

// askResult is what askAnnounced got: a yes, a no (or no question:
// nobody to ask, pinned meanwhile), or no question because the address
// holds its bound.
type askResult int

const (
	askedNo askResult = iota
	askedYes
	notAsked
)

// askAnnounced asks the prompt, one question at a time, whether to pin
// next for addr. Where pinning it would pass the address's bound
// (1+MaxAnnounced keys, decided on the files as they are by the rule
// AddKeyAtMost enforces: roomTeller), it is not asked — AddKeyAtMost
// would refuse its yes (found by review, 2026-12-05) — and the prompt, if
// it can be told (AnnouncementNotice), is told so. A key the address pins
// already for other purposes adds none to the count and is asked about:
// AddKeyAtMost pins it. The bound is still enforced by AddKeyAtMost's
// locked count: another process may pin in between.
func (c *Client) askAnnounced(addr string, current, next *jwk.Key) askResult {
	p, ok := c.opts.Prompt.(AnnouncementPrompt)
	if !ok {
		return askedNo
	}
	c.prompt.Lock()
	defer c.prompt.Unlock()
	if c.storeDecision(addr, next.SPKIHash()).Verdict == knownhosts.Pinned {
		return askedNo // pinned while this one waited
	}
	if teller, ok := c.opts.Hosts.(roomTeller); ok {
		most := 1 + MaxAnnounced
		if n, room := teller.RoomNow(addr, next.SPKIHash(), most); !room {
			if notice, ok := p.(AnnouncementNotice); ok {
				notice.AnnouncedKeyNotOffered(AnnouncedKey{Addr: addr, Current: current, Next: next}, n, most)
			}
			return notAsked
		}
	}
	a, err := p.AskAnnouncedKey(AnnouncedKey{Addr: addr, Current: current, Next: next})
	if err == nil && a == Yes {
		return askedYes
	}
	return askedNo
}

// RotationAcceptor is a ClientKeys store that can authorize a client's
// next key under the entry of its current one (*authkeys.Store).
type RotationAcceptor interface {
	AcceptRotation(e *authkeys.Entry, next *jwk.Key) (*authkeys.Entry, error)
}

// acceptRotation authorizes the next keys that an admitted client
// announces, if its entry accepts rotation (authkeys.Entry.AcceptRotation,
// opt-in per entry): under the same name, attributes and restrictions.
// As on the client side, only the key that was just verified can
// announce, and only keys that signed their announcement by it
// (AnnouncedKeys, the one check of both sides): a client cannot have
// another user's key authorized under its name. The handshake's outcome
// does not depend on it.
//
// A client whose next key could not be authorized, or whose
// announcement does not parse, is not tried again for rotationRetry:
// Peer runs at every request and connection, and an attempt costs the
// store a rescan of every file and the log a warning — a client
// announcing a key the store refuses (a name at authkeys.MaxNextKeys, a
// file it cannot write) or a malformed announcement would otherwise have
// them at each one.
func (s *Server) acceptRotation(p *Peer, remote netip.Addr) {
	if p == nil || p.Err != nil || p.Entry == nil || !p.Entry.AcceptRotation {
		return
	}
	acc, ok := s.opts.Clients.(RotationAcceptor)
	if !ok || !s.rotationFailed.due(p.SPKIHash, time.Now()) {
		return
	}
	log := s.opts.Logger
	if log == nil {
		log = slog.Default()
	}
	next, err := announcedKeys(p.Certificate, func(k *jwk.Key) bool {
		// Not authorized already (nor refused: revoked, expired…).
		return s.opts.Clients.Decide(k.SPKIHash(), remote).Verdict == authkeys.Unknown
	})
	if err != nil {
		log.Warn("ignoring the next keys a client announces", "name", p.Name(), "fingerprint", p.Fingerprint(), "error", err, "retry_in", rotationRetry.String())
		s.rotationFailed.failed(p.SPKIHash, time.Now())
		return
	}
	for _, k := range next {
		e, err := acc.AcceptRotation(p.Entry, k)
		if err != nil {
			log.Warn("could not authorize the next key a client announces", "name", p.Name(), "fingerprint", k.Fingerprint(), "current", p.Fingerprint(),
				"error", err, "retry_in", rotationRetry.String())
			s.rotationFailed.failed(p.SPKIHash, time.Now())
			return
		}
		log.Warn("authorized the next key a client announces", "name", e.Name, "fingerprint", k.Fingerprint(), "current", p.Fingerprint(), "file", e.File)
	}
}

// rotationRetry is how long a client whose next key could not be
// authorized waits before the server tries again (Server.acceptRotation),
// and a host whose next key could not be pinned before the client tries
// again (Client.learnAnnounced).
const rotationRetry = 10 * time.Second

// rotationBackoff holds, by client key (or by the SHA-256 of a host's
// address), when the last failed attempt to learn its next keys was made.
type rotationBackoff struct {
	mu sync.Mutex
	at map[[32]byte]time.Time
}

// due reports whether an attempt for the client key sum may be made at
// now: none failed within rotationRetry.
func (b *rotationBackoff) due(sum [32]byte, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	at, ok := b.at[sum]
	return !ok || now.Sub(at) >= rotationRetry
}

// failed notes a failed attempt for sum at now. The table holds only the
// keys of admitted clients that accept rotation (the addresses of pinned
// hosts); those whose wait is over are forgotten as it grows.
func (b *rotationBackoff) failed(sum [32]byte, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.at == nil {
		b.at = map[[32]byte]time.Time{}
	}
	if len(b.at) >= 64 {
		for k, at := range b.at {
			if now.Sub(at) >= rotationRetry {
				delete(b.at, k)
			}
		}
	}
	b.at[sum] = now
}
