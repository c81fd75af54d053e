// Command grpc shows a gRPC server and client wrapped with keytool: the
// server admits the clients in its authorized_keys.d, the client pins the
// server's key. It serves gRPC's standard health service, so that no
// generated code is needed. LiveCreds puts each connection under live
// revocation: a client whose key is removed, revoked or expires while
// connected has its transport, and every call on it, closed within a
// second. It lives in its own module so that gRPC is not a dependency of
// keytool itself.
//
//	go run . -server-home /tmp/srv -client-home /tmp/cli
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"sync"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

func main() {
	serverHome := flag.String("server-home", "", "keytool home of the server (must authorize the client)")
	clientHome := flag.String("client-home", "", "keytool home of the client (must pin the server for -addr)")
	addr := flag.String("addr", "127.0.0.1:0", "address for the server")
	flag.Parse()
	status, err := run(context.Background(), *serverHome, *clientHome, *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(status)
}

// run starts the server, calls it once as the client, and stops it.
func run(ctx context.Context, serverHome, clientHome, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv, err := newServer(ctx, serverHome)
	if err != nil {
		return "", err
	}
	// Added for keytool: the handshake budget — a client may send 64 KiB
	// before it is admitted, where crypto/tls alone would buffer a
	// certificate chain of 256 KiB from anyone.
	go func() { _ = srv.Serve(tlsbridge.BudgetListener(ln)) }()
	defer srv.Stop()
	return callHealth(ctx, clientHome, ln.Addr().String())
}

// newServer is a gRPC server whose transport is keytool's mutual TLS,
// under live revocation until ctx ends.
func newServer(ctx context.Context, home string) (*grpc.Server, error) {
	// Added for keytool: the identity, the watched authorized keys, the
	// checking server — and credentials.NewTLS of its config.
	id, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{})
	if err != nil {
		return nil, err
	}
	clients := authkeys.Open(ctx, authkeys.HomeOptions(home))
	ks, err := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: clients})
	if err != nil {
		return nil, err
	}
	// Live revocation: the transport of a client whose key stops being
	// admitted is closed within a second, ending all of its calls.
	live := ks.Live(tlsbridge.LiveOptions{Changes: clients})
	context.AfterFunc(ctx, func() { live.Close() })
	s := grpc.NewServer(grpc.Creds(LiveCreds(credentials.NewTLS(ks.TLSConfig()), live)))
	healthpb.RegisterHealthServer(s, health.NewServer())
	return s, nil
}

// LiveCreds wraps a server's TLS transport credentials so that each
// connection, once its handshake is done, is under live revocation: live
// closes it when its client key stops being admitted.
func LiveCreds(creds credentials.TransportCredentials, live *tlsbridge.LiveConns) credentials.TransportCredentials {
	return &liveCreds{TransportCredentials: creds, live: live}
}

type liveCreds struct {
	credentials.TransportCredentials
	live *tlsbridge.LiveConns
}

func (c *liveCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nil, nil, err
	}
	tlsInfo, ok := info.(credentials.TLSInfo)
	if !ok {
		return conn, info, nil
	}
	return &trackedConn{Conn: conn, untrack: c.live.Track(conn, tlsInfo.State)}, info, nil
}

func (c *liveCreds) Clone() credentials.TransportCredentials {
	return &liveCreds{TransportCredentials: c.TransportCredentials.Clone(), live: c.live}
}

// trackedConn stops live revocation of its connection when gRPC closes it.
type trackedConn struct {
	net.Conn
	once    sync.Once
	untrack func()
}

func (c *trackedConn) Close() error {
	c.once.Do(c.untrack)
	return c.Conn.Close()
}

// callHealth calls the health service as the client of clientHome.
func callHealth(ctx context.Context, home, addr string) (string, error) {
	// Added for keytool: the identity, the pinned host keys, the checking
	// client — and credentials.NewTLS of its config for addr.
	id, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{})
	if err != nil {
		return "", err
	}
	hosts := knownhosts.Load(knownhosts.HomeOptions(home))
	kc, err := tlsbridge.NewClient(id, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Strict})
	if err != nil {
		return "", err
	}
	cfg, err := kc.TLSConfig(addr)
	if err != nil {
		return "", err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var p peer.Peer
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("health: %s (server %s)", resp.GetStatus(), p.Addr), nil
}
