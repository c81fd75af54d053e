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
// admitted this chain, for this server name (peerChecked); the
// VerifyConnection that follows takes that back and does not decide
// again (verifyConnection) — a question is asked once, an answer of Once
// is not asked again, Insecure's warning is logged once. A
// VerifyConnection that finds nothing to take back (a resumed handshake,
// or a VerifyPeerCertificate assigned over keytool's) decides itself.
// What is remembered is the chain's and the name's sum, never a pointer:
// any handshake that takes it back has the same certificates and name,
// on which the decision is the same.

// peerChecked holds the chains one configuration's VerifyPeerCertificate
// admitted whose VerifyConnection has not run yet: one entry per
// handshake, with whether a pin for the address admitted the key (which
// LearnAnnounced needs to know).
type peerChecked struct {
	mu      sync.Mutex
	pending map[[32]byte][]bool
	n       int
}

// maxPeerChecked bounds peerChecked: the entries pile up only where
// VerifyConnection is not keytool's, and then nothing takes them back.
// Forgetting them costs a decision made again, never one skipped.
const maxPeerChecked = 64

func (p *peerChecked) add(sum [32]byte, pinned bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n >= maxPeerChecked || p.pending == nil {
		p.pending = make(map[[32]byte][]bool)
		p.n = 0
	}
	p.pending[sum] = append(p.pending[sum], pinned)
	p.n++
}

// take removes an entry for sum and returns it; ok is false if there is none.
func (p *peerChecked) take(sum [32]byte) (pinned, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.pending[sum]
	if len(s) == 0 {
		return false, false
	}
	pinned = s[len(s)-1]
	if len(s) == 1 {
		delete(p.pending, sum)
	} else {
		p.pending[sum] = s[:len(s)-1]
	}
	p.n--
	return pinned, true
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
// certificates for addr, the handshake's server name being name.
func (c *Client) verifyPeer(ctx context.Context, raw [][]byte, name, addr string, checked *peerChecked) error {
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
	checked.add(chainSum(name, len(raw), func(i int) []byte { return raw[i] }), pinned)
	return nil
}

// verifyConnection is VerifyConnection's decision on the server of cs, a
// connection to addr: the one VerifyPeerCertificate made on the same
// chain just before, or its own.
func (c *Client) verifyConnection(ctx context.Context, cs tls.ConnectionState, addr string, checked *peerChecked) error {
	peers := cs.PeerCertificates
	pinned, ok := checked.take(chainSum(cs.ServerName, len(peers), func(i int) []byte { return peers[i].Raw }))
	if !ok {
		var err error
		if pinned, err = c.verify(ctx, cs, addr); err != nil {
			return err
		}
	}
	c.awaitAnnounced(pinned, addr, peers[0])
	return nil
}

// sniName is the server name crypto/tls sends for a configuration's
// ServerName, and reports in ConnectionState.ServerName (its
// hostnameInSNI): none for an IP address, a name without its final dots.
func sniName(name string) string {
	host := strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if i := strings.LastIndex(host, "%"); i > 0 {
		host = host[:i]
	}
	if net.ParseIP(host) != nil {
		return ""
	}
	return strings.TrimRight(name, ".")
}
