package tlsbridge

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"slices"
	"sync"
	"time"
)

// verifiedCache remembers the chains a PKI state verified, so that the
// same chain is not verified again at every HTTP request of its
// connection (PeerOf decides anew for each one) nor at every connection
// of the same client: a verification is a signature check or more, some
// 80–200 µs, where a lookup is a hash of the chain (docs/design.md, "Chains
// and their CRLs"). It belongs to one pkiState: a new CA, CRL or CA
// directory is a new state, and starts empty.
//
// Only what verified is kept — a refusal is worked out again each time,
// and only a CA's signature gets a chain in — and only until the first
// instant at which the answer could change: a certificate of the chain or
// of any installed CA becoming valid or expiring, a CRL becoming usable
// (its thisUpdate, less CRLClockSkew) or expiring (its nextUpdate). A
// clock set back before the verification verifies again as well. What
// the stores decide (a revoked CA key, revokedInChain) is not kept: the
// callers ask them each time.
type verifiedCache struct {
	// boundaries are the instants of the state's certificates and CRLs
	// at which a verification's answer may change, sorted.
	boundaries []time.Time

	mu sync.Mutex
	m  map[[32]byte]verifiedEntry
}

// pkiNow is the time VerifyPurpose verifies at: a variable for the tests
// that move the clock past a boundary.
var pkiNow = time.Now

// maxVerified bounds a state's cache: a parsed chain is a few KiB, and
// a server with more clients than this keeps verifying those beyond it
// as it did before the cache. When full, the cache starts again empty,
// so that the clients of the moment are the ones kept.
const maxVerified = 2048

type verifiedEntry struct {
	v           *CAVerified
	at, expires time.Time // when verified; the first boundary after that
}

// newVerifiedCache returns the cache of a state of sets.
func newVerifiedCache(sets []*caSet) *verifiedCache {
	var b []time.Time
	for _, set := range sets {
		for _, ca := range set.cas {
			b = append(b, ca.NotBefore, ca.NotAfter)
		}
		for _, crl := range set.crls {
			b = append(b, crl.ThisUpdate.Add(-CRLClockSkew), crl.NextUpdate)
		}
	}
	slices.SortFunc(b, time.Time.Compare)
	return &verifiedCache{boundaries: b, m: map[[32]byte]verifiedEntry{}}
}

// verifiedKey names one question VerifyPurpose answers: the purpose,
// usage, host name and every certificate of the chain as sent.
func verifiedKey(purpose string, chain []*x509.Certificate, usage x509.ExtKeyUsage, dnsName string) [32]byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(purpose))
	field([]byte(dnsName))
	binary.BigEndian.PutUint64(n[:], uint64(usage))
	h.Write(n[:])
	for _, c := range chain {
		field(c.Raw)
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// get returns what was verified for key, if it still holds at now.
func (c *verifiedCache) get(key [32]byte, now time.Time) *CAVerified {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if !ok || now.Before(e.at) || !now.Before(e.expires) {
		return nil
	}
	return e.v
}

// put keeps v, which verified chain at now.
func (c *verifiedCache) put(key [32]byte, chain []*x509.Certificate, v *CAVerified, now time.Time) {
	if c == nil {
		return
	}
	expires := c.next(now)
	for _, cert := range chain {
		for _, t := range [2]time.Time{cert.NotBefore, cert.NotAfter} {
			if t.After(now) && t.Before(expires) {
				expires = t
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxVerified {
		clear(c.m)
	}
	c.m[key] = verifiedEntry{v: v, at: now, expires: expires}
}

// next is the first boundary of the state after now (or a time far
// ahead when there is none).
func (c *verifiedCache) next(now time.Time) time.Time {
	i, _ := slices.BinarySearchFunc(c.boundaries, now, time.Time.Compare)
	for ; i < len(c.boundaries); i++ {
		if c.boundaries[i].After(now) {
			return c.boundaries[i]
		}
	}
	return now.AddDate(100, 0, 0)
}
