package tlsbridge_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
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
	if err := jwk.WritePrivateKeyFile(filepath.Join(home, "key.json"), k, jwk.JWK, jwk.CreateNew); err != nil {
		log.Fatal(err)
	}
	id, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{DNSNames: []string{"localhost"}})
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
	clients := authkeys.Open(ctx, authkeys.HomeOptions(serverHome))
	defer clients.Close()
	srv, err := tlsbridge.NewServer(serverID, tlsbridge.ServerOptions{Clients: clients})
	if err != nil {
		log.Fatal(err)
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello, %s\n", tlsbridge.PeerFromContext(r.Context()).Name())
	})
	ts := httptest.NewUnstartedServer(srv.RequireAuthenticated(hello))
	ts.TLS = srv.TLSConfig()
	ts.Config.ConnContext = tlsbridge.ConnContext // "from" networks: the connection's address
	ts.StartTLS()
	defer ts.Close()

	// The exchange of public keys: what `keytool authorize` and
	// `keytool trust-host --key` do.
	if _, err := clients.Add(clientID.Key.PublicKey(), "alice", authkeys.AddNew); err != nil {
		log.Fatal(err)
	}
	hosts := knownhosts.Open(ctx, knownhosts.HomeOptions(clientHome))
	defer hosts.Close()
	if _, err := hosts.Add(ts.Listener.Addr().String(), serverID.Key.PublicKey()); err != nil {
		log.Fatal(err)
	}

	// Client side: an http.Client that pins the server's key.
	cli, err := tlsbridge.NewClient(clientID, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Strict})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := (&http.Client{Transport: cli.Transport()}).Get(ts.URL)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(body))
	// Output: hello, alice
}

// Per-key CA bundles for software that only verifies chains.
func ExampleCABundle() {
	k, err := jwk.Generate(jwk.Ed25519)
	if err != nil {
		log.Fatal(err)
	}
	bundle, err := tlsbridge.CABundle([]*jwk.Key{k})
	if err != nil {
		log.Fatal(err)
	}
	// One CA certificate per key, in PEM.
	for rest := bundle; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(block.Type, "CA:", c.IsCA)
	}
	// Output: CERTIFICATE CA: true
}
