package tlsbridge

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// recordingServer accepts TLS connections with srv's configuration and
// reports the server side's handshake error of each (nil: admitted), so
// that a refusal is asserted by its typed error, not only by the alert the
// client sees.
type recordingServer struct {
	ln   net.Listener
	errs chan error
}

func startRecording(t *testing.T, srv *Server) *recordingServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	rs := &recordingServer{ln: ln, errs: make(chan error, 64)}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				err := c.(*tls.Conn).Handshake()
				rs.errs <- err
				if err == nil {
					_, _ = io.WriteString(c, "ok\n")
				}
			}()
		}
	}()
	return rs
}

func (rs *recordingServer) addr() string { return rs.ln.Addr().String() }

// refusedWith connects with cfg and asserts that the client sees the
// server's bad_certificate alert and that the server refused with an
// error that check accepts.
func (rs *recordingServer) refusedWith(t *testing.T, cfg *tls.Config, what string, check func(error) bool) {
	t.Helper()
	rs.refusedWithAlert(t, cfg, what, "remote error: tls: bad certificate", check)
}

// refusedWithAlert is refusedWith for a refusal the client sees as alert.
func (rs *recordingServer) refusedWithAlert(t *testing.T, cfg *tls.Config, what, alert string, check func(error) bool) {
	t.Helper()
	_, cerr := roundTrip(rs.addr(), cfg)
	var serr error
	select {
	case serr = <-rs.errs:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the server reported no handshake", what)
	}
	if cerr == nil || serr == nil {
		t.Fatalf("%s: admitted (client err %v, server err %v)", what, cerr, serr)
	}
	if !check(serr) {
		t.Errorf("%s: server refused with %T %q; not the expected error", what, serr, serr)
	}
	if !strings.Contains(cerr.Error(), alert) {
		t.Errorf("%s: client saw %v; want %q", what, cerr, alert)
	}
}

func (rs *recordingServer) admitted(t *testing.T, cfg *tls.Config, what string) tls.ConnectionState {
	t.Helper()
	cs, err := roundTrip(rs.addr(), cfg)
	if err != nil {
		t.Fatalf("%s: refused: %v", what, err)
	}
	if serr := <-rs.errs; serr != nil {
		t.Fatalf("%s: server error %v", what, serr)
	}
	return cs
}

func isA[E error](err error) bool {
	var e E
	return errors.As(err, &e)
}

// Every refusal of TestServerRefuses and TestRemovedKeyCannotResume,
// asserted on the server side by its typed error.
func TestServerRefusalsAreTyped(t *testing.T) {
	srv := newHome(t, jwk.EC256)
	rs := startRecording(t, mustServer(t, srv, ServerOptions{}))
	newClient := func() *home {
		c := newHome(t, jwk.EC256)
		c.pin(t, rs.addr(), srv.id.Key)
		return c
	}

	stranger := newClient()
	rs.refusedWith(t, mustConfig(t, stranger.client(t, ClientOptions{}), rs.addr()), "unknown key", isA[*authkeys.NotAuthorizedError])

	revoked := newClient()
	srv.authorize(t, "revoked", revoked.id.Key)
	srv.revoke(t, revoked.id.Key)
	rs.refusedWith(t, mustConfig(t, revoked.client(t, ClientOptions{}), rs.addr()), "revoked key", func(err error) bool {
		var re *authkeys.RevokedError
		return errors.As(err, &re) && re.Err == nil && strings.HasSuffix(re.File, "bad.json")
	})

	expired := newClient()
	k := expired.id.Key.PublicKey()
	k.Attrs = jwk.Attributes{}
	k.Attrs.SetString(jwk.AttrExpires, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	srv.authorize(t, "expired", k)
	rs.refusedWith(t, mustConfig(t, expired.client(t, ClientOptions{}), rs.addr()), "expired entry", isA[*authkeys.ExpiredError])

	office := newClient()
	k = office.id.Key.PublicKey()
	k.Attrs = jwk.Attributes{}
	k.Attrs.SetList(jwk.AttrFrom, []string{"10.0.0.0/8"})
	srv.authorize(t, "office", k)
	rs.refusedWith(t, mustConfig(t, office.client(t, ClientOptions{}), rs.addr()), "from mismatch", func(err error) bool {
		var se *authkeys.SourceNotAllowedError
		return errors.As(err, &se) && se.Remote.String() == "127.0.0.1"
	})

	// Delegation: the trusted key signs a certificate for mallory's key.
	alice := newClient()
	srv.authorize(t, "alice", alice.id.Key)
	rs.admitted(t, mustConfig(t, alice.client(t, ClientOptions{}), rs.addr()), "control: alice")
	mallory := mustGenerate(t, jwk.EC256)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "alice as a CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, alice.id.Key.Public(), alice.id.Key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "mallory"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, mallory.Public(), alice.id.Key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	for name, chain := range map[string][][]byte{"delegation, leaf only": {leafDER}, "delegation, with the chain": {leafDER, caDER}} {
		cfg := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: mallory.Signer()}}}
		rs.refusedWith(t, cfg, name, func(err error) bool {
			var na *authkeys.NotAuthorizedError
			return errors.As(err, &na) && na.Fingerprint == mallory.Fingerprint()
		})
	}
	// alice's certificate, with another key's private key: the
	// CertificateVerify signature does not verify.
	for _, v := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		cfg := &tls.Config{InsecureSkipVerify: true, MaxVersion: v, Certificates: []tls.Certificate{{Certificate: alice.id.Certificate.Certificate, PrivateKey: mallory.Signer()}}}
		rs.refusedWithAlert(t, cfg, "certificate without its private key, "+tls.VersionName(v), "remote error: tls: error decrypting message", func(err error) bool {
			return strings.Contains(err.Error(), "invalid signature by the client certificate")
		})
	}
}

func mustServer(t *testing.T, h *home, opts ServerOptions) *Server {
	t.Helper()
	if opts.Clients == nil {
		opts.Clients = h.auth
	}
	s, err := NewServer(h.id, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A removed or revoked client key cannot resume a session, asserted by the
// server's typed error (TestRemovedKeyCannotResume checks the refusal).
func TestResumptionRefusalsAreTyped(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, how := range []string{"removed", "revoked"} {
			t.Run(tls.VersionName(version)+" "+how, func(t *testing.T) {
				srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
				srv.authorize(t, "alice", cli.id.Key)
				rs := startRecording(t, mustServer(t, srv, ServerOptions{}))
				cli.pin(t, rs.addr(), srv.id.Key)
				cfg := mustConfig(t, cli.client(t, ClientOptions{}), rs.addr())
				cfg.MaxVersion = version
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
				rs.admitted(t, cfg, "first")
				if !rs.admitted(t, cfg, "control").DidResume {
					t.Fatal("the control connection did not resume")
				}
				check := isA[*authkeys.NotAuthorizedError]
				if how == "removed" {
					if _, err := srv.auth.Remove("alice"); err != nil {
						t.Fatal(err)
					}
				} else {
					srv.revoke(t, cli.id.Key)
					check = isA[*authkeys.RevokedError]
				}
				rs.refusedWith(t, cfg, how+" key resuming", check)
			})
		}
	}
}

// A revoked key through the PKI path, server side: a client whose
// certificate chains to the CA (and is not in the CRL) but whose key is in
// revoked_keys.d is refused with *authkeys.RevokedError — the CA is never
// consulted — on fresh and resumed handshakes, in TLS 1.3 and 1.2.
func TestRevokedKeyThroughPKIServer(t *testing.T) {
	ca := newCA(t)
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			srv := newHome(t, jwk.EC256)
			rs := startRecording(t, mustServer(t, srv, ServerOptions{PKI: ca.pki(t)}))
			cli := newHome(t, jwk.EC256)
			cli.id = ca.issue(t, cli.id.Key)
			cli.pin(t, rs.addr(), srv.id.Key)
			cfg := mustConfig(t, cli.client(t, ClientOptions{}), rs.addr())
			cfg.MaxVersion = version
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
			rs.admitted(t, cfg, "CA-issued client")
			if !rs.admitted(t, cfg, "control").DidResume {
				t.Fatal("the control connection did not resume")
			}
			srv.revoke(t, cli.id.Key)
			rs.refusedWith(t, cfg, "revoked key resuming with a CA certificate", isA[*authkeys.RevokedError])
			fresh := mustConfig(t, cli.client(t, ClientOptions{}), rs.addr())
			fresh.MaxVersion = version
			rs.refusedWith(t, fresh, "revoked key with a CA certificate", isA[*authkeys.RevokedError])
		})
	}
}

// Client side: a revoked host key is refused with *knownhosts.RevokedError
// whether it is pinned or only vouched for by the CA (PKI mode), on fresh
// and resumed handshakes, in TLS 1.3 and 1.2.
func TestRevokedHostKeyResumptionAndPKI(t *testing.T) {
	ca := newCA(t)
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, path := range []string{"pinned", "PKI"} {
			t.Run(tls.VersionName(version)+" "+path, func(t *testing.T) {
				cli := newHome(t, jwk.EC256)
				srv := newHome(t, jwk.EC256)
				srv.authorize(t, "client", cli.id.Key)
				opts := ClientOptions{Policy: Strict}
				if path == "PKI" {
					srv.id = ca.issue(t, srv.id.Key)
					opts.PKI = ca.pki(t)
				}
				ts := startServer(t, srv, ServerOptions{})
				if path == "pinned" {
					cli.pin(t, ts.addr(), srv.id.Key)
				}
				cfg := mustConfig(t, cli.client(t, opts), ts.addr())
				cfg.MaxVersion = version
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
				if _, err := roundTrip(ts.addr(), cfg); err != nil {
					t.Fatalf("control: %v", err)
				}
				if cs, err := roundTrip(ts.addr(), cfg); err != nil || !cs.DidResume {
					t.Fatalf("control resumption: resumed=%v err=%v", cs.DidResume, err)
				}
				cli.revoke(t, srv.id.Key)
				for _, c := range []*tls.Config{cfg, mustConfig(t, cli.client(t, opts), ts.addr())} {
					c.MaxVersion = version
					_, err := roundTrip(ts.addr(), c)
					var re *knownhosts.RevokedError
					if !errors.As(err, &re) || re.Fingerprint != srv.id.Key.Fingerprint() || re.Addr != ts.addr() {
						t.Fatalf("resumed=%v: err = %v, want *knownhosts.RevokedError for %s", c == cfg, err, ts.addr())
					}
				}
			})
		}
	}
}
