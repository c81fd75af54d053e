package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// lockedBuffer is a log destination read while the server writes it.
type lockedBuffer = testlog.Buffer

// watch opens a health Watch stream (a call that never ends on its own)
// as the client of home; ended receives its error when it ends.
func watch(ctx context.Context, t *testing.T, home, addr string) (conn *grpc.ClientConn, ended chan error) {
	t.Helper()
	id, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := tlsbridge.NewClient(id, tlsbridge.ClientOptions{Hosts: knownhosts.Load(knownhosts.HomeOptions(home)), Policy: tlsbridge.Strict})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := kc.TLSConfig(addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("watch: %v, %v", resp, err)
	}
	ended = make(chan error, 1)
	go func() {
		for {
			if _, err := stream.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	return conn, ended
}

// TestGRPCLiveRevocation: revoking a client key while its Watch call is
// open ends the call within a second (LiveCreds closes its transport),
// logged; another client's call on its own connection goes on.
func TestGRPCLiveRevocation(t *testing.T) {
	logs := &lockedBuffer{}
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	defer slog.SetDefault(prev)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	serverHome, serverKey := newHome(t)
	aliceHome, aliceKey := newHome(t)
	bobHome, bobKey := newHome(t)
	auth := authkeys.Load(authkeys.HomeOptions(serverHome))
	for name, k := range map[string]*jwk.Key{"alice": aliceKey, "bob": bobKey} {
		if _, err := auth.Add(k, name, authkeys.AddNew); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	for _, h := range []string{aliceHome, bobHome} {
		if _, err := knownhosts.Load(knownhosts.HomeOptions(h)).Add(addr, serverKey); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := newServer(ctx, serverHome)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	_, aliceEnded := watch(ctx, t, aliceHome, addr)
	bobConn, bobEnded := watch(ctx, t, bobHome, addr)

	if _, err := auth.Revoke(aliceKey); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	select {
	case err := <-aliceEnded:
		if took := time.Since(at); took > 1500*time.Millisecond {
			t.Errorf("alice's call ended %v after the revocation, want < 1.5s", took)
		} else {
			t.Logf("alice's call ended %v after the revocation: %v", took, err)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("alice's call is still open 4s after the revocation")
	}
	want := `msg="closing: key no longer admitted" remote=127.0.0.1:`
	for deadline := time.Now().Add(3 * time.Second); !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), aliceKey.Fingerprint()); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no line %q naming alice's key in:\n%s", want, logs)
		}
	}
	// Bob's call is untouched after a sweep, and his connection serves.
	time.Sleep(1200 * time.Millisecond)
	select {
	case err := <-bobEnded:
		t.Fatalf("bob's call ended: %v", err)
	default:
	}
	if resp, err := healthpb.NewHealthClient(bobConn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("bob's check: %v, %v", resp, err)
	}
	select {
	case err := <-bobEnded:
		t.Fatalf("bob's call ended: %v", err)
	default:
	}
	if n := strings.Count(logs.String(), "closing: key no longer admitted"); n != 1 {
		t.Errorf("%d connections closed, want alice's:\n%s", n, logs)
	}
}
