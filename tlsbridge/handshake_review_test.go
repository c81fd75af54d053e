package tlsbridge

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

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

// Configure keeps a stricter policy the caller set — TLS 1.3 only, fewer
// TLS 1.2 suites — instead of resetting it to keytool's minimum: a
// server (or client) that asked for TLS 1.3 must not silently accept
// TLS 1.2.
func TestConfigureKeepsAStricterPolicy(t *testing.T) {
	srvHome, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srvHome.authorize(t, "c", cli.id.Key)
	srv := mustServer(t, srvHome, ServerOptions{})
	suites := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
	for _, side := range []string{"server", "client"} {
		cfg := &tls.Config{MinVersion: tls.VersionTLS13, CipherSuites: suites}
		var err error
		if side == "server" {
			err = srv.Configure(cfg)
		} else {
			err = cli.client(t, ClientOptions{}).Configure(cfg, "127.0.0.1:1")
		}
		if err != nil {
			t.Fatalf("%s: %v", side, err)
		}
		if cfg.MinVersion != tls.VersionTLS13 || !slices.Equal(cfg.CipherSuites, suites) {
			t.Errorf("%s: Configure replaced the caller's policy: MinVersion %s, suites %v", side, tls.VersionName(cfg.MinVersion), cfg.CipherSuites)
		}
	}

	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if err := srv.Configure(cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	serveEach(t, ln, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if c.(*tls.Conn).Handshake() == nil {
			_, _ = io.WriteString(c, "ok\n")
		}
	})
	addr := ln.Addr().String()
	cli.pin(t, addr, srvHome.id.Key)
	old := mustConfig(t, cli.client(t, ClientOptions{}), addr)
	old.MaxVersion = tls.VersionTLS12
	if _, err := roundTrip(addr, old); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("a TLS 1.2 client of a server configured for TLS 1.3: err = %v, want a protocol version alert", err)
	}
	if cs, err := roundTrip(addr, mustConfig(t, cli.client(t, ClientOptions{}), addr)); err != nil || cs.Version != tls.VersionTLS13 {
		t.Errorf("a TLS 1.3 client: %s, %v", tls.VersionName(cs.Version), err)
	}
}
