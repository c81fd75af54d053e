package tlsbridge

import (
	"bytes"
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
// and only a CA's signature gets a chain in —, only a chain each
// certificate of which is on a path that verified (keep), and only until
// the first instant at which the answer could change: a certificate of
// the chain or of any installed CA becoming valid or expiring, a CRL
// becoming usable (its thisUpdate, less CRLClockSkew) or expiring (its
// nextUpdate). A clock set back before the verification verifies again
// as well. What the stores decide (a revoked CA key, revokedInChain) is
// not kept: the callers ask them each time.
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
			b = append(b, ca.NotBefore, ca.NotAfter.Add(1)) // valid at NotAfter, expired after it
		}
		for _, crl := range set.crls {
			b = append(b, crl.ThisUpdate.Add(-CRLClockSkew), crl.NextUpdate.Add(1)) // usable at NextUpdate, expired after it
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

// get returns what was verified for key, if it still holds at now. now,
// as the times the cache keeps, is a wall clock alone (VerifyPurpose
// strips the monotonic reading), so that a clock set back looks so.
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

// keep keeps v, which verified chain at now, unless the chain holds a
// certificate on no path v verified, and with copies of the chain's
// certificates of its own (detached).
//
// VerifyConnection asks before crypto/tls checks the client's
// CertificateVerify, so a peer holding someone else's certificate (a
// certificate is no secret) gets its chain this far without the key.
// Were that chain kept whatever came with it, such a peer could send it
// with a different junk certificate each time — crypto/x509 ignores
// what it does not need — and fill the cache, each answer holding the
// whole Certificate message it was parsed from (crypto/tls parses the
// certificates in place: 64 KiB each under the handshake budget, 256
// KiB without), and empty it again for the clients it held (found by
// review, 2026-12-03). So a chain is kept only if each certificate sent
// is on a verified path (a root sent along is: its DER is the CA's), and
// its certificates are parsed again from copies of their DER: an
// answer holds a few KiB, and only a certificate a CA signed for each.
func (c *verifiedCache) keep(key [32]byte, chain []*x509.Certificate, v *CAVerified, now time.Time) {
	if c == nil || !allOnPaths(chain, v.completed) {
		return
	}
	c.put(key, chain, detached(chain, v), now)
}

// allOnPaths reports whether every certificate of chain is one of paths'.
func allOnPaths(chain []*x509.Certificate, paths [][]*x509.Certificate) bool {
	for _, sent := range chain {
		if !slices.ContainsFunc(paths, func(path []*x509.Certificate) bool {
			return slices.ContainsFunc(path, func(c *x509.Certificate) bool { return c == sent || bytes.Equal(c.Raw, sent.Raw) })
		}) {
			return false
		}
	}
	return true
}

// detached is v with the certificates of chain (the peer's, parsed by
// crypto/tls as slices of its message) parsed again from copies of their
// DER; the CAs' own certificates are the state's, kept as they are.
func detached(chain []*x509.Certificate, v *CAVerified) *CAVerified {
	copies := map[*x509.Certificate]*x509.Certificate{}
	for _, sent := range chain {
		if d, err := x509.ParseCertificate(bytes.Clone(sent.Raw)); err == nil {
			copies[sent] = d
		}
	}
	swap := func(path []*x509.Certificate) []*x509.Certificate {
		out := slices.Clone(path)
		for i, c := range out {
			if d, ok := copies[c]; ok {
				out[i] = d
			}
		}
		return out
	}
	d := *v
	d.Chain = swap(v.Chain)
	d.completed = make([][]*x509.Certificate, len(v.completed))
	for i, path := range v.completed {
		d.completed[i] = swap(path)
	}
	return &d
}

// put keeps v, which verified chain at now.
func (c *verifiedCache) put(key [32]byte, chain []*x509.Certificate, v *CAVerified, now time.Time) {
	expires := c.next(now)
	for _, cert := range chain {
		for _, t := range [2]time.Time{cert.NotBefore, cert.NotAfter.Add(1)} {
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
