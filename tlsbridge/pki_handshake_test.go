package tlsbridge

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// deepIdentity is k's identity with a chain of n certificates in all: a
// leaf (for 127.0.0.1) signed by the last of n-2 intermediates, each
// signed by the one before, the first by root, and root itself — a valid
// chain of n certificates as the peer sends it.
func deepIdentity(t *testing.T, k *jwk.Key, root *pkiCert, n int) *Identity {
	t.Helper()
	var rest []byte
	parent := root
	for i := 0; i < n-2; i++ {
		parent = pkiIssue(t, "Level "+string(rune('A'+i))+" CA", true, parent)
		rest = append(pkiPEM(parent), rest...)
	}
	pkiSerial++
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(pkiSerial), Subject: pkix.Name{CommonName: "peer"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}},
		parent.cert, k.Public(), parent.key)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), rest...), pkiPEM(root)...)
	id, err := NewIdentityWithChain(k, "cert.pem", chain)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(id.Certificate.Certificate); got != n {
		t.Fatalf("the identity sends %d certificates, want %d", got, n)
	}
	return id
}

// MaxPeerChain through real handshakes on 127.0.0.1: a valid chain of
// MaxPeerChain certificates is admitted by its CA, one of MaxPeerChain+1
// refused before it is verified (*PeerChainTooLongError in a
// *CARefusedError) — a client by the server, a server by the client.
func TestPeerChainBoundHandshake(t *testing.T) {
	root := pkiIssue(t, "Deep Root", true, nil)
	dir := pkiDir(t)
	pkiWrite(t, filepath.Join(dir, "ca.pem"), pkiPEM(root))
	p, err := LoadPKI(PKIOptions{CA: filepath.Join(dir, "ca.pem"), Home: dir})
	if err != nil {
		t.Fatal(err)
	}
	tooLong := func(err error) bool {
		var long *PeerChainTooLongError
		return isA[*CARefusedError](err) && errors.As(err, &long) && long.Certificates == MaxPeerChain+1
	}

	srv := newHome(t, jwk.EC256)
	rs := startRecording(t, mustServer(t, srv, ServerOptions{PKI: p}))
	for _, n := range []int{MaxPeerChain, MaxPeerChain + 1} {
		cli := newHome(t, jwk.EC256)
		cli.id = deepIdentity(t, cli.id.Key, root, n)
		cli.pin(t, rs.addr(), srv.id.Key)
		cfg := mustConfig(t, cli.client(t, ClientOptions{}), rs.addr())
		if n <= MaxPeerChain {
			rs.admitted(t, cfg, "a client sending a valid chain of MaxPeerChain certificates")
		} else {
			rs.refusedWith(t, cfg, "a client sending MaxPeerChain+1 certificates", tooLong)
		}
	}

	for _, n := range []int{MaxPeerChain, MaxPeerChain + 1} {
		cli := newHome(t, jwk.EC256)
		host := newHome(t, jwk.EC256)
		host.id = deepIdentity(t, host.id.Key, root, n)
		host.authorize(t, "client", cli.id.Key)
		ts := startServer(t, host, ServerOptions{})
		_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{PKI: p, Policy: Strict}), ts.addr()))
		if n <= MaxPeerChain && err != nil {
			t.Errorf("a server sending a valid chain of MaxPeerChain certificates: %v", err)
		}
		if n > MaxPeerChain && !tooLong(err) {
			t.Errorf("a server sending MaxPeerChain+1 certificates: err = %v, want *CARefusedError wrapping *PeerChainTooLongError", err)
		}
	}
}
