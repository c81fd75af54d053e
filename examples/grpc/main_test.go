package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// newHome writes an identity into a fresh home and returns its public key.
func newHome(t *testing.T) (string, *jwk.Key) {
	t.Helper()
	home := t.TempDir()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePrivateFile(filepath.Join(home, "key.json"), k, jwk.JWK, false); err != nil {
		t.Fatal(err)
	}
	return home, k.PublicKey()
}

// TestGRPC runs the example: an authorized client gets the health status
// over keytool's mutual TLS, and a client whose key is not authorized is
// refused.
func TestGRPC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	serverHome, serverKey := newHome(t)
	clientHome, clientKey := newHome(t)
	strangerHome, _ := newHome(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // run listens on it again; the port stays free meanwhile on loopback

	auth, _ := authkeys.Load(authkeys.HomeOptions(serverHome))
	if _, err := auth.Add(clientKey, "grpc-client", false); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{clientHome, strangerHome} {
		hosts, _ := knownhosts.Load(knownhosts.HomeOptions(h))
		if _, err := hosts.Add(addr, serverKey); err != nil {
			t.Fatal(err)
		}
	}

	status, err := run(ctx, serverHome, clientHome, addr)
	if err != nil || !strings.HasPrefix(status, "health: SERVING") {
		t.Fatalf("authorized client: %q, %v", status, err)
	}
	if status, err := run(ctx, serverHome, strangerHome, addr); err == nil {
		t.Fatalf("unauthorized client got %q", status)
	} else {
		t.Logf("unauthorized client refused: %v", err)
	}
}
