package tlsbridge

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
)

// budgetHTTP is a library server as the package's documentation has it:
// an http.Server over tls.NewListener(BudgetListener(ln),
// srv.TLSConfig()) on 127.0.0.1 (or, with budget false, over the
// listener alone, as servers were before the budget), HTTP/1.1 and
// HTTP/2. Its handler, behind RequireAuthenticated, reads the request's
// body and answers how many bytes it read; errs holds its ErrorLog, where
// net/http logs the handshakes that failed.
type budgetHTTP struct {
	addr string
	errs *testlog.Buffer
}

func startBudgetHTTP(t *testing.T, h *home, opts ServerOptions, budget bool) *budgetHTTP {
	t.Helper()
	if !budget {
		return serveBudgetHTTP(t, h, opts, func(ln net.Listener) net.Listener { return ln })
	}
	return serveBudgetHTTP(t, h, opts, BudgetListener)
}

// serveBudgetHTTP is startBudgetHTTP's server on listen(ln).
func serveBudgetHTTP(t *testing.T, h *home, opts ServerOptions, listen func(net.Listener) net.Listener) *budgetHTTP {
	t.Helper()
	srv := mustServer(t, h, opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &budgetHTTP{addr: ln.Addr().String(), errs: &testlog.Buffer{}}
	cfg := srv.TLSConfig()
	cfg.NextProtos = []string{"h2", "http/1.1"}
	ln = listen(ln)
	hs := &http.Server{
		Handler: srv.RequireAuthenticated(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprint(w, n)
		})),
		ConnContext: ConnContext,
		ErrorLog:    log.New(s.errs, "", 0),
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() { hs.Close(); <-done })
	return s
}

// post sends body to s as c (its server pinned), over TLS version and
// ALPN protocol proto, on a connection of its own that resumes from
// cache if it can; it returns the server's answer (the bytes it read)
// and the connection's state.
func (s *budgetHTTP) post(t *testing.T, c *Client, version uint16, proto string, cache tls.ClientSessionCache, body []byte) (string, *tls.ConnectionState, error) {
	t.Helper()
	cfg := &tls.Config{MaxVersion: version, ClientSessionCache: cache, NextProtos: []string{proto}}
	if err := c.Configure(cfg, s.addr); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: proto == "h2"}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second} // a bound on a hang, not a pace
	resp, err := hc.Post("https://"+s.addr+"/", "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.NegotiatedProtocol != proto {
		return "", nil, fmt.Errorf("%s, protocol %s: %s", resp.Status, resp.Proto, got)
	}
	return string(got), resp.TLS, nil
}

// The handshake budget lifts once the server admits the client, though
// net/http drives the handshake: a keytool client of a library server
// over BudgetListener sends a body of 1 MiB, sixteen times the budget, in
// TLS 1.3 and 1.2, HTTP/1.1 (whose request comes right behind the
// client's Finished) and HTTP/2, on a full handshake and on a resumed
// one, and the server reads all of it. Without the lift, each stops at
// the budget.
func TestBudgetLiftedForAdmittedClient(t *testing.T) {
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv.authorize(t, "alice", cli.id.Key)
	s := startBudgetHTTP(t, srv, ServerOptions{}, true)
	cli.pin(t, s.addr, srv.id.Key)
	c := cli.client(t, ClientOptions{Policy: Strict})
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, proto := range []string{"http/1.1", "h2"} {
			t.Run(tls.VersionName(version)+"/"+proto, func(t *testing.T) {
				cache := tls.NewLRUClientSessionCache(4)
				for _, resumed := range []bool{false, true} {
					got, cs, err := s.post(t, c, version, proto, cache, body)
					if err != nil || got != strconv.Itoa(len(body)) {
						t.Fatalf("resumed %v: POST of %d bytes: the server read %q, %v\n%s", resumed, len(body), got, err, s.errs)
					}
					if cs.Version != version || cs.DidResume != resumed {
						t.Fatalf("the connection is %s, resumed %v; want %s, resumed %v", tls.VersionName(cs.Version), cs.DidResume, tls.VersionName(version), resumed)
					}
				}
			})
		}
	}
}

// wrapListener is a caller's listener over BudgetListener — a PROXY
// protocol reader, a byte counter — that hands on each connection in a
// wrapper of its own, made by wrap.
type wrapListener struct {
	net.Listener
	wrap func(net.Conn) net.Conn
}

func (l wrapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

// opaqueConn is a caller's connection wrapper without a NetConn method.
type opaqueConn struct{ net.Conn }

// unwrappingConn is a caller's connection wrapper with one.
type unwrappingConn struct{ net.Conn }

func (c *unwrappingConn) NetConn() net.Conn { return c.Conn }

// cyclicConn's NetConn leads back to itself.
type cyclicConn struct{ net.Conn }

func (c *cyclicConn) NetConn() net.Conn { return c }

// The budget lifts for an admitted client under a caller's listener that
// wraps BudgetListener's connections in wrappers of its own, two deep,
// with NetConn methods: a body of 1 MiB is read whole, in TLS 1.3 and
// 1.2, HTTP/1.1 and HTTP/2, though hello.Conn is the caller's wrapper.
func TestBudgetLiftedThroughWrappers(t *testing.T) {
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv.authorize(t, "alice", cli.id.Key)
	s := serveBudgetHTTP(t, srv, ServerOptions{}, func(ln net.Listener) net.Listener {
		return wrapListener{BudgetListener(ln), func(c net.Conn) net.Conn { return &unwrappingConn{&unwrappingConn{c}} }}
	})
	cli.pin(t, s.addr, srv.id.Key)
	c := cli.client(t, ClientOptions{Policy: Strict})
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		for _, proto := range []string{"http/1.1", "h2"} {
			got, _, err := s.post(t, c, version, proto, nil, body)
			if err != nil || got != strconv.Itoa(len(body)) {
				t.Fatalf("%s, %s: POST of %d bytes: the server read %q, %v\n%s", tls.VersionName(version), proto, len(body), got, err, s.errs)
			}
		}
	}
}

// sinkResult is what budgetSink's server made of one connection: its
// handshake's error, then the bytes read after it and the error that
// ended them.
type sinkResult struct {
	handshake error
	n         int64
	err       error
}

// budgetSink serves h's Server on tls.NewListener over a wrapListener of
// BudgetListener on 127.0.0.1, driving each handshake itself, then
// reading all the client sends; it returns the address and the results.
func budgetSink(t *testing.T, h *home, wrap func(net.Conn) net.Conn) (string, <-chan sinkResult) {
	t.Helper()
	srv := mustServer(t, h, ServerOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan sinkResult, 4)
	testnet.ServeEach(t, tls.NewListener(wrapListener{BudgetListener(ln), wrap}, srv.TLSConfig()), func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang, not a pace
		if err := c.(*tls.Conn).Handshake(); err != nil {
			results <- sinkResult{handshake: err}
			return
		}
		n, err := io.Copy(io.Discard, c)
		results <- sinkResult{n: n, err: err}
	})
	return ln.Addr().String(), results
}

// sendTo sends body to addr as c, over TLS, and closes its side. The
// server may cut the connection before the end: errors are the server's
// to report.
func sendTo(t *testing.T, c *Client, addr string, body []byte) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, mustConfig(t, c, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang, not a pace
	if _, err := conn.Write(body); err == nil {
		_ = conn.CloseWrite()
	}
}

// A wrapper without a NetConn method, or one whose NetConn leads back to
// itself, hides the BudgetConn from the Server, as documented: the client
// is admitted, but what it sends stops at the budget with the budget's
// error, which says that no Server found the BudgetConn, not that the
// client was not admitted. The cyclic wrapper does not hang the
// handshake.
func TestBudgetHiddenByWrapper(t *testing.T) {
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv.authorize(t, "alice", cli.id.Key)
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	for name, wrap := range map[string]func(net.Conn) net.Conn{
		"opaque": func(c net.Conn) net.Conn { return &opaqueConn{c} },
		"cyclic": func(c net.Conn) net.Conn { return &cyclicConn{c} },
	} {
		t.Run(name, func(t *testing.T) {
			addr, results := budgetSink(t, srv, wrap)
			cli.pin(t, addr, srv.id.Key)
			sendTo(t, cli.client(t, ClientOptions{Policy: Strict}), addr, body)
			r := <-results
			var tooLarge *HandshakeTooLargeError
			if r.handshake != nil || !errors.As(r.err, &tooLarge) || r.n >= MaxHandshakeBytes {
				t.Fatalf("handshake %v; then %d bytes read, %v; want the client admitted, then stopped at the budget", r.handshake, r.n, r.err)
			}
			want := "tlsbridge: the client sent more than the handshake budget of 64 KiB, and no Server's configuration had found the BudgetConn to lift it on admitting the client (a connection wrapper above it without a NetConn method hides it from the Server)"
			if r.err.Error() != want {
				t.Fatalf("the budget's error: %q\nwant %q", r.err, want)
			}
		})
	}
}

// A client refused by the budget through a wrapper with NetConn is told
// apart from one behind a wrapper that hides the budget: its Certificate
// message (128 KiB) crossed the budget before the server admitted it.
func TestBudgetRefusesThroughWrapper(t *testing.T) {
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv.authorize(t, "alice", cli.id.Key)
	addr, results := budgetSink(t, srv, func(c net.Conn) net.Conn { return &unwrappingConn{c} })
	cli.pin(t, addr, srv.id.Key)
	c, err := NewClient(paddedIdentity(t, cli.id, 128<<10), ClientOptions{Hosts: cli.host, Policy: Strict})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = roundTrip(addr, mustConfig(t, c, addr))
	r := <-results
	var tooLarge *HandshakeTooLargeError
	want := "tlsbridge: the client sent more than the handshake budget of 64 KiB before the server admitted it"
	if !errors.As(r.handshake, &tooLarge) || tooLarge.Error() != want {
		t.Fatalf("the server's handshake: %v\nwant %q", r.handshake, want)
	}
}

// budgetOf finds a BudgetConn through up to maxUnwrap-1 wrappers with
// NetConn methods (crypto/tls's among them), and gives up past them, at
// a wrapper without one and at a cycle.
func TestBudgetOf(t *testing.T) {
	b := NewBudgetConn(nil)
	var c net.Conn = b
	for range maxUnwrap - 1 {
		c = &unwrappingConn{c}
	}
	if got := budgetOf(c); got != b {
		t.Fatalf("%d wrappers deep: budgetOf = %v, want the BudgetConn", maxUnwrap-1, got)
	}
	if got := budgetOf(&unwrappingConn{c}); got != nil {
		t.Fatalf("%d wrappers deep: budgetOf = %v, want nil", maxUnwrap, got)
	}
	if got := budgetOf(&unwrappingConn{tls.Server(b, &tls.Config{})}); got != b {
		t.Fatalf("under a *tls.Conn: budgetOf = %v, want the BudgetConn", got)
	}
	for _, c := range []net.Conn{nil, &opaqueConn{b}, &cyclicConn{b}, &unwrappingConn{&cyclicConn{b}}} {
		if got := budgetOf(c); got != nil {
			t.Fatalf("budgetOf(%T) = %v, want nil", c, got)
		}
	}
}

// paddedIdentity is id sending, after its own chain, a certificate of
// about size bytes whose bulk is an extension no verifier knows: the
// server decides on the leaf's key, so that what the padding changes is
// the size of the client's Certificate message.
func paddedIdentity(t *testing.T, id *Identity, size int) *Identity {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der := junkCert(t, k, 1, size)
	padded := *id
	padded.Certificate.Certificate = append(append([][]byte(nil), id.Certificate.Certificate...), der)
	return &padded
}

// A library server over BudgetListener refuses a client whose
// Certificate message is larger than the budget (a chain padded to
// 128 KiB, half of what crypto/tls would read), though its key is
// authorized: net/http logs the handshake's error, the budget's. The
// same client is admitted by the same server without the budget, as
// every library server admitted it before.
func TestBudgetListenerRefusesOversizedCertificate(t *testing.T) {
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv.authorize(t, "alice", cli.id.Key)
	fat := paddedIdentity(t, cli.id, 128<<10)
	body := []byte("hello")
	for _, budget := range []bool{true, false} {
		for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
			t.Run(fmt.Sprintf("budget=%v/%s", budget, tls.VersionName(version)), func(t *testing.T) {
				s := startBudgetHTTP(t, srv, ServerOptions{}, budget)
				cli.pin(t, s.addr, srv.id.Key)
				c, err := NewClient(fat, ClientOptions{Hosts: cli.host, Policy: Strict})
				if err != nil {
					t.Fatal(err)
				}
				got, _, err := s.post(t, c, version, "http/1.1", nil, body)
				if !budget {
					if err != nil || got != "5" {
						t.Fatalf("without the budget: %q, %v; want the client admitted\n%s", got, err, s.errs)
					}
					return
				}
				if err == nil {
					t.Fatalf("a Certificate message of 128 KiB was let through the budget: the server read %q", got)
				}
				want := "tlsbridge: the client sent more than the handshake budget of 64 KiB before the server admitted it"
				deadline := time.Now().Add(10 * time.Second) // net/http logs after the client saw the close
				for !strings.Contains(s.errs.String(), want) && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if !strings.Contains(s.errs.String(), "http: TLS handshake error from 127.0.0.1:") || !strings.Contains(s.errs.String(), want) {
					t.Fatalf("the client got %v; the server's log lacks the budget's refusal:\n%s", err, s.errs)
				}
			})
		}
	}
}

// A caller driving the handshake itself on a NewBudgetConn gets the
// budget's typed error from it.
func TestBudgetConnHandshakeError(t *testing.T) {
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv.authorize(t, "alice", cli.id.Key)
	s, err := NewServer(srv.id, ServerOptions{Clients: srv.auth})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	herr := make(chan error, 1)
	testnet.ServeEach(t, ln, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang, not a pace
		herr <- tls.Server(NewBudgetConn(c), s.TLSConfig()).Handshake()
	})
	cli.pin(t, ln.Addr().String(), srv.id.Key)
	c, err := NewClient(paddedIdentity(t, cli.id, 128<<10), ClientOptions{Hosts: cli.host, Policy: Strict})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = roundTrip(ln.Addr().String(), mustConfig(t, c, ln.Addr().String()))
	var tooLarge *HandshakeTooLargeError
	if err := <-herr; !errors.As(err, &tooLarge) || tooLarge.Limit != MaxHandshakeBytes {
		t.Fatalf("the server's handshake: %v, want a *HandshakeTooLargeError of %d", err, MaxHandshakeBytes)
	}
}

// A client of PKI mode whose chain is as large as real ones get — 22 KiB
// in 10 certificates, PKI mode's most (MaxPeerChain), CA certificates
// carrying what real ones do (CRL and OCSP addresses, policies, name
// constraints) — is admitted by its CA under the budget, and its body of
// 1 MiB read whole.
func TestBudgetAdmitsCAChain(t *testing.T) {
	srv, cli := newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	root := pkiIssue(t, "Example Org Root CA", true, nil)
	dir := pkiDir(t)
	pkiWrite(t, filepath.Join(dir, "ca.pem"), pkiPEM(root))
	pki, err := LoadPKI(PKIOptions{CA: filepath.Join(dir, "ca.pem"), Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	var domains []string
	for i := range 56 {
		domains = append(domains, fmt.Sprintf("department-%02d.example.org", i))
	}
	parent, rest := root, []byte(nil)
	for i := 1; i < MaxPeerChain; i++ {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i)),
			Subject: pkix.Name{Country: []string{"NL"}, Province: []string{"Noord-Holland"}, Locality: []string{"Amsterdam"},
				Organization: []string{"Example Org B.V."}, OrganizationalUnit: []string{"Infrastructure Security"},
				CommonName: fmt.Sprintf("Example Org Issuing CA %d", i)},
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			CRLDistributionPoints: []string{fmt.Sprintf("http://crl.example.org/ca%d.crl", i), fmt.Sprintf("http://crl2.example.org/ca%d.crl", i)},
			OCSPServer:            []string{"http://ocsp.example.org"}, IssuingCertificateURL: []string{fmt.Sprintf("http://pki.example.org/ca%d.crt", i-1)},
			PermittedDNSDomains: domains,
			NotBefore:           time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent.cert, k.Public(), parent.key)
		if err != nil {
			t.Fatal(err)
		}
		ca, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		parent = &pkiCert{ca, k}
		rest = append(pkiPEM(parent), rest...)
	}
	leaf, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "carol"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		parent.cert, cli.id.Key.Public(), parent.key)
	if err != nil {
		t.Fatal(err)
	}
	id, err := NewIdentityWithChain(cli.id.Key, "cert.pem", append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf}), rest...))
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, c := range id.Certificate.Certificate {
		size += len(c)
	}
	if n := len(id.Certificate.Certificate); n != MaxPeerChain || size < 22<<10 {
		t.Fatalf("carol's chain: %d certificates of %d bytes; the test wants %d of 22 KiB", n, size, MaxPeerChain)
	}

	s := startBudgetHTTP(t, srv, ServerOptions{PKI: pki}, true)
	cli.pin(t, s.addr, srv.id.Key)
	c, err := NewClient(id, ClientOptions{Hosts: cli.host, Policy: Strict})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		got, _, err := s.post(t, c, version, "http/1.1", nil, body)
		if err != nil || got != strconv.Itoa(len(body)) {
			t.Fatalf("%s: carol, a chain of %d bytes: the server read %q, %v\n%s", tls.VersionName(version), size, got, err, s.errs)
		}
	}
}
