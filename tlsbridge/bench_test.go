package tlsbridge

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// The handshake benchmarks measure full mutual-TLS handshakes over
// loopback (TCP connect, TLS 1.3 handshake with client certificates, close),
// client and server in this process:
//
//	impl=keytool    keytool's pinned configs (tlsbridge.Server/Client)
//	impl=stdlib-ca  Go's standard mutual TLS: CA-issued certificates of the
//	                same key type, RequireAndVerifyClientCert, RootCAs
//
// Compare the two in the same run (docs/benchmarks.md); absolute times
// depend on the machine. keys=N puts N authorized keys in the server's
// store; keytool must be as fast with 1,000,000 as with 1.
//
//	go test -run '^$' -bench Handshake -benchtime 2s -count 6 ./tlsbridge
func BenchmarkHandshake(b *testing.B) {
	for _, typ := range []jwk.Type{jwk.EC256, jwk.Ed25519, jwk.RSA2048} {
		b.Run(fmt.Sprintf("type=%s/impl=stdlib-ca", typ), func(b *testing.B) {
			srvCfg, cliCfg := stdlibConfigs(b, typ)
			benchHandshakes(b, srvCfg, cliCfg)
		})
		b.Run(fmt.Sprintf("type=%s/impl=keytool/keys=1", typ), func(b *testing.B) {
			srvCfg, cliCfg := keytoolConfigs(b, typ, 0)
			benchHandshakes(b, srvCfg, cliCfg)
		})
	}
	for _, n := range []int{10_000, 1_000_000} {
		if n > 10_000 && testing.Short() {
			continue
		}
		b.Run(fmt.Sprintf("type=ec256/impl=keytool/keys=%d", n), func(b *testing.B) {
			srvCfg, cliCfg := keytoolConfigs(b, jwk.EC256, n-1)
			benchHandshakes(b, srvCfg, cliCfg)
		})
	}
}

// benchHandshakes runs full handshakes, sequentially and from two
// parallel clients.
func benchHandshakes(b *testing.B, srvCfg *tls.Config, cliCfg func(addr string) *tls.Config) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() { ln.Close(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = c.(*tls.Conn).Handshake()
				// Wait for the client's close: in TLS 1.3 the server
				// verifies the client's certificate after the client's
				// handshake returns.
				var buf [1]byte
				_, _ = c.Read(buf[:])
				c.Close()
			}()
		}
	}()
	addr := ln.Addr().String()
	cfg := cliCfg(addr)
	one := func() error {
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			return err
		}
		// A one-byte write and the server's close make the client wait
		// until the server has verified the client's certificate.
		if _, err := c.Write([]byte{0}); err != nil {
			c.Close()
			return err
		}
		var buf [1]byte
		_, _ = c.Read(buf[:])
		return c.Close()
	}
	if err := one(); err != nil {
		b.Fatal(err)
	}
	b.Run("mode=seq", func(b *testing.B) {
		for b.Loop() {
			if err := one(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mode=par2", func(b *testing.B) {
		b.SetParallelism(1) // GOMAXPROCS clients: 2 on the reference machine
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := one(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// keytoolConfigs returns keytool's server config, with the client's key
// and extra other keys authorized, and a client config maker.
func keytoolConfigs(b *testing.B, typ jwk.Type, extra int) (*tls.Config, func(string) *tls.Config) {
	dir := b.TempDir()
	srvKey, cliKey := mustGenerate(b, typ), mustGenerate(b, typ)
	authDir := filepath.Join(dir, "server", "authorized_keys.d")
	if err := os.MkdirAll(authDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(filepath.Join(authDir, "client.json"), cliKey, jwk.JWK, jwk.CreateNew); err != nil {
		b.Fatal(err)
	}
	writeFillerKeys(b, authDir, extra)
	start := time.Now()
	store := authkeys.Load(authkeys.HomeOptions(filepath.Join(dir, "server")))
	if got := len(store.Entries()); got != extra+1 {
		b.Fatalf("store holds %d keys, want %d (problems: %v)", got, extra+1, store.Problems())
	}
	if extra > 0 {
		b.Logf("loaded %d keys in %v", extra+1, time.Since(start))
	}
	srvID, _ := NewIdentity(srvKey, CertOptions{})
	srv, err := NewServer(srvID, ServerOptions{Clients: store})
	if err != nil {
		b.Fatal(err)
	}
	cliID, _ := NewIdentity(cliKey, CertOptions{})
	return srv.TLSConfig(), func(addr string) *tls.Config {
		cli, err := NewClient(cliID, ClientOptions{Hosts: staticHost{addr: addr, key: srvKey}})
		if err != nil {
			b.Fatal(err)
		}
		return mustConfig(b, cli, addr)
	}
}

// staticHost pins one key for one address: the client side's lookup is
// not what these benchmarks compare.
type staticHost struct {
	addr string
	key  *jwk.Key
}

func (h staticHost) Decide(addr string, sum [32]byte) knownhosts.Decision {
	if addr == h.addr && sum == h.key.SPKIHash() {
		return knownhosts.Decision{Verdict: knownhosts.Pinned}
	}
	return knownhosts.Decision{Verdict: knownhosts.Changed, Err: fmt.Errorf("host %s: unexpected key", addr)}
}

func (staticHost) Add(string, *jwk.Key) (string, error) { return "", fmt.Errorf("read-only") }

// writeFillerKeys writes n distinct Ed25519 public keys as JWK Sets of
// 50,000 keys. Random 32-byte strings serve: they are well-formed Ed25519
// public keys as far as parsing goes, and making them costs nothing.
func writeFillerKeys(b *testing.B, dir string, n int) {
	const perFile = 50_000
	for f := 0; n > 0; f++ {
		var sb strings.Builder
		sb.WriteString(`{"keys":[`)
		var x [32]byte
		for i := 0; i < min(n, perFile); i++ {
			_, _ = rand.Read(x[:])
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"kty":"OKP","crv":"Ed25519","x":"%s"}`, base64.RawURLEncoding.EncodeToString(x[:]))
		}
		sb.WriteString("]}")
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("filler-%03d.json", f)), []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		n -= perFile
	}
}

// stdlibConfigs returns Go's standard CA-based mutual TLS: a CA of key
// type typ issues the server's and the client's certificates.
func stdlibConfigs(b *testing.B, typ jwk.Type) (*tls.Config, func(string) *tls.Config) {
	caKey := mustGenerate(b, typ)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey.Signer())
	if err != nil {
		b.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	issue := func(serial int64, usage x509.ExtKeyUsage) tls.Certificate {
		k := mustGenerate(b, typ)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey.Signer())
		if err != nil {
			b.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k.Signer()}
	}
	srv := &tls.Config{Certificates: []tls.Certificate{issue(2, x509.ExtKeyUsageServerAuth)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	cli := issue(3, x509.ExtKeyUsageClientAuth)
	return srv, func(string) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{cli}, RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	}
}
