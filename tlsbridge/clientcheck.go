package tlsbridge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/keytool/keytool/knownhosts"
)

// A client's configuration checks the server's key in both of crypto/tls's
// callbacks, so that assigning a VerifyConnection of one's own over
// keytool's (on what TLSConfig returned) does not leave the key unchecked:
// with InsecureSkipVerify set, which pinning needs, nothing else would
// check it (docs/tlsbridge.md, "Adding keytool to an existing tls.Config").
//
// On a full handshake crypto/tls calls VerifyPeerCertificate and, right
// after it, VerifyConnection; on a resumed one, VerifyConnection alone.
// So VerifyPeerCertificate decides (verifyPeer), and remembers that it
// admitted this chain for this server name (peerChecked); the
// VerifyConnection that follows takes that back (verifyConnection) and
// does not decide again: a question is asked once, an answer of Once is
// not asked again, Insecure's warning is logged once.
//
// What is remembered is a sum of the chain and the name, never a
// pointer: crypto/tls gives the two callbacks nothing else in common.
// So a VerifyConnection might take back what another handshake left —
// one whose own VerifyConnection was not keytool's (a Clone's, replaced),
// or whose handshake failed after keytool's VerifyPeerCertificate — and
// that must never admit what a decision now would refuse. Hence:
//   - a resumed handshake never takes anything back: it decides (it has
//     no VerifyPeerCertificate of its own);
//   - an entry is remembered only once the caller's VerifyPeerCertificate,
//     if any, has accepted the chain too, and is taken back only within
//     peerCheckedFresh, the moment between the two callbacks;
//   - what is taken back stands only where the store still knows nothing
//     of the key (Unknown: the question, PKI mode, DNS or the policy
//     decided): a pin, a revocation or a changed key found now decides,
//     as it would have.
// A VerifyConnection that finds nothing to take back (a resumed
// handshake, or a VerifyPeerCertificate assigned over keytool's)
// decides itself.

// peerChecked holds the chains one configuration's VerifyPeerCertificate
// admitted whose VerifyConnection has not run yet: one entry per
// handshake.
type peerChecked struct {
	mu      sync.Mutex
	pending map[[32]byte][]peerDecision
	n       int
}

// peerDecision is what VerifyPeerCertificate decided of a chain: when,
// and whether a pin for the address admitted its key as it stood before
// the handshake (which LearnAnnounced needs to know).
type peerDecision struct {
	at     time.Time
	pinned bool
}

// peerCheckedFresh is how long after VerifyPeerCertificate its decision
// may be taken back: crypto/tls calls VerifyConnection right after it, on
// the same goroutine, with nothing between them that waits.
const peerCheckedFresh = time.Second

// maxPeerChecked bounds peerChecked: the entries pile up only where
// VerifyConnection is not keytool's, and then nothing takes them back.
// Forgetting them costs a decision made again, never one skipped.
const maxPeerChecked = 64

func (p *peerChecked) add(sum [32]byte, d peerDecision) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n >= maxPeerChecked || p.pending == nil {
		p.pending = make(map[[32]byte][]peerDecision)
		p.n = 0
	}
	p.pending[sum] = append(p.pending[sum], d)
	p.n++
}

// take removes the newest entry for sum and returns it if it was made
// within peerCheckedFresh of now; ok is false if there is none.
func (p *peerChecked) take(sum [32]byte, now time.Time) (d peerDecision, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.pending[sum]
	if len(s) == 0 {
		return d, false
	}
	d = s[len(s)-1]
	if len(s) == 1 {
		delete(p.pending, sum)
	} else {
		p.pending[sum] = s[:len(s)-1]
	}
	p.n--
	return d, now.Sub(d.at) < peerCheckedFresh
}

// chainSum is the sum peerChecked keeps for a server name and the DER
// certificates cert(0) … cert(n-1), each length-prefixed.
func chainSum(name string, n int, cert func(int) []byte) [32]byte {
	h := sha256.New()
	var b [binary.MaxVarintLen64]byte
	h.Write(b[:binary.PutUvarint(b[:], uint64(len(name)))])
	h.Write([]byte(name))
	for i := range n {
		der := cert(i)
		h.Write(b[:binary.PutUvarint(b[:], uint64(len(der)))])
		h.Write(der)
	}
	return [32]byte(h.Sum(nil))
}

// verifyPeer is VerifyPeerCertificate's decision on the server's raw
// certificates for addr, the handshake's server name being name; theirs,
// if not nil, is the caller's VerifyPeerCertificate, asked after it.
func (c *Client) verifyPeer(ctx context.Context, raw [][]byte, name, addr string, checked *peerChecked, theirs func([][]byte, [][]*x509.Certificate) error) error {
	certs := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			// crypto/tls parsed them already: not expected.
			return fmt.Errorf("tlsbridge: host %s: its certificate: %w", addr, err)
		}
		certs[i] = cert
	}
	pinned, err := c.verify(ctx, tls.ConnectionState{PeerCertificates: certs, ServerName: name}, addr)
	if err != nil {
		return err
	}
	if theirs != nil {
		// InsecureSkipVerify: crypto/tls verified no chain.
		if err := theirs(raw, nil); err != nil {
			return err
		}
	}
	checked.add(chainSum(name, len(raw), func(i int) []byte { return raw[i] }), peerDecision{at: time.Now(), pinned: pinned})
	return nil
}

// verifyConnection is VerifyConnection's decision on the server of cs, a
// connection to addr: the one VerifyPeerCertificate made on the same
// chain just before, where the store still knows nothing of the key, or
// its own.
func (c *Client) verifyConnection(ctx context.Context, cs tls.ConnectionState, addr string, checked *peerChecked) error {
	peers := cs.PeerCertificates
	var (
		d  peerDecision
		ok bool
	)
	if !cs.DidResume && len(peers) > 0 {
		d, ok = checked.take(chainSum(sniName(cs.ServerName), len(peers), func(i int) []byte { return peers[i].Raw }), time.Now())
	}
	pinned := d.pinned
	if ok {
		// A pin, or a key changed, revoked, skipped or refused since,
		// decides as it would have; where the store knows nothing of
		// the key, the decision taken back stands.
		stored, _, _, err := c.storeVerdict(cs, addr)
		if err != nil {
			return err
		}
		pinned = pinned && stored.Verdict == knownhosts.Pinned
	} else {
		var err error
		if pinned, err = c.verify(ctx, cs, addr); err != nil {
			return err
		}
	}
	c.awaitAnnounced(pinned, peers[0])
	return nil
}

// sniName is the server name crypto/tls sends for a configuration's
// ServerName, and reports in ConnectionState.ServerName (its
// hostnameInSNI): none for an IP address, a name without its final dots.
func sniName(name string) string {
	host := name
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	if i := strings.LastIndex(host, "%"); i > 0 {
		host = host[:i]
	}
	if net.ParseIP(host) != nil {
		return ""
	}
	return strings.TrimRight(name, ".")
}
