package tlsbridge

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/knownhosts"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
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
	testnet.ServeEach(t, ln, func(c net.Conn) {
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

// A key both authorized and revoked is refused in the handshake, and stays
// refused across reloads of either side: its authorized-keys file
// rewritten and reloaded alone, the revocation file made unsafe (every key
// refused, the authorized one too), and fixed again.
func TestAuthorizedAndRevokedAcrossReloads(t *testing.T) {
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	rs := startRecording(t, mustServer(t, srv, ServerOptions{}))
	cli.pin(t, rs.addr(), srv.id.Key)
	cfg := func() *tls.Config { return mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()) }
	srv.authorize(t, "both", cli.id.Key)
	rs.admitted(t, cfg(), "authorized key")
	srv.revoke(t, cli.id.Key)
	revokedByFile := func(err error) bool {
		var re *authkeys.RevokedError
		return errors.As(err, &re) && re.Err == nil && strings.HasSuffix(re.File, "bad.json")
	}
	rs.refusedWith(t, cfg(), "authorized and revoked", revokedByFile)

	entry, err := srv.auth.Lookup(cli.id.Key.SPKIHash(), netip.Addr{})
	if err == nil {
		t.Fatalf("Lookup admitted a revoked key: %v", entry)
	}
	// The authorized file rewritten (a comment added) and reloaded alone.
	e := srv.auth.Entries()[0]
	k := cli.id.Key.PublicKey()
	k.Attrs = jwk.Attributes{}
	k.Attrs.SetString(jwk.AttrComment, "rewritten")
	if err := jwk.WritePublicKeyFile(e.File, k, jwk.JWK, jwk.Overwrite); err != nil {
		t.Fatal(err)
	}
	srv.auth.Loader().Reload(e.File)
	rs.refusedWith(t, cfg(), "authorized and revoked, its entry reloaded", revokedByFile)

	// The revocation file made writable by others: every key refused.
	bad := filepath.Join(srv.dir, "revoked_keys.d", "bad.json")
	if err := os.Chmod(bad, 0o666); err != nil {
		t.Fatal(err)
	}
	srv.auth.Reload()
	rs.refusedWith(t, cfg(), "a revocation file unsafe", func(err error) bool {
		var re *authkeys.RevokedError
		return errors.As(err, &re) && re.Err != nil
	})
	if err := os.Chmod(bad, 0o644); err != nil {
		t.Fatal(err)
	}
	srv.auth.Reload()
	rs.refusedWith(t, cfg(), "authorized and revoked, the revocation file fixed", revokedByFile)
}

// A "from" member that names no network admits the key from no address,
// whatever its form: an empty list, an empty string (a script's empty
// variable), a string of separators — never from every address, which
// only the member's absence (or null, as authorize --list --json shows
// it) means.
func TestEmptyFromAdmitsFromNowhere(t *testing.T) {
	srv := newHome(t, jwk.EC256)
	rs := startRecording(t, mustServer(t, srv, ServerOptions{}))
	for i, from := range []string{`[]`, `""`, `" , "`} {
		cli := newHome(t, jwk.EC256)
		cli.pin(t, rs.addr(), srv.id.Key)
		k := cli.id.Key.PublicKey()
		k.Attrs = jwk.Attributes{jwk.AttrFrom: json.RawMessage(from)}
		srv.authorize(t, fmt.Sprintf("c%d", i), k)
		rs.refusedWith(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "from "+from, isA[*authkeys.SourceNotAllowedError])
	}
}

// transportChildEnv marks the helper process of
// TestTransportIgnoresProxyEnvironment.
const transportChildEnv = "KEYTOOL_TEST_TRANSPORT_CHILD"

// The HTTP transports of a Client and of its LiveConns never go through
// the proxy of the environment (HTTPS_PROXY): net/http then does the
// target's TLS handshake itself, with its own configuration — the system's
// CAs, no pin, no client key — and a proxy inspecting TLS with a CA the
// system trusts would have read every request. The environment is read
// once per process, hence the helper process.
func TestTransportIgnoresProxyEnvironment(t *testing.T) {
	if os.Getenv(transportChildEnv) != "" {
		h := newHome(t, jwk.EC256)
		c := h.client(t, ClientOptions{})
		live := c.Live(LiveOptions{})
		defer live.Close()
		for _, tr := range []*http.Transport{c.Transport(), live.Transport()} {
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://keytool-target.invalid:8443/")
			if err == nil {
				resp.Body.Close()
			}
			t.Logf("GET: %v", err)
		}
		return
	}
	if testing.Short() {
		t.Skip("starts a process")
	}
	proxy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	testnet.ServeEach(t, proxy, func(c net.Conn) {
		asked.Add(1)
		_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestTransportIgnoresProxyEnvironment$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), transportChildEnv+"=1", "HTTPS_PROXY=http://"+proxy.Addr().String(), "https_proxy=", "NO_PROXY=", "no_proxy=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper process: %v\n%s", err, out)
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the transports went through the environment's proxy (%d connections)\n%s", n, out)
	}
}

// A CA whose own key is in revoked_keys.d vouches for nobody: revoked
// keys are refused everywhere, through PKI mode too, and a key revoked
// there is not made good by the certificates it signs. Server side (also
// in AllowUnknown mode, where it is refused in the handshake as a
// revoked key is) and client side.
func TestRevokedCAKeyVouchesForNobody(t *testing.T) {
	ca := newCA(t)
	caKey, err := jwk.NewPublicKey(ca.cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, allowUnknown := range []bool{false, true} {
		srv := newHome(t, jwk.EC256)
		rs := startRecording(t, mustServer(t, srv, ServerOptions{PKI: ca.pki(t), AllowUnknown: allowUnknown}))
		cli := newHome(t, jwk.EC256)
		cli.id = ca.issue(t, cli.id.Key)
		cli.pin(t, rs.addr(), srv.id.Key)
		rs.admitted(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "CA-issued client")
		srv.revoke(t, caKey)
		rs.refusedWith(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), fmt.Sprintf("AllowUnknown %v: a client of a revoked CA key", allowUnknown), func(err error) bool {
			var re *authkeys.RevokedError
			return errors.As(err, &re) && re.Fingerprint == caKey.Fingerprint()
		})
	}

	cli, srv := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv.id = ca.issue(t, srv.id.Key)
	srv.authorize(t, "client", cli.id.Key)
	ts := startServer(t, srv, ServerOptions{})
	opts := ClientOptions{PKI: ca.pki(t)}
	if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, opts), ts.addr())); err != nil {
		t.Fatalf("control: %v", err)
	}
	cli.revoke(t, caKey)
	_, err = roundTrip(ts.addr(), mustConfig(t, cli.client(t, opts), ts.addr()))
	var re *knownhosts.RevokedError
	if !errors.As(err, &re) || re.Fingerprint != caKey.Fingerprint() {
		t.Fatalf("a server of a revoked CA key: err = %v, want *knownhosts.RevokedError for %s", err, caKey.Fingerprint())
	}
}

// A CRL with a critical extension PKI mode does not process — a delta
// CRL (RFC 5280 5.2.4), a partitioned one (5.2.5) — is not used to say a
// certificate is good (RFC 5280 5.2: "MUST NOT use that CRL"): a delta
// CRL beside its base, newer and listing only the latest revocations, must
// not hide the base's. Alone, it leaves no CRL to vouch: refused.
func TestDeltaCRLDoesNotHideTheBase(t *testing.T) {
	ca := newCA(t)
	srv := newHome(t, jwk.EC256)
	pki := ca.pki(t)
	rs := startRecording(t, mustServer(t, srv, ServerOptions{PKI: pki}))
	cli := newHome(t, jwk.EC256)
	cli.id = ca.issue(t, cli.id.Key)
	cli.pin(t, rs.addr(), srv.id.Key)
	crl := func(number int64, age time.Duration, critical []pkix.Extension, revoked ...*Identity) []byte {
		var entries []x509.RevocationListEntry
		for _, id := range revoked {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: id.Certificate.Leaf.SerialNumber, RevocationTime: time.Now().Add(-time.Hour)})
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(number), ThisUpdate: time.Now().Add(-age),
			NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: entries, ExtraExtensions: critical}, ca.cert, ca.key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
	}
	baseNumber, _ := asn1.Marshal(1)
	delta := []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 27}, Critical: true, Value: baseNumber}} // deltaCRLIndicator
	publish := func(data []byte) {
		if err := os.WriteFile(ca.crlFile(), data, 0o644); err != nil {
			t.Fatal(err)
		}
		future := time.Now().Add(time.Duration(len(data)) * time.Second)
		_ = os.Chtimes(ca.crlFile(), future, future)
		pki.checkedAt.Store(0)
	}
	publish(append(crl(1, 2*time.Minute, nil, cli.id), crl(2, time.Minute, delta)...))
	rs.refusedWith(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "revoked by the base CRL, beside a delta CRL", isA[*RevokedCertificateError])
	publish(crl(2, time.Minute, delta))
	rs.refusedWith(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "a delta CRL alone", func(err error) bool {
		var ref *CARefusedError
		return errors.As(err, &ref) && strings.Contains(err.Error(), "no CRL")
	})
	publish(crl(3, time.Minute, nil))
	rs.admitted(t, mustConfig(t, cli.client(t, ClientOptions{}), rs.addr()), "a full CRL that does not list it")
}
