package tlsbridge

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
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
		client := cli.client(t, ClientOptions{UpdateHostKeys: UpdateYes})
		cs, err := roundTrip(ts.addr(), mustConfig(t, client, named))
		if err == nil {
			client.LearnAnnounced(named, cs)
		}
		if err != nil {
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
// must not gain the others by announcing a key. A client without a
// purpose is not admitted by the pin for ldap at all (docs/design.md,
// "Purposes"), so it learns nothing either.
func TestUpdateHostKeysKeepsPurpose(t *testing.T) {
	for _, clientPurpose := range []string{"ldap", ""} {
		next := mustGenerate(t, jwk.EC256)
		srv, ts := announcingServer(t, next)
		cli := newHome(t, jwk.EC256)
		srv.authorize(t, "client", cli.id.Key)
		pinFor(t, cli, ts.addr(), srv.id.Key, "ldap")
		err := learnTrip(t, cli.client(t, ClientOptions{Purpose: clientPurpose, UpdateHostKeys: UpdateYes}), ts.addr())
		var only *knownhosts.PurposesOnlyError
		if clientPurpose == "" {
			if !errors.As(err, &only) {
				t.Fatalf("client without a purpose, host pinned for ldap only: %v, want *knownhosts.PurposesOnlyError", err)
			}
			cli.host.Reload()
			if d := cli.host.DecidePurpose(ts.addr(), "ldap", next.SPKIHash()); d.Verdict == knownhosts.Pinned {
				t.Errorf("a refused connection learned the next key: %v", d.Verdict)
			}
			continue
		}
		if err != nil {
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

// A client of a purpose pins a host's announced key once: at the next
// handshakes the key is pinned for that purpose, and nothing is written or
// said again. The announced keys already pinned were told by a decision
// without a purpose, which a pin for some purposes no longer admits
// (docs/design.md, "Purposes"): every handshake wrote (a lock, a file
// looked at) and logged the pin again.
func TestUpdateHostKeysForAPurposeOnce(t *testing.T) {
	next := mustGenerate(t, jwk.EC256)
	srv, ts := announcingServer(t, next)
	cli := newHome(t, jwk.EC256)
	srv.authorize(t, "client", cli.id.Key)
	pinFor(t, cli, ts.addr(), srv.id.Key, "ldap")
	var logs bytes.Buffer
	client := cli.client(t, ClientOptions{Purpose: "ldap", UpdateHostKeys: UpdateYes, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for range 3 {
		if err := learnTrip(t, client, ts.addr()); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "pinned the next key a host announces"); n != 1 {
		t.Errorf("the next key pinned %d times in 3 handshakes, want once:\n%s", n, logs.String())
	}
}

// An announcement is learned only from a host that proved it holds the
// pinned key: the certificate alone (public, replayable, perhaps old,
// announcing a next key since abandoned) is not enough. VerifyConnection
// runs before the server's signature of the handshake is checked, so a
// server presenting the pinned host's certificate without its private key
// must fail the handshake and leave no pin behind.
func TestUpdateHostKeysNeedsTheHandshake(t *testing.T) {
	next := mustGenerate(t, jwk.EC256)
	srv := newHome(t, jwk.EC256)
	id, err := NewIdentity(srv.id.Key, CertOptions{Next: []*jwk.Key{next}})
	if err != nil {
		t.Fatal(err)
	}
	impostor := mustGenerate(t, jwk.EC256) // holds the certificate, not its key
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: id.Certificate.Certificate, PrivateKey: impostor.Signer()}},
		ClientAuth:   tls.RequestClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	addr := ln.Addr().String()
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		cli := newHome(t, jwk.EC256)
		cli.pin(t, addr, srv.id.Key)
		client := cli.client(t, ClientOptions{UpdateHostKeys: UpdateYes})
		cfg := mustConfig(t, client, addr)
		cfg.MaxVersion = version
		conn, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			conn.Close()
			t.Fatalf("version %x: a server without the pinned key completed the handshake", version)
		}
		if _, err := client.DialContext(context.Background(), "tcp", addr); err == nil {
			t.Fatalf("version %x: DialContext: a server without the pinned key completed the handshake", version)
		}
		cli.host.Reload()
		if d := cli.host.Decide(addr, next.SPKIHash()); d.Verdict == knownhosts.Pinned {
			t.Errorf("version %x: the key announced by a server that did not prove the pinned key: %v", version, d.Verdict)
		}
	}
}

// An announced key is pinned for the address dialled, and for no other:
// not for the other addresses its announcer's key is pinned at (one of
// them through a wildcard), nor for the name sent in SNI. A host can only
// add a key where its own key was just verified, so it cannot get a key
// trusted at another host's name. (Review of the client's host-key
// decision, docs/security.md: it held.)
func TestUpdateHostKeysOnlyForTheDialledAddress(t *testing.T) {
	next := mustGenerate(t, jwk.EC256)
	srv, ts := announcingServer(t, next)
	cli := newHome(t, jwk.EC256)
	srv.authorize(t, "client", cli.id.Key)
	cli.pin(t, ts.addr(), srv.id.Key)
	cli.pin(t, "other.example:443", srv.id.Key)
	cli.pin(t, "*.fleet.example", srv.id.Key)
	client := cli.client(t, ClientOptions{UpdateHostKeys: UpdateYes})
	cfg := &tls.Config{ServerName: "bank.example"}
	if err := client.Configure(cfg, ts.addr()); err != nil {
		t.Fatal(err)
	}
	cs, err := roundTrip(ts.addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	client.LearnAnnounced(ts.addr(), cs)
	cli.host.Reload()
	if d := cli.host.Decide(ts.addr(), next.SPKIHash()); d.Verdict != knownhosts.Pinned {
		t.Fatalf("the next key at the address dialled: %v, want pinned", d.Verdict)
	}
	for addr, want := range map[string]knownhosts.Verdict{
		"other.example:443":  knownhosts.Changed, // pinned there to the announcer's key only
		"a.fleet.example:22": knownhosts.Unknown,
		"bank.example:443":   knownhosts.Unknown,
	} {
		if d := cli.host.Decide(addr, next.SPKIHash()); d.Verdict != want {
			t.Errorf("the next key at %s: %v, want %v", addr, d.Verdict, want)
		}
	}
	for _, e := range cli.host.Entries() {
		if e.SPKIHash == next.SPKIHash() && (len(e.Addresses) != 1 || e.Addresses[0] != ts.addr()) {
			t.Errorf("the next key is pinned for %v in %s, want %s only", e.Addresses, e.File, ts.addr())
		}
	}
}
