package tlsbridge

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// A client dialling an IP address in PKI mode verifies that the server's
// certificate names that address: crypto/tls sends no SNI for an IP
// literal, so the connection state's ServerName is empty there, and a
// check against it would admit any certificate the CA issued, for any
// host.
func TestPKIClientChecksTheDialledIP(t *testing.T) {
	ca := newCA(t)
	cli := newHome(t, jwk.EC256)
	srv := newHome(t, jwk.EC256)
	srv.id = ca.issueFor(t, srv.id.Key, []string{"server.example"}, nil) // names another host only
	srv.authorize(t, "client", cli.id.Key)
	ts := startServer(t, srv, ServerOptions{})
	pki := ca.pki(t)

	_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{PKI: pki}), ts.addr()))
	var refused *CARefusedError
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("a CA certificate for server.example, dialled at %s: err = %v, want *CARefusedError naming 127.0.0.1", ts.addr(), err)
	}
	if files := pinFiles(t, cli); len(files) != 0 {
		t.Errorf("pinned %v", files)
	}

	// A certificate that names the address is admitted.
	srv.id = ca.issueFor(t, srv.id.Key, []string{"server.example"}, []net.IP{net.ParseIP("127.0.0.1")})
	ts = startServer(t, srv, ServerOptions{})
	if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{PKI: pki}), ts.addr())); err != nil {
		t.Fatalf("a CA certificate naming 127.0.0.1: %v", err)
	}
}
