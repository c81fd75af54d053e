package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/keytool/keytool/internal/scripttest"
)

// TestTLSAndAuth runs testdata/tls/*.txt against an embedded etcd that
// serves TLS only, asks for a client certificate signed by its CA, and
// has authentication on (user root, password in $WORK's copy of the
// password file): the connection flags as an administrator uses them.
// $CERTS holds ca.pem, client.pem, client-key.pem, other-ca.pem.
func TestTLSAndAuth(t *testing.T) {
	certs := t.TempDir()
	writeCerts(t, certs)
	host := startEtcd(t, &transport.TLSInfo{
		CertFile: filepath.Join(certs, "server.pem"), KeyFile: filepath.Join(certs, "server-key.pem"),
		TrustedCAFile: filepath.Join(certs, "ca.pem"), ClientCertAuth: true,
	})
	enableAuth(t, host, certs)
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/tls",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			env.Setenv("ETCD", host)
			env.Setenv("CERTS", certs)
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"mode": scripttest.Mode},
	})
}

// tlsMember is an embedded etcd member that serves TLS only (no client
// certificate asked): where the tests log in with --etcd-user, which
// etcd:// refuses.
type tlsMember struct {
	addr  string      // host:port
	flags []string    // what reaches it: --etcd-cacert
	tls   *tls.Config // a client's, trusting its CA
}

// startTLSEtcd starts a tlsMember, stopped at the end of the test.
func startTLSEtcd(t testing.TB) tlsMember {
	t.Helper()
	certs := t.TempDir()
	writeCerts(t, certs)
	addr := startEtcd(t, &transport.TLSInfo{CertFile: filepath.Join(certs, "server.pem"), KeyFile: filepath.Join(certs, "server-key.pem")})
	ca, err := os.ReadFile(filepath.Join(certs, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return tlsMember{addr: addr, flags: []string{"--etcd-cacert", filepath.Join(certs, "ca.pem")}, tls: &tls.Config{RootCAs: pool}}
}

// client is a client of the member, as root (password rootpw) if root,
// closed at the end of the test.
func (m tlsMember) client(tb testing.TB, root bool) *clientv3.Client {
	tb.Helper()
	cfg := clientv3.Config{Endpoints: []string{"https://" + m.addr}, TLS: m.tls, DialTimeout: time.Hour, Logger: zap.NewNop()}
	if root {
		cfg.Username, cfg.Password = "root", "rootpw"
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// openStore opens the store etcds://ADDR/kt with the member's flags and
// those given.
func (m tlsMember) openStore(tb testing.TB, flags ...string) *store {
	tb.Helper()
	return openTestStoreAt(tb, "etcds://"+m.addr+"/kt", append(slices.Clone(m.flags), flags...)...)
}

// enableAuth makes user root (password "root-secret") and turns
// authentication on.
func enableAuth(t *testing.T, host, certs string) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(certs, "client.pem"), filepath.Join(certs, "client-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(certs, "ca.pem"))
	pool.AppendCertsFromPEM(ca)
	cl, err := clientv3.New(clientv3.Config{
		Endpoints: []string{"https://" + host}, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		TLS: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cl.UserAdd(ctx, "root", "root-secret"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
}

// writeCerts writes a CA, a server certificate for 127.0.0.1 and a client
// certificate it signed, and another CA, all PEM.
func writeCerts(t testing.TB, dir string) {
	t.Helper()
	ca, caKey := newCert(t, dir, "ca", nil, nil)
	newCert(t, dir, "server", ca, caKey)
	newCert(t, dir, "client", ca, caKey)
	newCert(t, dir, "other-ca", nil, nil)
}

func newCert(t testing.TB, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	switch name {
	case "server":
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	case "client":
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default: // a CA
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
