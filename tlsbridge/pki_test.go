package tlsbridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// testCA is an organisation's CA, writing ca.pem and crl.pem in dir.
type testCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	serial int64
	dir    string
}

func newCA(t testing.TB) *testCA { return newNamedCA(t, "Example Org CA") }

// newNamedCA is newCA with another common name.
func newNamedCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, serial: 100, dir: t.TempDir()}
	if err := os.Chmod(ca.dir, 0o700); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := os.WriteFile(ca.caFile(), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	ca.writeCRL(t)
	return ca
}

func (ca *testCA) caFile() string  { return filepath.Join(ca.dir, "ca.pem") }
func (ca *testCA) crlFile() string { return filepath.Join(ca.dir, "crl.pem") }

// issue makes a certificate for k, valid for 127.0.0.1, with the extra
// extensions, and returns the identity that presents it.
func (ca *testCA) issue(t testing.TB, k *jwk.Key, extra ...pkix.Extension) *Identity {
	t.Helper()
	return ca.issueFor(t, k, nil, []net.IP{net.ParseIP("127.0.0.1")}, extra...)
}

// issueFor is issue for the DNS names and IP addresses given.
func (ca *testCA) issueFor(t testing.TB, k *jwk.Key, names []string, ips []net.IP, extra ...pkix.Extension) *Identity {
	t.Helper()
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: "host"},
		DNSNames: names, IPAddresses: ips, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		ExtraExtensions: extra}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, k.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	id, err := NewIdentityWithChain(k, "cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// writeCRL publishes a CRL revoking the given certificates. The file's
// modification time moves forward so that the PKI notices the change.
func (ca *testCA) writeCRL(t testing.TB, revoked ...*Identity) {
	t.Helper()
	var entries []x509.RevocationListEntry
	for _, id := range revoked {
		entries = append(entries, x509.RevocationListEntry{SerialNumber: id.Certificate.Leaf.SerialNumber, RevocationTime: time.Now()})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()), ThisUpdate: time.Now().Add(-time.Minute),
		NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: entries}, ca.cert, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca.crlFile(), pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Duration(len(revoked)+1) * time.Minute)
	_ = os.Chtimes(ca.crlFile(), future, future)
}

func (ca *testCA) pki(t *testing.T) *PKI {
	t.Helper()
	p, err := LoadPKI(PKIOptions{CA: ca.caFile(), CRL: ca.crlFile(), Home: ca.dir})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// seed 000, "Adding a remote with a PKI based setup": the CA issues the
// client certificates; a CRL may accompany the CA; pins come first.
func TestPKIModeServer(t *testing.T) {
	ca := newCA(t)
	srv := newHome(t, jwk.EC256)
	pki := ca.pki(t)
	ts := startServer(t, srv, ServerOptions{PKI: pki})
	cli := newHome(t, jwk.EC256)
	cli.id = ca.issue(t, cli.id.Key) // the client presents its CA-issued certificate
	cli.pin(t, ts.addr(), srv.id.Key)

	if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{}), ts.addr())); err != nil {
		t.Fatalf("a client with a CA-issued certificate was refused: %v", err)
	}
	if p := ts.lastPeer(t); !p.ViaCA || p.Entry != nil {
		t.Errorf("peer admitted via CA = %v, entry = %v", p.ViaCA, p.Entry)
	}
	// Revoked by the CRL: refused from the next handshake (the PKI rereads
	// its files at most once a second).
	ca.writeCRL(t, cli.id)
	pki.checkedAt.Store(0)
	refused(t, ts, mustConfig(t, cli.client(t, ClientOptions{}), ts.addr()))

	// A certificate from another CA is refused.
	other := newHome(t, jwk.EC256)
	other.id = newCA(t).issue(t, other.id.Key)
	other.pin(t, ts.addr(), srv.id.Key)
	refused(t, ts, mustConfig(t, other.client(t, ClientOptions{}), ts.addr()))

	// Pins come first: a revoked key is refused even with a valid CA certificate.
	good := newHome(t, jwk.EC256)
	good.id = ca.issue(t, good.id.Key)
	good.pin(t, ts.addr(), srv.id.Key)
	if _, err := roundTrip(ts.addr(), mustConfig(t, good.client(t, ClientOptions{}), ts.addr())); err != nil {
		t.Fatalf("valid CA client refused: %v", err)
	}
	srv.revoke(t, good.id.Key)
	refused(t, ts, mustConfig(t, good.client(t, ClientOptions{}), ts.addr()))
}

// seed 000, "Adding a remote with a PKI based setup": "If the server
// certificate is valid and signed by the CA, then the connection continues
// without prompting the user"; "if it has been revoked, the connection
// will simply fail with no obvious way for the user to bypass this".
func TestPKIModeClient(t *testing.T) {
	ca := newCA(t)
	cli := newHome(t, jwk.EC256)
	srv := newHome(t, jwk.EC256)
	srv.id = ca.issue(t, srv.id.Key)
	srv.authorize(t, "client", cli.id.Key)
	ts := startServer(t, srv, ServerOptions{})
	pki := ca.pki(t)
	noPrompt := PromptFunc(func(UnknownHost) (Answer, error) {
		t.Error("PKI mode asked the prompt")
		return Yes, nil
	})
	cfg := func() *tls.Config {
		return mustConfig(t, cli.client(t, ClientOptions{PKI: pki, Policy: Ask, Prompt: noPrompt}), ts.addr())
	}
	if _, err := roundTrip(ts.addr(), cfg()); err != nil {
		t.Fatalf("a server with a CA-issued certificate was refused: %v", err)
	}
	if files := pinFiles(t, cli); len(files) != 0 {
		t.Errorf("PKI mode pinned the host: %v", files)
	}
	ca.writeCRL(t, srv.id)
	pki.checkedAt.Store(0)
	_, err := roundTrip(ts.addr(), cfg())
	var revoked *RevokedCertificateError
	if !errors.As(err, &revoked) {
		t.Fatalf("revoked server certificate: err = %v, want *RevokedCertificateError", err)
	}
	// A host name the certificate does not name is refused.
	c := cli.client(t, ClientOptions{PKI: pki})
	bad := mustConfig(t, c, ts.addr())
	bad.ServerName = "elsewhere.example"
	ca.writeCRL(t)
	pki.checkedAt.Store(0)
	if _, err := roundTrip(ts.addr(), bad); err == nil || !strings.Contains(err.Error(), "elsewhere.example") {
		t.Errorf("wrong host name: err = %v", err)
	}
}

func TestIdentityWithChainRefusesAnotherKey(t *testing.T) {
	ca := newCA(t)
	a, b := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	id := ca.issue(t, a)
	_, err := NewIdentityWithChain(b, "cert.pem", id.CertificatePEM())
	if err == nil || !strings.Contains(err.Error(), "cert.pem is a certificate for key "+a.Fingerprint()) || !strings.Contains(err.Error(), b.Fingerprint()) {
		t.Fatalf("err = %v", err)
	}
}

func TestPKIUnreadableCRLFailsClosed(t *testing.T) {
	ca := newCA(t)
	pki := ca.pki(t)
	id := ca.issue(t, mustGenerate(t, jwk.EC256))
	if err := pki.Verify([]*x509.Certificate{id.Certificate.Leaf}, x509.ExtKeyUsageClientAuth, ""); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca.crlFile(), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	_ = os.Chtimes(ca.crlFile(), future, future)
	pki.checkedAt.Store(0)
	if err := pki.Verify([]*x509.Certificate{id.Certificate.Leaf}, x509.ExtKeyUsageClientAuth, ""); err == nil {
		t.Fatal("an unreadable CRL let a certificate through")
	}
}
