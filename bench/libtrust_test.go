package bench

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/libtrust"
	"github.com/keytool/keytool/jwk"
)

// note appends a line to $BENCH_OUT/notes.txt (tab-separated: key, value)
// for the report: facts that are not timings, such as libtrust's errors.
func note(tb testing.TB, key, format string, args ...any) {
	msg := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
	tb.Logf("%s: %s", key, msg)
	dir := os.Getenv("BENCH_OUT")
	if dir == "" {
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, "notes.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintf(f, "%s\t%s\n", key, msg)
}

// BenchmarkLibtrustHandshake tries libtrust's two server paths on the
// current Go, with libtrust's own client side:
//
//	path=identity   NewClientKeyManager + NewIdentityAuthTLSConfig: ClientCAs is
//	                GenerateCACertPool of the authorized keys (a CA certificate per
//	                key, signed by the server's key), RequireAndVerifyClientCert
//	path=certauth   NewCertAuthTLSConfig with a CA file holding GenerateCACert of
//	                the client's key (the bundle Docker would hand to other tools)
//
// The client presents GenerateSelfSignedClientCert and trusts
// GenerateCACertPool of the server's key, as NewIdentityAuthTLSClientConfig
// does. Where the handshake fails, the server's and the client's errors are
// recorded in notes.txt (BenchmarkHandshake times the variant that works).
//
//	go test -run '^$' -bench LibtrustHandshake -benchtime 1s
func BenchmarkLibtrustHandshake(b *testing.B) {
	var completed, failed float64
	count := func(ok bool) {
		if ok {
			completed++
		} else {
			failed++
		}
	}
	for _, t := range types {
		if _, err := libtrust.FromCryptoPrivateKey(clientKey(b, t).Signer()); err != nil {
			note(b, fmt.Sprintf("libtrust/%s/unsupported", t), "%v", err)
			continue
		}
		for _, extra := range []int{0, 999} {
			srv, cli, poolTime := libtrustPair(b, t, extra)
			name := fmt.Sprintf("type=%s/path=identity/keys=%d", t, extra+1)
			note(b, "libtrust/"+name+"/pool-ms", "%.3f", float64(poolTime)/1e6)
			note(b, "libtrust/"+name+"/certificate-request-names", "%d names, %d bytes", len(srv.ClientCAs.Subjects()), subjectBytes(srv.ClientCAs.Subjects()))
			count(libtrustAttempt(b, name, srv, cli))
		}
		// Control: the same server, and a client leaf whose subject differs
		// from the subject of the CA certificate libtrust made for its key
		// (issuer unchanged). If this completes, the failure above is
		// crypto/x509's rule against a CA identical to the leaf.
		for _, extra := range []int{0, 879, 999} {
			srv, _, _ := libtrustPair(b, t, extra)
			count(libtrustAttempt(b, fmt.Sprintf("type=%s/path=identity-distinct-leaf/keys=%d", t, extra+1), srv, distinctLeafClient(b, t)))
		}
		srv, cli := libtrustCertAuth(b, t)
		count(libtrustAttempt(b, fmt.Sprintf("type=%s/path=certauth/keys=1", t), srv, cli))
	}
	b.Run("summary", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(completed, "completed")
		b.ReportMetric(failed, "failed")
	})
}

func subjectBytes(s [][]byte) int {
	n := 0
	for _, x := range s {
		n += len(x)
	}
	return n
}

// libtrustAttempt does one handshake and records how it went.
func libtrustAttempt(b *testing.B, name string, srvCfg *tls.Config, cli func(string) *tls.Config) bool {
	s := serve(b, srvCfg)
	defer s.close()
	cfg := cli(s.addr())
	_, cerr := handshake(s.addr(), cfg)
	time.Sleep(20 * time.Millisecond) // let the server goroutine record its error
	serr := s.err()
	if cerr == nil && serr == nil {
		note(b, "libtrust/"+name+"/result", "handshake completed")
		return true
	}
	note(b, "libtrust/"+name+"/result", "handshake failed")
	note(b, "libtrust/"+name+"/server-error", "%v", serr)
	note(b, "libtrust/"+name+"/client-error", "%v", cerr)
	return false
}

// libtrustCertAuth builds NewCertAuthTLSConfig's server from files: the
// server's self-signed certificate and key, and a CA file with the
// client's libtrust CA certificate.
func libtrustCertAuth(b *testing.B, t jwk.Type) (*tls.Config, func(string) *tls.Config) {
	srvKey, cliKey := libtrustKey(b, serverKey(b, t)), libtrustKey(b, clientKey(b, t))
	dir := b.TempDir()
	ca, err := libtrust.GenerateCACert(srvKey, cliKey.PublicKey())
	if err != nil {
		b.Fatal(err)
	}
	cert, err := libtrust.GenerateSelfSignedServerCert(srvKey, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		b.Fatal(err)
	}
	keyBlock, err := srvKey.PEMBlock()
	if err != nil {
		b.Fatal(err)
	}
	keyBlock.Headers = nil // libtrust's headers (keyID) are not for crypto/tls
	files := map[string][]byte{
		"ca.pem":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		"cert.pem": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		"key.pem":  pem.EncodeToMemory(keyBlock),
	}
	for n, d := range files {
		if err := os.WriteFile(filepath.Join(dir, n), d, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	srv, err := libtrust.NewCertAuthTLSConfig(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		b.Fatal(err)
	}
	_, cli, _ := libtrustPair(b, t, 0)
	return srv, cli
}

// distinctLeafClient is libtrust's client, except that its self-signed
// certificate's subject is "<key ID> leaf" (its issuer stays "<key ID>").
func distinctLeafClient(b *testing.B, t jwk.Type) func(string) *tls.Config {
	_, cli, _ := libtrustPair(b, t, 0)
	cliKey := libtrustKey(b, clientKey(b, t))
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cliKey.KeyID() + " leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	parent := &x509.Certificate{Subject: pkix.Name{CommonName: cliKey.KeyID()}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, cliKey.CryptoPublicKey(), cliKey.CryptoPrivateKey())
	if err != nil {
		b.Fatal(err)
	}
	return func(addr string) *tls.Config {
		c := cli(addr)
		c.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: cliKey.CryptoPrivateKey()}}
		return c
	}
}
