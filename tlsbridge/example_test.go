package tlsbridge_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// mustHome makes a throwaway home with a new identity.
func mustHome() (string, *tlsbridge.Identity) {
	home, err := os.MkdirTemp("", "keytool-example")
	if err != nil {
		log.Fatal(err)
	}
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		log.Fatal(err)
	}
	if err := jwk.WritePrivateFile(filepath.Join(home, "key.json"), k, jwk.JWK, false); err != nil {
		log.Fatal(err)
	}
	id, err := tlsbridge.LoadIdentity(filepath.Join(home, "key.json"), "", tlsbridge.CertOptions{DNSNames: []string{"localhost"}})
	if err != nil {
		log.Fatal(err)
	}
	return home, id
}

// An HTTP server that admits the clients in its authorized_keys.d, and a
// client that trusts the server's key for the address it dials.
func Example() {
	ctx := context.Background()
	serverHome, serverID := mustHome()
	clientHome, clientID := mustHome()
	defer os.RemoveAll(serverHome)
	defer os.RemoveAll(clientHome)

	// Server side: watch the authorized keys; admit and greet by name.
	clients, _ := authkeys.Open(ctx, authkeys.HomeOptions(serverHome))
	defer clients.Close()
	srv, _ := tlsbridge.NewServer(serverID, tlsbridge.ServerOptions{Clients: clients})
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", tlsbridge.PeerFromContext(r.Context()).Name())
	})
	ts := httptest.NewUnstartedServer(srv.RequireAuthenticated(hello))
	ts.TLS = srv.TLSConfig()
	ts.StartTLS()
	defer ts.Close()

	// The exchange of public keys: what `keytool authorize` and
	// `keytool trust-host --key` do.
	_, _ = clients.Add(clientID.Key.PublicKey(), "alice", false)
	hosts, _ := knownhosts.Open(ctx, knownhosts.HomeOptions(clientHome))
	defer hosts.Close()
	_, _ = hosts.Add(ts.Listener.Addr().String(), serverID.Key.PublicKey())

	// Client side: an http.Client that pins the server's key.
	cli, _ := tlsbridge.NewClient(clientID, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Strict})
	resp, err := (&http.Client{Transport: cli.Transport()}).Get(ts.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: hello, alice
}

// Per-key CA bundles for software that only verifies chains.
func ExampleCABundle() {
	k, _ := jwk.Generate(jwk.Ed25519)
	bundle, _ := tlsbridge.CABundle([]*jwk.Key{k})
	fmt.Println(len(bundle) > 0)
	// Output: true
}
