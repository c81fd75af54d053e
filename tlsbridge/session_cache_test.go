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

// A host key unpinned, or pinned to another key, after a session was made
// with it cannot come back by resuming that session: crypto/tls runs
// VerifyConnection on resumed handshakes (TLS 1.3 PSK, TLS 1.2 tickets),
// with the certificate the session remembers, and keytool decides it for
// the address as a full handshake's. Unpinned: the unknown-host policy
// decides — Strict refuses (*knownhosts.UnknownHostError), Ask asks about
// the key. Pinned to another key: the changed-key error. Each time the
// session made while the key was pinned is offered (countingCache), and
// resumes in the control.
func TestRemovedHostKeyCannotResume(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			cli := newHome(t, jwk.EC256)
			srv, ts := serverFor(t, cli)
			var asked []string
			config := func(cache tls.ClientSessionCache, policy Policy) *tls.Config {
				c := cli.client(t, ClientOptions{Policy: policy, Prompt: PromptFunc(func(h UnknownHost) (Answer, error) {
					asked = append(asked, h.Key.Fingerprint())
					return No, nil
				})})
				cfg := &tls.Config{ClientSessionCache: cache, MaxVersion: version}
				if err := c.Configure(cfg, ts.addr()); err != nil {
					t.Fatal(err)
				}
				return cfg
			}
			for _, tc := range []struct {
				name   string
				policy Policy
				other  bool // pin another key after the removal
				check  func(error) bool
			}{
				{"unpinned, strict", Strict, false, func(err error) bool {
					var unknown *knownhosts.UnknownHostError
					return errors.As(err, &unknown) && unknown.Fingerprint == srv.id.Key.Fingerprint()
				}},
				{"unpinned, ask", Ask, false, func(err error) bool {
					var refused *RefusedHostError
					return errors.As(err, &refused) && len(asked) == 1 && asked[0] == srv.id.Key.Fingerprint()
				}},
				{"pinned to another key", Ask, true, func(err error) bool {
					var changed *knownhosts.KeyChangedError
					return errors.As(err, &changed) && changed.Fingerprint == srv.id.Key.Fingerprint()
				}},
			} {
				asked = nil
				cli.pin(t, ts.addr(), srv.id.Key)
				cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(8)}
				if _, err := roundTrip(ts.addr(), config(cache, Strict)); err != nil {
					t.Fatalf("%s: control: %v", tc.name, err)
				}
				if cs, err := roundTrip(ts.addr(), config(cache, Strict)); err != nil || !cs.DidResume {
					t.Fatalf("%s: control resumption: resumed=%v err=%v", tc.name, cs.DidResume, err)
				}
				if _, err := cli.host.Remove(ts.addr()); err != nil {
					t.Fatal(err)
				}
				if tc.other {
					cli.pin(t, ts.addr(), mustGenerate(t, jwk.EC256))
				}
				hits := cache.hits
				_, err := roundTrip(ts.addr(), config(cache, tc.policy))
				if cache.hits == hits {
					t.Errorf("%s: the session was not offered", tc.name)
				}
				if !tc.check(err) {
					t.Errorf("%s: %v (asked about %v)", tc.name, err, asked)
				}
				if tc.other {
					if _, err := cli.host.Remove(ts.addr()); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}
