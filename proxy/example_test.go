package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/proxy"
	"github.com/keytool/keytool/tlsbridge"
)

// identity makes a throwaway identity; a program loads its own with
// tlsbridge.LoadHomeIdentity.
func identity() *tlsbridge.Identity {
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		log.Fatal(err)
	}
	id, err := tlsbridge.NewIdentity(k, tlsbridge.CertOptions{IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		log.Fatal(err)
	}
	return id
}

// echo is a plain TCP server that knows nothing of TLS: the target.
func echo() net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln
}

// Server mode in front of a plain TCP server: a client whose key is in
// the server's authorized_keys.d reaches the target through the proxy,
// and Shutdown drains.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serverHome, _ := os.MkdirTemp("", "proxy-example")
	clientHome, _ := os.MkdirTemp("", "proxy-example")
	defer os.RemoveAll(serverHome)
	defer os.RemoveAll(clientHome)
	serverID, clientID := identity(), identity()
	target := echo()
	defer target.Close()

	// The proxy: its identity, the watched authorized keys, the target.
	clients := authkeys.Open(ctx, authkeys.HomeOptions(serverHome))
	tlsSrv, err := tlsbridge.NewServer(serverID, tlsbridge.ServerOptions{Clients: clients})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := proxy.NewServer(proxy.ServerOptions{TLS: tlsSrv, Target: target.Addr().String()})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()

	// The exchange of public keys: the server authorizes the client's
	// key, the client pins the server's for the proxy's address.
	if _, err := clients.Add(clientID.Key.PublicKey(), "alice", authkeys.AddNew); err != nil {
		log.Fatal(err)
	}
	hosts := knownhosts.Open(ctx, knownhosts.HomeOptions(clientHome))
	if _, err := hosts.Add(ln.Addr().String(), serverID.Key.PublicKey()); err != nil {
		log.Fatal(err)
	}

	// A client: mutual TLS to the proxy, plain bytes to the target.
	tlsCli, err := tlsbridge.NewClient(clientID, tlsbridge.ClientOptions{Hosts: hosts})
	if err != nil {
		log.Fatal(err)
	}
	conn, err := tlsCli.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprint(conn, "hello through the proxy")
	_ = conn.CloseWrite() // the target sees the end of the stream, and still answers
	reply, err := io.ReadAll(conn)
	conn.Close()
	fmt.Printf("%s (%v)\n", reply, err)

	// SIGTERM, say: stop accepting, let the open connections finish.
	dctx, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	fmt.Println("shutdown:", srv.Shutdown(dctx))
	fmt.Println("serve:", <-served)
	// Output:
	// hello through the proxy (<nil>)
	// shutdown: <nil>
	// serve: proxy: closed
}
