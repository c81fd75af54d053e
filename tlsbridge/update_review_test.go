package tlsbridge

import (
	"net"
	"testing"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// A key pinned without an address does not bind its holder to an address:
// its announcements are not learned (an address-bound pin of the next key
// would also make the current key, admitted only by its certificate's
// name, a changed key at that address on the next connection).
func TestUpdateHostKeysIgnoresKeyPinnedWithoutAddress(t *testing.T) {
	next := mustGenerate(t, jwk.EC256)
	srv := newHome(t, jwk.EC256)
	id, err := NewIdentity(srv.id.Key, CertOptions{DNSNames: []string{"localhost"}, Next: []*jwk.Key{next}})
	if err != nil {
		t.Fatal(err)
	}
	srv.id = id
	cli := newHome(t, jwk.EC256)
	srv.authorize(t, "client", cli.id.Key)
	ts := startServer(t, srv, ServerOptions{})
	cli.pinWithoutAddress(t, "server.json", srv.id.Key)
	_, port, _ := net.SplitHostPort(ts.addr())
	named := net.JoinHostPort("localhost", port)
	for i := range 2 {
		if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{UpdateHostKeys: UpdateYes}), named)); err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
	}
	cli.host.Reload()
	if d := cli.host.Decide(named, next.SPKIHash()); d.Verdict != knownhosts.Unknown {
		t.Errorf("the next key announced by a host pinned without an address: %v", d.Verdict)
	}
}

// A key learned from an announcement is pinned for no more purposes than
// the pin that admitted the announcing key: a host pinned for one purpose
// must not gain the others by announcing a key.
func TestUpdateHostKeysKeepsPurpose(t *testing.T) {
	for _, clientPurpose := range []string{"ldap", ""} {
		next := mustGenerate(t, jwk.EC256)
		srv, ts := announcingServer(t, next)
		cli := newHome(t, jwk.EC256)
		srv.authorize(t, "client", cli.id.Key)
		pinFor(t, cli, ts.addr(), srv.id.Key, "ldap")
		if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Purpose: clientPurpose, UpdateHostKeys: UpdateYes}), ts.addr())); err != nil {
			t.Fatalf("client purpose %q: %v", clientPurpose, err)
		}
		cli.host.Reload()
		if d := cli.host.DecidePurpose(ts.addr(), "ldap", next.SPKIHash()); d.Verdict != knownhosts.Pinned {
			t.Errorf("client purpose %q: the next key for ldap: %v", clientPurpose, d.Verdict)
		}
		if d := cli.host.DecidePurpose(ts.addr(), "pool", next.SPKIHash()); d.Verdict == knownhosts.Pinned {
			t.Errorf("client purpose %q: the next key of a host pinned for ldap only is pinned for pool", clientPurpose)
		}
	}
}
