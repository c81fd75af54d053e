package tlsbridge

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
)

// A VerifyConnection the caller assigns to the server's configuration
// after TLSConfig or Configure runs in every handshake, after keytool's.
// Before, each handshake ran on a copy made by keytool's
// GetConfigForClient hook, whose VerifyConnection called only the one
// found when the configuration was made: the caller's check (here,
// refusing one authorized client) was skipped without a word and that
// client admitted. One that calls the VerifyConnection keytool leaves on
// the configuration (a wrapper of the previous value) refuses every
// handshake, saying why, rather than being skipped.
func TestServerVerifyConnectionSetAfter(t *testing.T) {
	srvHome, alice, bob := newHome(t, jwk.EC256), newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srvHome.authorize(t, "alice", alice.id.Key)
	srvHome.authorize(t, "bob", bob.id.Key)
	srv := mustServer(t, srvHome, ServerOptions{})
	bobsKey := bob.id.Certificate.Leaf.Raw
	errNotBob := errors.New("the application refuses bob")
	notBob := func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) > 0 && string(cs.PeerCertificates[0].Raw) == string(bobsKey) {
			return errNotBob
		}
		return nil
	}
	serve := func(cfg *tls.Config) (string, chan error) {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
		if err != nil {
			t.Fatal(err)
		}
		last := make(chan error, 8)
		testnet.ServeEach(t, ln, func(c net.Conn) {
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			err := c.(*tls.Conn).Handshake()
			last <- err
			if err == nil {
				_, _ = io.WriteString(c, "ok\n")
			}
		})
		addr := ln.Addr().String()
		alice.pin(t, addr, srvHome.id.Key)
		bob.pin(t, addr, srvHome.id.Key)
		return addr, last
	}
	fromTLSConfig := srv.TLSConfig()
	fromTLSConfig.VerifyConnection = notBob
	configured := &tls.Config{}
	if err := srv.Configure(configured); err != nil {
		t.Fatal(err)
	}
	configured.VerifyConnection = notBob
	for name, cfg := range map[string]*tls.Config{"TLSConfig": fromTLSConfig, "Configure": configured} {
		addr, last := serve(cfg)
		if _, err := roundTrip(addr, mustConfig(t, alice.client(t, ClientOptions{}), addr)); err != nil {
			t.Errorf("%s: alice: %v", name, err)
		}
		<-last
		if _, err := roundTrip(addr, mustConfig(t, bob.client(t, ClientOptions{}), addr)); err == nil {
			t.Errorf("%s: bob admitted: the VerifyConnection set after did not run", name)
		} else if got := <-last; !errors.Is(got, errNotBob) {
			t.Errorf("%s: bob refused with %v, want the application's error", name, got)
		}
	}

	wrapped := srv.TLSConfig()
	keytools := wrapped.VerifyConnection
	wrapped.VerifyConnection = func(cs tls.ConnectionState) error {
		if err := keytools(cs); err != nil {
			return err
		}
		return notBob(cs)
	}
	addr, last := serve(wrapped)
	if _, err := roundTrip(addr, mustConfig(t, alice.client(t, ClientOptions{}), addr)); err == nil {
		t.Error("wrapping keytool's VerifyConnection: alice admitted")
	} else if got := <-last; got == nil || !strings.Contains(got.Error(), "called the VerifyConnection") {
		t.Errorf("wrapping keytool's VerifyConnection: refused with %v, want the reason", got)
	}
}
