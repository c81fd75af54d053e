package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/keytool/keytool/tlsbridge"
)

// TestLiveRevocationCRL: a client admitted by its CA (PKI mode) holds a
// connection open through a server-mode proxy; its CA publishes a CRL
// that revokes its certificate: the connection ends within two seconds
// (tlsbridge.PKI reads its files at most once a second, and the proxy
// decides again every second), while a client admitted by its key still
// echoes.
func TestLiveRevocationCRL(t *testing.T) {
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Example Org CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	caFile, crlFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "crl.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	writeCRL := func(revoked ...*big.Int) {
		var entries []x509.RevocationListEntry
		for _, sn := range revoked {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: sn, RevocationTime: time.Now()})
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(time.Now().UnixNano()),
			ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: entries}, caCert, caKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(crlFile, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeCRL()
	pki, err := tlsbridge.LoadPKI(tlsbridge.PKIOptions{CA: caFile, CRL: crlFile, Home: dir})
	if err != nil {
		t.Fatal(err)
	}

	srv, carol, bob := newSide(t), newSide(t), newSide(t)
	srv.authorize(t, "bob", bob)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "carol"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err = x509.CreateCertificate(rand.Reader, leaf, caCert, carol.id.Key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	if carol.id, err = tlsbridge.NewIdentityWithChain(carol.id.Key, "cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); err != nil {
		t.Fatal(err)
	}
	_, addr, logs, _ := startServer(t, srv, longEchoTarget(t), ServerOptions{TLS: srv.tlsServer(t, tlsbridge.ServerOptions{PKI: pki}), Store: srv.auth})
	carol.pin(t, addr, srv)
	bob.pin(t, addr, srv)

	s := holdOpen(t, "carol's stream", dialTLS(t, carol, addr))
	logs.waitFor(t, `msg=accepted .* via=ca subject="CN=carol"`)
	bobConn := dialTLS(t, bob, addr)
	echo(t, "bob's stream", bobConn)

	writeCRL(big.NewInt(42))
	took := s.endedWithin(t, time.Now(), 2*time.Second+500*time.Millisecond)
	t.Logf("carol's stream ended %v after the CRL was written", took)
	logs.waitFor(t, `level=WARN msg="closing: key no longer admitted" remote=127\.0\.0\.1:\d+ fingerprint=`+regexp.QuoteMeta(carol.id.Key.Fingerprint())+` name="" via=ca subject="CN=carol" reason=`)
	echo(t, "bob's stream after the CRL", bobConn)
}
