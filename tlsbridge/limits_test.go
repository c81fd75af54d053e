package tlsbridge

import (
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// The "from" and "expires" of clients' keys in one JWK Set whose bad
// members are skipped each stay their own key's in the handshake — a
// store keeps them by position beside its keys, and a skipped member
// must not shift a limit onto a neighbour —, and a session made before
// the set is rewritten (its bad members moved, its limits on other keys)
// does not resume past the new limits: a client limited to 10.0.0.0/8,
// or expired, is refused from 127.0.0.1 fresh or resuming, in TLS 1.3 and
// 1.2.
func TestLimitsInASetWithSkippedMembers(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			srv, a, b, c := newHome(t, jwk.EC256), newHome(t, jwk.EC256), newHome(t, jwk.EC256), newHome(t, jwk.EC256)
			rs := startRecording(t, mustServer(t, srv, ServerOptions{}))
			set := filepath.Join(srv.dir, "authorized_keys.d", "fleet.json")
			bad := func(attrs ...string) *jwk.Key { return keydirtest.WithAttrs(mustGenerate(t, jwk.EC256), attrs...) }
			limit := func(h *home, attrs ...string) *jwk.Key { return keydirtest.WithAttrs(h.id.Key, attrs...) }
			config := func(h *home) *tls.Config {
				h.pin(t, rs.addr(), srv.id.Key)
				cfg := mustConfig(t, h.client(t, ClientOptions{}), rs.addr())
				cfg.MaxVersion = version
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
				return cfg
			}
			ca, cb, cc := config(a), config(b), config(c)
			wrongNetwork, expired := isA[*authkeys.SourceNotAllowedError], isA[*authkeys.ExpiredError]

			keydirtest.Write(t, set, keydirtest.JWK(t,
				bad("use", "enc"),
				limit(a, "from", "10.0.0.0/8"),
				bad("expires", "tomorrow"),
				limit(b, "comment", "b"),
				limit(c, "expires", "2001-01-01T00:00:00Z"),
				bad("from", "not a network"),
			))
			srv.auth.Reload()
			if n := len(srv.auth.Problems()); n != 3 {
				t.Fatalf("%d problems, want the 3 bad members: %v", n, srv.auth.Problems())
			}
			rs.refusedWith(t, ca, "a, limited to 10.0.0.0/8", wrongNetwork)
			rs.admitted(t, cb, "b")
			if !rs.admitted(t, cb, "b again").DidResume {
				t.Fatal("b's second connection did not resume")
			}
			rs.refusedWith(t, cc, "c, expired", expired)

			// The limits on other keys, the bad members elsewhere.
			keydirtest.Write(t, set, keydirtest.JWK(t,
				bad("from", "not a network"),
				bad("use", "enc"),
				limit(c, "from", "10.0.0.0/8"),
				limit(b, "from", "192.168.0.0/16"),
				bad("expires", "tomorrow"),
				limit(a, "comment", "a"),
			))
			srv.auth.Reload()
			rs.refusedWith(t, cb, "b resuming, now limited to 192.168.0.0/16", wrongNetwork)
			rs.refusedWith(t, cc, "c, no longer expired but limited to 10.0.0.0/8", wrongNetwork)
			rs.admitted(t, ca, "a, no longer limited")
		})
	}
}

// A client key listed limited in a.json, whose "expires" has a typo, and
// plain in b.json is refused in the handshake, not admitted by b.json from
// anywhere: the skipped entry may be the one in effect (the first wins).
// Its refusal reads as the server's trouble (ReasonUnavailable), and once
// the entry is fixed, its limit decides.
func TestSkippedEntryRefusedInTheHandshake(t *testing.T) {
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	rs := startRecording(t, mustServer(t, srv, ServerOptions{}))
	dir := filepath.Join(srv.dir, "authorized_keys.d")
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, keydirtest.WithAttrs(cli.id.Key, "from", "127.0.0.0/8", "expires", "tomorrow")))
	keydirtest.Write(t, filepath.Join(dir, "b.json"), keydirtest.JWK(t, cli.id.Key.PublicKey()))
	srv.auth.Reload()
	cli.pin(t, rs.addr(), srv.id.Key)
	cfg := mustConfig(t, cli.client(t, ClientOptions{}), rs.addr())
	rs.refusedWith(t, cfg, "a key with a skipped entry", func(err error) bool {
		return isA[*authkeys.SkippedEntryError](err) && ReasonOf(err) == ReasonUnavailable
	})
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, keydirtest.WithAttrs(cli.id.Key, "from", "10.0.0.0/8")))
	srv.auth.Reload()
	rs.refusedWith(t, cfg, "the entry fixed, limited to 10.0.0.0/8", isA[*authkeys.SourceNotAllowedError])
}
