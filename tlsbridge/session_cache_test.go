package tlsbridge

import (
	"crypto/tls"
	"errors"
	"testing"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// A caller's ClientSessionCache shared by the configurations of several
// addresses: crypto/tls keys its sessions by ServerName, which Configure
// sets to the host without the port, so a session one port's server
// issued is offered to every port of the host. Whoever holds it — that
// server, or one sharing its ticket keys, answering for the other port —
// resumes with its own certificate, which VerifyConnection decides for
// the address dialled: at a port pinned to another key it is the
// changed-key error, in TLS 1.3 and 1.2; at its own port it resumes.
func TestSharedSessionCacheDecidesEachAddress(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cli := newHome(t, jwk.EC256)
			legit, pinnedTS := serverFor(t, cli)
			cli.pin(t, pinnedTS.addr(), legit.id.Key)
			other, otherTS := serverFor(t, cli) // unknown: accepted once, under Insecure
			cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(8)}
			config := func(addr string, policy Policy) *tls.Config {
				cfg := &tls.Config{ClientSessionCache: cache, MaxVersion: version}
				if err := cli.client(t, ClientOptions{Policy: policy}).Configure(cfg, addr); err != nil {
					t.Fatal(err)
				}
				return cfg
			}
			if _, err := roundTrip(otherTS.addr(), config(otherTS.addr(), Insecure)); err != nil {
				t.Fatalf("control: %v", err)
			}
			if cs, err := roundTrip(otherTS.addr(), config(otherTS.addr(), Insecure)); err != nil || !cs.DidResume {
				t.Fatalf("control resumption: resumed=%v err=%v", cs.DidResume, err)
			}
			// The other server answering for the pinned port, its session
			// in the cache under the same ServerName, and offered.
			hits := cache.hits
			_, err := roundTrip(otherTS.addr(), config(pinnedTS.addr(), Strict))
			if cache.hits == hits {
				t.Fatal("the other server's session was not offered at the pinned address")
			}
			var changed *knownhosts.KeyChangedError
			if !errors.As(err, &changed) || changed.Fingerprint != other.id.Key.Fingerprint() || changed.Addr != pinnedTS.addr() {
				t.Fatalf("the other server's session at the pinned address: %v, want *knownhosts.KeyChangedError", err)
			}
			if cs, err := roundTrip(pinnedTS.addr(), config(pinnedTS.addr(), Strict)); err != nil || cs.PeerCertificates[0].Equal(other.id.Certificate.Leaf) {
				t.Errorf("the pinned server after: %v", err)
			}
		})
	}
}

// countingCache counts the sessions it hands out.
type countingCache struct {
	tls.ClientSessionCache
	hits int
}

func (c *countingCache) Get(key string) (*tls.ClientSessionState, bool) {
	s, ok := c.ClientSessionCache.Get(key)
	if ok {
		c.hits++
	}
	return s, ok
}
