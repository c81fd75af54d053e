package bench

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/libtrust"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/bench/internal/fixturekeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// types are the key types compared, with libtrust's generator where it
// has one (it has no Ed25519).
var types = []jwk.Type{jwk.EC256, jwk.Ed25519, jwk.RSA2048}

// clientKeys are the client keys, one per type, shared by every store of
// the process so that one store of N keys serves every type.
var (
	ckMu       sync.Mutex
	clientKeys = map[jwk.Type]*jwk.Key{}
	serverKeys = map[jwk.Type]*jwk.Key{}
)

func clientKey(tb testing.TB, t jwk.Type) *jwk.Key {
	ckMu.Lock()
	defer ckMu.Unlock()
	if clientKeys[t] == nil {
		clientKeys[t], serverKeys[t] = mustGenerate(tb, t), mustGenerate(tb, t)
	}
	return clientKeys[t]
}

func serverKey(tb testing.TB, t jwk.Type) *jwk.Key {
	clientKey(tb, t)
	return serverKeys[t]
}

// server runs a TLS listener on 127.0.0.1 whose connections do a
// handshake, wait for the client's byte and close.
type server struct {
	ln net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	lastErr error // the last failed server-side handshake's error
}

func (s *server) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastErr
}

func serve(tb testing.TB, cfg *tls.Config) *server {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		tb.Fatal(err)
	}
	s := &server{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					s.mu.Lock()
					s.lastErr = err
					s.mu.Unlock()
				}
				// In TLS 1.3 the server verifies the client's certificate
				// after the client's handshake returns: the client's byte
				// and this close make the client wait for the verdict.
				var buf [1]byte
				_, _ = c.Read(buf[:])
				c.Close()
			}()
		}
	}()
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) close() { s.ln.Close(); s.wg.Wait() }

// handshake does one full exchange: dial, handshake, one byte, the
// server's verdict (its close, or an alert), close. It reports whether
// the session was resumed.
func handshake(addr string, cfg *tls.Config) (resumed bool, err error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(&d, "tcp", addr, cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte{0}); err != nil {
		return false, err
	}
	var buf [1]byte
	if _, err := c.Read(buf[:]); err != nil && !errors.Is(err, net.ErrClosed) && err.Error() != "EOF" {
		return false, err
	}
	return c.ConnectionState().DidResume, nil
}

// runHandshakes measures handshakes with cfg, sequentially or from
// GOMAXPROCS (2 on the reference machine) parallel clients.
//
// Besides wall time it reports cpu-ns/op: the CPU time of this process
// (client and server, user and system) per handshake. On a shared machine
// other jobs stretch wall time but hardly the CPU a handshake costs, so
// the report compares implementations on it too.
func runHandshakes(b *testing.B, addr string, cfg *tls.Config, parallel bool) {
	defer cpuPerOp(b)()
	if !parallel {
		for b.Loop() {
			if _, err := handshake(addr, cfg); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(1)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := handshake(addr, cfg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// keytoolStore returns an authkeys store with the client key of type
// only (n = 1), or with the client key of every type and the n fixture
// keys of setsDir(n) (n > 1: n+3 keys), loaded once per process; and how
// long the load took.
var (
	storeMu sync.Mutex
	stores  = map[string]*authkeys.Store{}
)

func keytoolStore(tb testing.TB, n int, only jwk.Type) (*authkeys.Store, time.Duration) {
	clients := types
	if n == 1 {
		clients = []jwk.Type{only}
	}
	name := fmt.Sprintf("clients-%v", clients)
	storeMu.Lock()
	defer storeMu.Unlock()
	key := fmt.Sprintf("%s-%d", name, n)
	if s := stores[key]; s != nil {
		return s, 0
	}
	opts := authkeys.Options{Dirs: []string{fixture(tb, name, func(d string) error {
		for _, t := range clients {
			if err := jwk.WritePublicKeyFile(filepath.Join(d, "client-"+string(t)+".json"), clientKey(tb, t), jwk.JWK, jwk.CreateNew); err != nil {
				return err
			}
		}
		return nil
	})}}
	want := len(clients)
	if n > 1 {
		opts.Dirs = append(opts.Dirs, setsDir(tb, n))
		want += n
	}
	start := time.Now()
	s := authkeys.Load(opts)
	took := time.Since(start)
	if got := len(s.Entries()); got != want {
		tb.Fatalf("store holds %d keys, want %d (problems: %v)", got, want, s.Problems())
	}
	stores[key] = s
	return s, took
}

// keytoolPair returns keytool's server config (clients from store) and a
// client config maker for key type t.
func keytoolPair(tb testing.TB, t jwk.Type, store tlsbridge.ClientKeys) (*tls.Config, func(addr string) *tls.Config) {
	srvID, err := tlsbridge.NewIdentity(serverKey(tb, t), tlsbridge.CertOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := tlsbridge.NewServer(srvID, tlsbridge.ServerOptions{Clients: store})
	if err != nil {
		tb.Fatal(err)
	}
	return srv.TLSConfig(), func(addr string) *tls.Config {
		return keytoolClient(tb, clientKey(tb, t), serverKey(tb, t), addr)
	}
}

// keytoolClient returns keytool's client config for key k, pinning srvKey
// for addr in a real known_hosts store.
func keytoolClient(tb testing.TB, k, srvKey *jwk.Key, addr string) *tls.Config {
	cliID, err := tlsbridge.NewIdentity(k, tlsbridge.CertOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	{
		home := tb.TempDir()
		hosts := knownhosts.Load(knownhosts.HomeOptions(home))
		if _, err := hosts.Add(addr, srvKey.PublicKey()); err != nil {
			tb.Fatal(err)
		}
		cli, err := tlsbridge.NewClient(cliID, tlsbridge.ClientOptions{Hosts: hosts})
		if err != nil {
			tb.Fatal(err)
		}
		cfg, err := cli.TLSConfig(addr)
		if err != nil {
			tb.Fatal(err)
		}
		return cfg
	}
}

// stdlibPair returns Go's standard CA-based mutual TLS: a CA of key type
// t issues the server's and the client's certificates.
func stdlibPair(tb testing.TB, t jwk.Type) (*tls.Config, func(string) *tls.Config) {
	caKey := mustGenerate(tb, t)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey.Signer())
	if err != nil {
		tb.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	issue := func(serial int64, usage x509.ExtKeyUsage) tls.Certificate {
		k := mustGenerate(tb, t)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, k.Public(), caKey.Signer())
		if err != nil {
			tb.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k.Signer()}
	}
	srv := &tls.Config{Certificates: []tls.Certificate{issue(2, x509.ExtKeyUsageServerAuth)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	cli := issue(3, x509.ExtKeyUsageClientAuth)
	return srv, func(string) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{cli}, RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	}
}

// libtrustKey converts a keytool private key into libtrust's (EC and RSA
// only: libtrust has no Ed25519).
func libtrustKey(tb testing.TB, k *jwk.Key) libtrust.PrivateKey {
	lk, err := libtrust.FromCryptoPrivateKey(k.Signer())
	if err != nil {
		tb.Fatal(err)
	}
	return lk
}

// libtrustPair builds libtrust's server config the way Docker's proposal
// does — NewClientKeyManager over authorized_keys.d, NewIdentityAuthTLSConfig
// (GenerateCACertPool of the client keys as ClientCAs,
// RequireAndVerifyClientCert) — and a client with libtrust's self-signed
// client certificate and a GenerateCACertPool of the server's key as
// RootCAs, as NewIdentityAuthTLSClientConfig makes it. extra P-256 keys
// are authorized besides the client's.
func libtrustPair(tb testing.TB, t jwk.Type, extra int) (srv *tls.Config, cli func(string) *tls.Config, poolTime time.Duration) {
	srvKey, cliKey := libtrustKey(tb, serverKey(tb, t)), libtrustKey(tb, clientKey(tb, t))
	dir := filepath.Join(tb.TempDir(), "authorized_keys.d")
	os.MkdirAll(dir, 0o755)
	if err := libtrust.SavePublicKey(filepath.Join(dir, "client.json"), cliKey.PublicKey()); err != nil {
		tb.Fatal(err)
	}
	if extra > 0 {
		for i, k := range fixturekeys.JWKs(extra) {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("k%07d.json", i)), []byte(k), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	start := time.Now()
	mgr, err := libtrust.NewClientKeyManager(srvKey, "", dir)
	if err != nil {
		tb.Fatal(err)
	}
	srv, err = libtrust.NewIdentityAuthTLSConfig(srvKey, mgr, "127.0.0.1:0", "localhost")
	if err != nil {
		tb.Fatal(err)
	}
	poolTime = time.Since(start)
	cert, err := libtrust.GenerateSelfSignedClientCert(cliKey)
	if err != nil {
		tb.Fatal(err)
	}
	roots, err := libtrust.GenerateCACertPool(cliKey, []libtrust.PublicKey{srvKey.PublicKey()})
	if err != nil {
		tb.Fatal(err)
	}
	return srv, func(string) *tls.Config {
		return &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: cliKey.CryptoPrivateKey(), Leaf: cert}},
			RootCAs:      roots, ServerName: "127.0.0.1",
		}
	}, poolTime
}

// cpuPerOp starts measuring the process's CPU time; the function it
// returns reports it per operation as cpu-ns/op.
func cpuPerOp(b *testing.B) func() {
	start, gc := cpuTime(), gcCPU()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(gcCPU()-gc)/float64(b.N), "gc-cpu-ns/op")
		}
	}
}

// gcCPU is the CPU time the garbage collector has used in this process,
// in ns (runtime/metrics' estimate): its dedicated workers, the marking
// it makes allocating goroutines do, and its pauses — the share of
// cpu-ns/op that a larger heap to mark raises. Not its idle-priority
// marking: that runs only on a P with nothing else to do, and the
// estimate counts the P's whole time even when the system gives it no
// CPU (on a busy machine it exceeded the process's CPU time).
func gcCPU() int64 {
	s := []metrics.Sample{
		{Name: "/cpu/classes/gc/mark/assist:cpu-seconds"},
		{Name: "/cpu/classes/gc/mark/dedicated:cpu-seconds"},
		{Name: "/cpu/classes/gc/pause:cpu-seconds"},
	}
	metrics.Read(s)
	var sum float64
	for _, x := range s {
		if x.Value.Kind() == metrics.KindFloat64 {
			sum += x.Value.Float64()
		}
	}
	return int64(sum * 1e9)
}

// cpuTime is the user + system CPU time of this process, in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
