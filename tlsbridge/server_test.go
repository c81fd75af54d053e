package tlsbridge

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
)

// pair is a server home and a client home that trust each other.
func pair(t *testing.T, typ jwk.Type) (srv, cli *home, ts *testServer) {
	t.Helper()
	srv, cli = newHome(t, typ), newHome(t, typ)
	srv.authorize(t, "alice", cli.id.Key)
	ts = startServer(t, srv, ServerOptions{})
	cli.pin(t, ts.addr(), srv.id.Key)
	return srv, cli, ts
}

func TestAuthorizedClientConnects(t *testing.T) {
	for _, typ := range []jwk.Type{jwk.EC256, jwk.Ed25519, jwk.RSA2048} {
		t.Run(string(typ), func(t *testing.T) {
			_, cli, ts := pair(t, typ)
			cs, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{}), ts.addr()))
			if err != nil {
				t.Fatalf("authorized client refused: %v", err)
			}
			if cs.Version != tls.VersionTLS13 {
				t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(cs.Version))
			}
			p := ts.lastPeer(t)
			if p.Name() != "alice" || p.Fingerprint() != cli.id.Key.Fingerprint() || p.KeyID() != cli.id.Key.KeyID() || !p.Authenticated() {
				t.Errorf("peer = %q %s %s authenticated=%v; want alice %s", p.Name(), p.Fingerprint(), p.KeyID(), p.Authenticated(), cli.id.Key.Fingerprint())
			}
		})
	}
}

// refusedBy asserts that a connection with cfg fails, and that the server
// refused it for the reason want (checked through Server.decide).
func refused(t *testing.T, ts *testServer, cfg *tls.Config) {
	t.Helper()
	if _, err := roundTrip(ts.addr(), cfg); err == nil {
		t.Fatal("connection succeeded; want it refused")
	} else if !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("client saw %v; want the server's bad_certificate alert", err)
	}
}

func TestServerRefuses(t *testing.T) {
	t.Run("unknown key", func(t *testing.T) {
		srv := newHome(t, jwk.EC256)
		ts := startServer(t, srv, ServerOptions{})
		cli := newHome(t, jwk.EC256)
		cli.pin(t, ts.addr(), srv.id.Key)
		refused(t, ts, mustConfig(t, cli.client(t, ClientOptions{}), ts.addr()))
	})
	t.Run("revoked key", func(t *testing.T) {
		srv, cli, ts := pair(t, jwk.EC256)
		srv.revoke(t, cli.id.Key)
		refused(t, ts, mustConfig(t, cli.client(t, ClientOptions{}), ts.addr()))
		_, err := srv.auth.Lookup(cli.id.Key.SPKIHash(), addrFromString("127.0.0.1"))
		var re *authkeys.RevokedError
		if !errors.As(err, &re) {
			t.Errorf("Lookup = %v, want *authkeys.RevokedError", err)
		}
	})
	t.Run("expired entry", func(t *testing.T) {
		srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
		k := cli.id.Key.PublicKey()
		k.Attrs = jwk.Attributes{}
		k.Attrs.SetString(jwk.AttrExpires, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
		srv.authorize(t, "old", k)
		ts := startServer(t, srv, ServerOptions{})
		cli.pin(t, ts.addr(), srv.id.Key)
		refused(t, ts, mustConfig(t, cli.client(t, ClientOptions{}), ts.addr()))
	})
	t.Run("source network", func(t *testing.T) {
		srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
		k := cli.id.Key.PublicKey()
		k.Attrs = jwk.Attributes{}
		k.Attrs.SetList(jwk.AttrFrom, []string{"10.0.0.0/8"})
		srv.authorize(t, "office", k)
		ts := startServer(t, srv, ServerOptions{})
		cli.pin(t, ts.addr(), srv.id.Key)
		refused(t, ts, mustConfig(t, cli.client(t, ClientOptions{}), ts.addr()))
	})
	t.Run("delegation: a certificate for an untrusted key signed by a trusted key", func(t *testing.T) {
		srv, cli, ts := pair(t, jwk.EC256) // cli's key is trusted
		mallory := mustGenerate(t, jwk.EC256)
		// cli's key, acting as a CA, signs a certificate for mallory's key.
		caTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: issuerFor(cli.id.Key), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
		caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, cli.id.Key.Public(), cli.id.Key.Signer())
		if err != nil {
			t.Fatal(err)
		}
		ca, _ := x509.ParseCertificate(caDER)
		leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: subjectFor(mallory), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, mallory.Public(), cli.id.Key.Signer())
		if err != nil {
			t.Fatal(err)
		}
		for name, chain := range map[string][][]byte{"leaf only": {leafDER}, "with the chain": {leafDER, caDER}} {
			t.Run(name, func(t *testing.T) {
				cfg := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{{Certificate: chain, PrivateKey: mallory.Signer()}}}
				refused(t, ts, cfg)
			})
		}
		_ = srv
	})
	t.Run("a trusted key's certificate without its private key", func(t *testing.T) {
		_, cli, ts := pair(t, jwk.EC256)
		other := mustGenerate(t, jwk.EC256)
		cfg := &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{{Certificate: cli.id.Certificate.Certificate, PrivateKey: other.Signer()}}}
		if _, err := roundTrip(ts.addr(), cfg); err == nil {
			t.Fatal("a client without the trusted key's private key got in")
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		_, _, ts := pair(t, jwk.EC256)
		if _, err := roundTrip(ts.addr(), &tls.Config{InsecureSkipVerify: true}); err == nil {
			t.Fatal("a client without a certificate got in")
		}
	})
}

// A key removed or revoked while the server runs is refused from the next
// handshake on, including a handshake that resumes an earlier session, in
// TLS 1.3 and in TLS 1.2.
func TestRemovedKeyCannotResume(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, how := range []string{"removed", "revoked"} {
			t.Run(tls.VersionName(version)+" "+how, func(t *testing.T) {
				srv, cli, ts := pair(t, jwk.EC256)
				cfg := mustConfig(t, cli.client(t, ClientOptions{}), ts.addr())
				cfg.MaxVersion = version
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(8)
				if _, err := roundTrip(ts.addr(), cfg); err != nil {
					t.Fatal(err)
				}
				// Control: while the key is authorized, the session resumes.
				cs, err := roundTrip(ts.addr(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				if !cs.DidResume {
					t.Fatal("the second connection did not resume; the test would prove nothing")
				}
				switch how {
				case "removed":
					if _, err := srv.auth.Remove("alice"); err != nil {
						t.Fatal(err)
					}
				case "revoked":
					srv.revoke(t, cli.id.Key)
				}
				if _, err := roundTrip(ts.addr(), cfg); err == nil {
					t.Fatalf("a %s key got back in by resuming its session", how)
				}
			})
		}
	}
}

func TestServerConfigureRefusesConflicts(t *testing.T) {
	h := newHome(t, jwk.EC256)
	srv, err := NewServer(h.id, ServerOptions{Clients: h.auth})
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]*tls.Config{
		"weaker version":  {MinVersion: tls.VersionTLS10},
		"CBC suite":       {CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}},
		"chain building":  {ClientAuth: tls.RequireAndVerifyClientCert},
		"client CAs":      {ClientCAs: x509.NewCertPool()},
		"own certificate": {Certificates: []tls.Certificate{h.id.Certificate}},
		"config hook":     {GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return nil, nil }},
	} {
		minVersion, clientAuth := cfg.MinVersion, cfg.ClientAuth
		if err := srv.Configure(cfg); err == nil {
			t.Errorf("%s: Configure accepted a conflicting config", name)
		}
		if cfg.VerifyConnection != nil || cfg.MinVersion != minVersion || cfg.ClientAuth != clientAuth {
			t.Errorf("%s: Configure changed the config it refused", name)
		}
	}
	// Fields that do not conflict are kept, and the caller's own
	// VerifyConnection still runs.
	called := false
	cfg := &tls.Config{NextProtos: []string{"h2"}, VerifyConnection: func(tls.ConnectionState) error { called = true; return nil }}
	if err := srv.Configure(cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.NextProtos) != 1 || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("Configure lost a field or did not set the policy: %+v", cfg)
	}
	cli := newHome(t, jwk.EC256)
	h.authorize(t, "c", cli.id.Key)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			_, _ = io.WriteString(c, "ok\n")
			c.Close()
		}
	}()
	cli.pin(t, ln.Addr().String(), h.id.Key)
	if _, err := roundTrip(ln.Addr().String(), mustConfig(t, cli.client(t, ClientOptions{}), ln.Addr().String())); err != nil {
		t.Fatal(err)
	}
	if !called {
		t.Error("the caller's VerifyConnection did not run")
	}
}

// In AllowUnknown mode an unknown client completes the handshake, and the
// HTTP middleware answers it 403 with a JSON body saying why, while
// an authorized client reaches the handler, which learns who called.
//
// seed 000, "Server trust relationship revoked": "the server still uses
// the same certificate but all API calls return a 403 with an error
// indicating that the client isn't trusted" once its trust entry is
// removed (below, bob's).
func TestUnknownClientsGet403(t *testing.T) {
	srvHome := newHome(t, jwk.EC256)
	srv, err := NewServer(srvHome.id, ServerOptions{Clients: srvHome.auth, AllowUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.RequireAuthenticated(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := PeerFromContext(r.Context())
		_, _ = io.WriteString(w, "hello "+p.Name()+" "+p.Fingerprint())
	})))
	hs.TLS = srv.TLSConfig()
	hs.Config.ConnContext = ConnContext
	hs.StartTLS()
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "https://")

	known, stranger := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srvHome.authorize(t, "bob", known.id.Key)
	for _, h := range []*home{known, stranger} {
		h.pin(t, addr, srvHome.id.Key)
	}

	get := func(h *home) (int, string) {
		t.Helper()
		c := &http.Client{Transport: h.client(t, ClientOptions{}).Transport()}
		resp, err := c.Get(hs.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(known); code != 200 || body != "hello bob "+known.id.Key.Fingerprint() {
		t.Errorf("authorized client: %d %q", code, body)
	}
	code, body := get(stranger)
	var fb ForbiddenBody
	if err := json.Unmarshal([]byte(body), &fb); err != nil || code != 403 {
		t.Fatalf("unknown client: %d %q (%v)", code, body, err)
	}
	if fb.Fingerprint != stranger.id.Key.Fingerprint() || fb.Reason != ReasonNotAuthorized {
		t.Errorf("403 body does not say whose key and why: %+v", fb)
	}
	// seed 000: another trusted client or the administrator removes bob's
	// trust entry: the same server, the same certificate, and bob's calls
	// now get the 403.
	if _, err := srvHome.auth.Remove("bob"); err != nil {
		t.Fatal(err)
	}
	code, body = get(known)
	fb = ForbiddenBody{}
	if err := json.Unmarshal([]byte(body), &fb); err != nil || code != 403 || fb.Reason != ReasonNotAuthorized || fb.Fingerprint != known.id.Key.Fingerprint() {
		t.Errorf("a client whose entry was removed: %d %q (%v), want 403 %s", code, body, err, ReasonNotAuthorized)
	}
	// A revoked key does not even finish the handshake.
	srvHome.revoke(t, stranger.id.Key)
	c := &http.Client{Transport: stranger.client(t, ClientOptions{}).Transport()}
	if resp, err := c.Get(hs.URL); err == nil {
		resp.Body.Close()
		t.Errorf("revoked key got an HTTP answer (%d)", resp.StatusCode)
	}
}
