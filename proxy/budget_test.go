package proxy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/tlsbridge"
)

// writeCounter counts the bytes written through a client's connection.
type writeCounter struct {
	net.Conn
	n int
}

func (c *writeCounter) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n += n
	return n, err
}

// paddingCert is a certificate of about size bytes (DER): a throwaway
// CA's, whose bulk is an extension no verifier knows. In key mode the
// proxy decides on the leaf's key alone, so that a chain padded with it
// is let in as the leaf is: what it changes is the handshake's size.
func paddingCert(t *testing.T, size int) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "padding"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Value: make([]byte, max(size-400, 1))}}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// handshakeBytes dials addr as c, its chain followed by pad (a padding
// certificate, or none), and returns the bytes c wrote up to the end of
// its handshake — all of its handshake: a TLS 1.3 client's Finished is its
// last message — and the connection, or the handshake's error.
func handshakeBytes(t *testing.T, c *side, addr string, pad []byte) (int, *tls.Conn, error) {
	t.Helper()
	id := *c.id
	id.Certificate.Certificate = append(append([][]byte(nil), c.id.Certificate.Certificate...), pad)
	if pad == nil {
		id.Certificate.Certificate = id.Certificate.Certificate[:len(c.id.Certificate.Certificate)]
	}
	client, err := tlsbridge.NewClient(&id, tlsbridge.ClientOptions{Hosts: c.hosts, Policy: tlsbridge.Strict})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := client.TLSConfig(addr)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang, not a pace
	wc := &writeCounter{Conn: raw}
	conn := tls.Client(wc, cfg)
	err = conn.Handshake()
	if v := conn.ConnectionState().Version; err == nil && v != tls.VersionTLS13 {
		t.Fatalf("the client's handshake is TLS %x, not 1.3: its bytes are not all written when it returns", v)
	}
	return wc.n, conn, err
}

// TestHandshakeBudget: a client may send up to tlsbridge.MaxHandshakeBytes before
// its handshake completes, and not one more. Alice's chain is padded so
// that her handshake is just under the budget: she is admitted, and the
// mebibyte she sends the moment her handshake is done — some of it read
// with her Finished — reaches the target and comes back (after the
// handshake the budget no longer applies). Padded 1 KiB more, her
// handshake is cut once the proxy has read the budget, logged as refused
// with the budget as the reason (naming nothing of the server), and
// counted as handshake_too_large; without the budget, crypto/tls would
// have read the message to its end and refused the client's key
// otherwise, or let it in.
func TestHandshakeBudget(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	m := NewMetrics()
	_, addr, logs, _ := startServer(t, srv, longEchoTarget(t), ServerOptions{Metrics: m})
	alice.pin(t, addr, srv)

	// The padding's size for a handshake just under the budget, found by
	// measuring: the records' framing and the key shares are crypto/tls's.
	want := tlsbridge.MaxHandshakeBytes - 256
	pad, probes := paddingCert(t, 32<<10), 0
	for range 3 {
		probes++
		n, conn, err := handshakeBytes(t, alice, addr, pad)
		if err != nil {
			t.Fatalf("alice with a padded chain, a handshake of %d bytes: %v", n, err)
		}
		conn.Close()
		if want-64 <= n && n <= want {
			break
		}
		pad = paddingCert(t, len(pad)+want-n)
	}

	n, conn, err := handshakeBytes(t, alice, addr, pad)
	if err != nil || n > tlsbridge.MaxHandshakeBytes || n < tlsbridge.MaxHandshakeBytes-512 {
		t.Fatalf("alice's handshake: %d bytes (budget %d), %v; want just under the budget and admitted", n, tlsbridge.MaxHandshakeBytes, err)
	}
	t.Logf("alice's handshake under the budget: %d bytes, a chain of %d", n, len(alice.id.Certificate.Certificate[0])+len(pad))
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	sent := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(sent)
		werr <- err
	}()
	back := make([]byte, len(sent))
	if _, err := io.ReadFull(conn, back); err != nil || !bytes.Equal(back, sent) {
		t.Fatalf("1 MiB sent after a handshake just under the budget: %v (equal: %v)", err, bytes.Equal(back, sent))
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	conn.Close()

	n, conn, err = handshakeBytes(t, alice, addr, paddingCert(t, len(pad)+1024))
	if err == nil {
		// TLS 1.3: the client's handshake ends with its own Finished
		// written; the proxy's refusal shows in the next read.
		_, err = conn.Read(make([]byte, 1))
	}
	if err == nil {
		t.Fatalf("alice's handshake over the budget (%d bytes) was let through", n)
	}
	t.Logf("alice's handshake over the budget: %d bytes, then %v", n, err)
	reason := regexp.QuoteMeta(`reason="proxy: the client sent more than the handshake budget of 64 KiB before its handshake completed"`)
	logs.waitFor(t, `level=WARN msg=refused remote=127\.0\.0\.1:\d+ fingerprint="" `+reason+` duration=`)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`keytool_proxy_handshakes_total{reason="handshake_too_large",result="failed"} 1` + "\n",
		fmt.Sprintf(`keytool_proxy_handshakes_total{reason="key",result="admitted"} %d`+"\n", probes+1),
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, rec.Body.String())
		}
	}
}

// TestHandshakeBudgetAdmitsCAChain: a client of PKI mode whose chain is
// as large as real ones get — 20 KiB, the upper end of a chain of
// RSA-4096 CA certificates, carried in two TLS records — is admitted by
// its CA under the handshake budget. The chain's CA certificates carry
// what real ones do (CRL and OCSP addresses, policies, name
// constraints) and are as many as PKI mode takes, 10 with the leaf: more
// than real chains, to be that large. They share one RSA-4096 key, which
// takes seconds to make under the race detector.
func TestHandshakeBudgetAdmitsCAChain(t *testing.T) {
	dir := t.TempDir()
	caKey, err := rsa.GenerateKey(rand.Reader, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var domains []string
	for i := range 20 {
		domains = append(domains, fmt.Sprintf("department-%02d.example.org", i))
	}
	ca := func(i int, parent *x509.Certificate) *x509.Certificate {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)),
			Subject: pkix.Name{Country: []string{"NL"}, Province: []string{"Noord-Holland"}, Locality: []string{"Amsterdam"},
				Organization: []string{"Example Org B.V."}, OrganizationalUnit: []string{"Infrastructure Security"},
				CommonName: fmt.Sprintf("Example Org Issuing CA %d - RSA 4096", i)},
			SubjectKeyId: []byte{byte(i)}, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			CRLDistributionPoints: []string{fmt.Sprintf("http://crl.example.org/ca%d.crl", i), fmt.Sprintf("http://crl2.example.org/ca%d.crl", i)},
			OCSPServer:            []string{"http://ocsp.example.org"}, IssuingCertificateURL: []string{fmt.Sprintf("http://pki.example.org/ca%d.crt", i-1)},
			Policies:            []x509.OID{mustOID(t, "2.23.140.1.2.2"), mustOID(t, "1.3.6.1.4.1.99999.1.2.3")},
			PermittedDNSDomains: domains,
			NotBefore:           time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
		if parent == nil {
			parent = tmpl
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, caKey.Public(), caKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	root := ca(0, nil)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	pki, err := tlsbridge.LoadPKI(tlsbridge.PKIOptions{CA: caFile, Home: dir})
	if err != nil {
		t.Fatal(err)
	}

	srv, carol := newSide(t), newSide(t)
	issuer, intermediates := root, [][]byte(nil)
	for len(intermediates) < 9 {
		issuer = ca(len(intermediates)+1, issuer)
		intermediates = append([][]byte{issuer.Raw}, intermediates...)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "carol"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, issuer, carol.id.Key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	var chain []byte
	for _, c := range append([][]byte{der}, intermediates...) {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	if carol.id, err = tlsbridge.NewIdentityWithChain(carol.id.Key, "cert.pem", chain); err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, c := range carol.id.Certificate.Certificate {
		size += len(c)
	}

	_, addr, logs, _ := startServer(t, srv, longEchoTarget(t), ServerOptions{TLS: srv.tlsServer(t, tlsbridge.ServerOptions{PKI: pki})})
	carol.pin(t, addr, srv)
	n, conn, err := handshakeBytes(t, carol, addr, nil)
	if err != nil {
		t.Fatalf("carol, a chain of %d certificates and %d bytes: %v", len(carol.id.Certificate.Certificate), size, err)
	}
	t.Logf("carol's chain: %d certificates, %d bytes; her handshake %d bytes", len(carol.id.Certificate.Certificate), size, n)
	if size < 18<<10 {
		t.Fatalf("carol's chain is %d bytes; the test wants one of about 20 KiB", size)
	}
	if got, err := exchange(conn, "hello"); err != nil || got != "hello" {
		t.Fatalf("carol's echo: %q, %v\n%s", got, err, logs.String())
	}
	logs.waitFor(t, `msg=accepted .* via=ca subject="CN=carol"`)
}

func mustOID(t *testing.T, s string) x509.OID {
	t.Helper()
	oid, err := x509.ParseOID(s)
	if err != nil {
		t.Fatal(err)
	}
	return oid
}
