package tlsbridge

import (
	"errors"
	"net"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// The address a client connects to is an address, never a pattern of
// pins: a first contact with "*:PORT" or "*.example:PORT" — a redirect's
// Location an HTTP client follows, a name a resolver answers (getaddrinfo
// asks DNS for "*.example", which a wildcard record or whoever answers on
// the path resolves) — would pin the key shown for every host the pattern
// matches, and a wildcard pin of the presented key admits it over the
// exact pins of every such host. Refused as an *AddressError before
// anything is dialled or pinned; the pins of hosts already pinned still
// decide.
func TestClientAddressIsNoPattern(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	legit, ts := serverFor(t, cli)
	_, port, _ := net.SplitHostPort(ts.addr())
	cli.pin(t, ts.addr(), legit.id.Key)
	mitm := newHome(t, jwk.EC256)
	mitm.authorize(t, "client", cli.id.Key)
	evil := startServer(t, mitm, ServerOptions{})

	for _, pattern := range []string{"*:" + port, "127.0.0.?:" + port, "[*]:" + port, "!127.0.0.1:" + port} {
		c := cli.client(t, ClientOptions{Policy: AcceptNew})
		cfg, err := c.TLSConfig(pattern)
		var ae *AddressError
		if err == nil {
			// What a caller dialling one address under another's name
			// (or a resolver that answered for the pattern) does.
			_, err = roundTrip(evil.addr(), cfg)
			if err == nil {
				t.Errorf("%s: connected to another key under AcceptNew", pattern)
			}
		} else if !errors.As(err, &ae) || ae.Addr != pattern {
			t.Errorf("TLSConfig(%q): %v, want *AddressError naming it", pattern, err)
		}
		if conn, err := c.DialContext(t.Context(), "tcp", pattern); conn != nil || !errors.As(err, &ae) {
			if conn != nil {
				conn.Close()
			}
			t.Errorf("DialContext(%q): %v, want *AddressError", pattern, err)
		}
	}
	// The pin's file, and the lock file of the directory's writers that
	// adding it took (docs/design.md, "Concurrent writers").
	if files, _ := filepath.Glob(filepath.Join(cli.dir, "trusted_hosts.d", "[!.]*")); len(files) != 1 {
		t.Errorf("trusted_hosts.d holds %v, want only the legitimate host's pin", files)
	}
	// The host pinned before is still decided by its pin: the other key
	// at its address is a changed key.
	_, err := roundTrip(evil.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: AcceptNew}), ts.addr()))
	var changed *knownhosts.KeyChangedError
	if !errors.As(err, &changed) {
		t.Errorf("the pinned address presenting the other key: %v, want *knownhosts.KeyChangedError", err)
	}
}
