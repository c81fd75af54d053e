// Command peers measures keytool's proxy against the proxies people would
// otherwise put in front of a server for mutual TLS: nginx (stream,
// ssl_verify_client on), haproxy (verify required), stunnel (verifyPeer)
// and a Go standard-library proxy (crypto/tls and io.Copy, this binary's
// "stdproxy" subcommand). ../../peers/run builds it and runs it; the
// results go to docs/benchmarks.md, section "Peers".
//
// One load client (this process, meant to be pinned to one core) drives
// every server (each started pinned to the other core, taskset -c 0), in
// rounds that interleave the servers, so that a noisy neighbour slows
// them all alike. Everything is on 127.0.0.1. TLS 1.3, P-256 keys both
// ways and P-256 key exchange, no session resumption. CPU is the server
// process's own accounting (/proc/PID/stat utime+stime, every thread).
//
// Behind every server is the same target, served by this process: a
// connection's first byte says what it wants ('e': echo everything; 'd'
// and an 8-byte big-endian count: that many bytes, then the end).
//
// Measured per round and server, at 1 key:
//
//   - new connections: workers connect, handshake, exchange one byte
//     through the target and close, for -dur: connections per second,
//     and the server's CPU per connection;
//   - keep-alive: workers hold one connection each and exchange 64-byte
//     messages for -dur: the server's CPU per request (and requests per
//     second);
//   - transfer: one connection downloads -transfer bytes: the time, and
//     the server's CPU;
//   - startup: from exec to the first admitted round trip, and the RSS
//     then and after the load.
//
// Then, at each of -keys (e.g. 10000,100000), the startup and RSS alone,
// each server given at most -cap to be ready (servers that read their
// trust anchors with OpenSSL load 100,000 certificates very slowly: a
// server not ready by the cap is reported as such, never waited for).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/keytool/keytool/bench/internal/docsection"
)

// config is the command line.
type config struct {
	rounds   int
	keys     []int
	dur      time.Duration
	workers  int
	transfer int64
	capWait  time.Duration
	out      string
	keytool  string
	base     string // another keytool binary, measured as "keytool-base"
	servers  []string
	doc      string
	command  string
	core     string // the servers' core, for taskset
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "stdproxy" {
		stdproxy(os.Args[2:])
		return
	}
	var c config
	var keys, servers string
	flag.IntVar(&c.rounds, "rounds", 3, "rounds of the 1-key measurements, servers interleaved")
	flag.StringVar(&keys, "keys", "10000,100000", "key counts for the startup and RSS measurements")
	flag.DurationVar(&c.dur, "dur", 3*time.Second, "length of each load measurement")
	flag.IntVar(&c.workers, "workers", 32, "concurrent connections of the load client")
	flag.Int64Var(&c.transfer, "transfer", 1<<30, "bytes of the transfer measurement")
	flag.DurationVar(&c.capWait, "cap", 60*time.Second, "longest wait for a server to be ready")
	flag.StringVar(&c.out, "out", "out/peers", "directory for fixtures, configurations, logs and results")
	flag.StringVar(&c.keytool, "keytool", "", "keytool binary (required)")
	flag.StringVar(&c.base, "keytool-base", "", "another keytool binary (an earlier commit's), measured as the server keytool-base")
	flag.StringVar(&servers, "servers", "keytool,stdlib,nginx,haproxy,stunnel", "servers to measure")
	flag.StringVar(&c.doc, "doc", "", "document whose peers section (between the peers markers) is rewritten")
	flag.StringVar(&c.command, "command", "bench/peers/run", "the command to print in the document")
	flag.StringVar(&c.core, "server-core", "0", "CPU the servers are pinned to (taskset -c)")
	flag.Parse()
	for _, k := range strings.Split(keys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			n, err := strconv.Atoi(k)
			if err != nil || n < 1 {
				log.Fatalf("peers: -keys: %q is not a key count", k)
			}
			c.keys = append(c.keys, n)
		}
	}
	c.servers = strings.Split(servers, ",")
	if c.keytool == "" {
		log.Fatal("peers: -keytool is required")
	}
	// The servers run in directories of their own: every path absolute.
	for _, p := range []*string{&c.keytool, &c.out, &c.base} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			log.Fatal(err)
		}
		*p = abs
	}
	res, err := run(c)
	if err != nil {
		log.Fatal(err)
	}
	md := res.markdown(c)
	if err := os.WriteFile(filepath.Join(c.out, "peers.md"), []byte(md), 0o644); err != nil {
		log.Fatal(err)
	}
	if c.doc != "" {
		if err := docsection.Splice(c.doc, begin, end, md); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Print(md)
}

// results are every round's figures, by server.
type results struct {
	Env     map[string]string
	Rounds  []round           // the 1-key rounds
	Startup []startup         // the -keys startups
	Servers []string          // in the order measured
	Notes   map[string]string // by server: what to say about it
}

// round is one server's figures in one round, at 1 key.
type round struct {
	Server      string
	Round       int
	StartupSec  float64
	RSSReadyKiB int64
	RSSLoadKiB  int64
	ConnPerSec  float64
	CPUPerConn  float64 // seconds
	ConnUtil    float64 // server CPU ÷ wall time during the connection load
	ReqPerSec   float64
	CPUPerReq   float64 // seconds
	XferSec     float64
	XferCPU     float64 // seconds
}

// startup is one server's start at a key count.
type startup struct {
	Server   string
	Keys     int
	Ready    bool // false: not ready within the cap
	Sec      float64
	Listen   float64 // seconds until it accepted TCP connections (0: never, within the cap)
	RSSKiB   int64
	CapSec   float64
	ExitNote string
}

func run(c config) (*results, error) {
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return nil, err
	}
	fx, err := makeFixtures(filepath.Join(c.out, "fixtures"), append([]int{1}, c.keys...), c.keytool)
	if err != nil {
		return nil, err
	}
	target, err := startTarget()
	if err != nil {
		return nil, err
	}
	defer target.Close()
	cl := &client{cfg: fx.clientTLS()}
	res := &results{Env: environment(), Servers: c.servers, Notes: map[string]string{}}
	rawf, err := os.Create(filepath.Join(c.out, "peers.raw.jsonl"))
	if err != nil {
		return nil, err
	}
	defer rawf.Close()
	raw := json.NewEncoder(rawf)
	for r := range c.rounds {
		// Rotate the order each round: no server always goes first.
		order := append(slices.Clone(c.servers[r%len(c.servers):]), c.servers[:r%len(c.servers)]...)
		for _, name := range order {
			rd, err := measureRound(c, fx, cl, target.Addr().String(), name, r)
			if err != nil {
				return nil, fmt.Errorf("peers: %s, round %d: %w", name, r+1, err)
			}
			log.Printf("round %d %-8s %6.0f conn/s %6.0f µs/conn (util %.2f) | %6.0f req/s %5.1f µs/req | %s in %.2fs, %.2fs CPU | ready %.0f ms, RSS %d/%d KiB",
				r+1, name, rd.ConnPerSec, rd.CPUPerConn*1e6, rd.ConnUtil, rd.ReqPerSec, rd.CPUPerReq*1e6,
				size(c.transfer), rd.XferSec, rd.XferCPU, rd.StartupSec*1000, rd.RSSReadyKiB, rd.RSSLoadKiB)
			res.Rounds = append(res.Rounds, rd)
			_ = raw.Encode(rd)
		}
	}
	for _, k := range c.keys {
		for _, name := range c.servers {
			st, err := measureStartup(c, fx, cl, target.Addr().String(), name, k)
			if err != nil {
				return nil, fmt.Errorf("peers: %s at %d keys: %w", name, k, err)
			}
			if st.Ready {
				log.Printf("startup %-8s %7d keys: ready in %.2f s, RSS %d KiB", name, k, st.Sec, st.RSSKiB)
			} else {
				log.Printf("startup %-8s %7d keys: not ready within %.0f s (listening after %.2f s; 0: not listening) %s", name, k, st.CapSec, st.Listen, st.ExitNote)
			}
			res.Startup = append(res.Startup, st)
			_ = raw.Encode(st)
		}
	}
	res.Env["load after"] = loadavg()
	return res, nil
}

// measureRound starts a server with 1 key and measures it under load.
func measureRound(c config, fx *fixtures, cl *client, target, name string, r int) (round, error) {
	rd := round{Server: name, Round: r + 1}
	srv, err := start(c, fx, name, 1, target)
	if err != nil {
		return rd, err
	}
	defer srv.stop()
	if !srv.waitReady(cl, c.capWait) {
		return rd, fmt.Errorf("not ready within %v: %s", c.capWait, srv.tail())
	}
	rd.StartupSec = srv.readyAfter.Seconds()
	rd.RSSReadyKiB = rssKiB(srv.pid())

	cpu0, t0 := cpuSeconds(srv.pid()), time.Now()
	n, err := cl.connLoad(srv.addr, c.workers, c.dur)
	if err != nil {
		return rd, fmt.Errorf("new connections: %w", err)
	}
	cpu, wall := cpuSeconds(srv.pid())-cpu0, time.Since(t0).Seconds()
	rd.ConnPerSec, rd.CPUPerConn, rd.ConnUtil = float64(n)/wall, cpu/float64(n), cpu/wall

	reqs, cpu, wall, err := cl.keepAliveLoad(srv.addr, c.workers, c.dur, srv.pid)
	if err != nil {
		return rd, fmt.Errorf("keep-alive: %w", err)
	}
	rd.ReqPerSec, rd.CPUPerReq = float64(reqs)/wall, cpu/float64(reqs)

	cpu0, t0 = cpuSeconds(srv.pid()), time.Now()
	if err := cl.download(srv.addr, c.transfer); err != nil {
		return rd, fmt.Errorf("transfer: %w", err)
	}
	rd.XferSec, rd.XferCPU = time.Since(t0).Seconds(), cpuSeconds(srv.pid())-cpu0
	rd.RSSLoadKiB = rssKiB(srv.pid())
	return rd, nil
}

// measureStartup starts a server with k keys and waits, at most the cap,
// for its first admitted round trip.
func measureStartup(c config, fx *fixtures, cl *client, target, name string, k int) (startup, error) {
	st := startup{Server: name, Keys: k, CapSec: c.capWait.Seconds()}
	srv, err := start(c, fx, name, k, target)
	if err != nil {
		return st, err
	}
	defer srv.stop()
	st.Ready = srv.waitReady(cl, c.capWait)
	st.Listen = srv.listening.Seconds()
	if st.Ready {
		st.Sec = srv.readyAfter.Seconds()
		st.RSSKiB = rssKiB(srv.pid())
	} else if srv.exited() {
		st.ExitNote = "(exited: " + srv.tail() + ")"
	}
	return st, nil
}

// size is a byte count for humans.
func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

// ---- fixtures ----

// fixtures are the keys and files every server is started with.
type fixtures struct {
	dir        string
	clientCert tls.Certificate
	serverCert string // PEM certificate and key of the OpenSSL and std-lib servers
	serverKey  string
	serverPair string // both in one file (haproxy's crt)
	identity   string // keytool's key.json
}

func (f *fixtures) caFile(k int) string    { return filepath.Join(f.dir, fmt.Sprintf("ca-%d.pem", k)) }
func (f *fixtures) home(k int) string      { return filepath.Join(f.dir, fmt.Sprintf("home-%d", k)) }
func (f *fixtures) clientTLS() *tls.Config { return clientConfig(f.clientCert) }

// makeFixtures writes (or reuses) the fixtures: the client's key and
// certificate (the first of every key set), the servers' P-256 identity,
// and for each key count k: a CA file of k self-signed client
// certificates (the OpenSSL servers' and the std-lib proxy's trust
// anchors) and a keytool home whose authorized_keys.d has the same k
// keys, one file each.
func makeFixtures(dir string, counts []int, keytool string) (*fixtures, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f := &fixtures{dir: dir, serverCert: filepath.Join(dir, "server.crt"), serverKey: filepath.Join(dir, "server.key"),
		serverPair: filepath.Join(dir, "server.pem"), identity: filepath.Join(dir, "identity", "key.json")}
	maxK := slices.Max(counts)
	// The key set: made once, kept as PEM (certificate and key) lines.
	setFile := filepath.Join(dir, "keys.pem")
	var certs []*x509.Certificate
	var certPEM [][]byte
	var keys []*ecdsa.PrivateKey
	if data, err := os.ReadFile(setFile); err == nil {
		certs, certPEM, keys = parseKeySet(data)
	}
	if len(certs) < maxK {
		log.Printf("fixtures: making %d client keys and certificates", maxK-len(certs))
		c2, p2, k2, err := genClients(len(certs), maxK)
		if err != nil {
			return nil, err
		}
		certs, certPEM, keys = append(certs, c2...), append(certPEM, p2...), append(keys, k2...)
		var buf bytes.Buffer
		for i := range certs {
			buf.Write(certPEM[i])
			der, _ := x509.MarshalECPrivateKey(keys[i])
			_ = pem.Encode(&buf, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		}
		if err := os.WriteFile(setFile, buf.Bytes(), 0o600); err != nil {
			return nil, err
		}
	}
	f.clientCert = tls.Certificate{Certificate: [][]byte{certs[0].Raw}, PrivateKey: keys[0], Leaf: certs[0]}
	for _, k := range counts {
		if _, err := os.Stat(f.caFile(k)); err != nil {
			if err := os.WriteFile(f.caFile(k), bytes.Join(certPEM[:k], nil), 0o644); err != nil {
				return nil, err
			}
		}
		if err := writeHome(f.home(k), keys[:k]); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(f.serverPair); err != nil {
		if err := writeServerCert(f); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(f.identity); err != nil {
		out, err := exec.Command(keytool, "gen", "-H", filepath.Dir(f.identity)).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("keytool gen: %v: %s", err, out)
		}
	}
	for _, k := range counts {
		id, err := os.ReadFile(f.identity)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(f.home(k), "key.json"), id, 0o600); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// genClients makes the client keys [from, to), each with a self-signed
// client certificate, on every core.
func genClients(from, to int) ([]*x509.Certificate, [][]byte, []*ecdsa.PrivateKey, error) {
	n := to - from
	certs, pems, keys := make([]*x509.Certificate, n), make([][]byte, n), make([]*ecdsa.PrivateKey, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				if err != nil {
					firstErr.Store(err)
					return
				}
				tmpl := &x509.Certificate{
					SerialNumber: big.NewInt(int64(from + i + 1)),
					Subject:      pkix.Name{CommonName: fmt.Sprintf("client-%d", from+i)},
					NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
					KeyUsage:    x509.KeyUsageDigitalSignature,
					ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
				}
				der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
				if err != nil {
					firstErr.Store(err)
					return
				}
				certs[i], _ = x509.ParseCertificate(der)
				pems[i] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
				keys[i] = k
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, nil, nil, err
	}
	return certs, pems, keys, nil
}

// parseKeySet reads what makeFixtures wrote: certificate, key, in turn.
func parseKeySet(data []byte) (certs []*x509.Certificate, pems [][]byte, keys []*ecdsa.PrivateKey) {
	for {
		var cb, kb *pem.Block
		rest := data
		if cb, rest = pem.Decode(rest); cb == nil {
			return
		}
		if kb, rest = pem.Decode(rest); kb == nil {
			return
		}
		c, err1 := x509.ParseCertificate(cb.Bytes)
		k, err2 := x509.ParseECPrivateKey(kb.Bytes)
		if err1 != nil || err2 != nil {
			return
		}
		certs, pems, keys = append(certs, c), append(pems, pem.EncodeToMemory(cb)), append(keys, k)
		data = rest
	}
}

// writeHome writes a keytool home authorizing keys, one JWK file each
// in authorized_keys.d (the layout keytool authorize writes). A home
// already holding that many files is kept.
func writeHome(home string, keys []*ecdsa.PrivateKey) error {
	ak := filepath.Join(home, "authorized_keys.d")
	if ents, err := os.ReadDir(ak); err == nil && len(ents) == len(keys) {
		return nil
	}
	_ = os.RemoveAll(home)
	if err := os.MkdirAll(ak, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(home, 0o700); err != nil {
		return err
	}
	for i, k := range keys {
		pub, err := k.PublicKey.ECDH()
		if err != nil {
			return err
		}
		b := pub.Bytes() // 0x04 || X || Y
		j := `{"kty":"EC","crv":"P-256","x":"` + base64.RawURLEncoding.EncodeToString(b[1:33]) +
			`","y":"` + base64.RawURLEncoding.EncodeToString(b[33:]) + `"}` + "\n"
		if err := os.WriteFile(filepath.Join(ak, fmt.Sprintf("client-%07d.json", i)), []byte(j), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeServerCert writes the OpenSSL and std-lib servers' identity: a
// P-256 key and its self-signed certificate.
func writeServerCert(f *fixtures) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	c := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kp := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(f.serverCert, c, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(f.serverKey, kp, 0o600); err != nil {
		return err
	}
	return os.WriteFile(f.serverPair, append(c, kp...), 0o600)
}

// ---- the target ----

// startTarget serves the target protocol on 127.0.0.1.
func startTarget() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	payload := make([]byte, 64<<10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var op [1]byte
				if _, err := io.ReadFull(c, op[:]); err != nil {
					return
				}
				switch op[0] {
				case 'e':
					// A plain loop: each read written back at once
					// (io.Copy would splice, whose pipe adds latency).
					buf := make([]byte, 16<<10)
					for {
						n, err := c.Read(buf)
						if n > 0 {
							if _, err := c.Write(buf[:n]); err != nil {
								return
							}
						}
						if err != nil {
							return
						}
					}
				case 'd':
					var nb [8]byte
					if _, err := io.ReadFull(c, nb[:]); err != nil {
						return
					}
					for left := int64(binary.BigEndian.Uint64(nb[:])); left > 0; {
						w, err := c.Write(payload[:min(left, int64(len(payload)))])
						if err != nil {
							return
						}
						left -= int64(w)
					}
				}
			}()
		}
	}()
	return ln, nil
}

// ---- the load client ----

// clientConfig is the load client's TLS: 1.3, P-256 key exchange, no
// resumption. It does not check the server's certificate (every server
// has its own kind of identity; what is measured is the server's side).
func clientConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.CurveP256},
		// Always the certificate, whatever CA names the server lists
		// (Certificates would send none when they do not match).
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		InsecureSkipVerify:   true,
	}
}

type client struct{ cfg *tls.Config }

// dial connects and finishes the handshake; the server's decision on the
// client's key comes with the first bytes back.
func (cl *client) dial(addr string) (*tls.Conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cl.cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// once is one admitted round trip on a new connection.
func (cl *client) once(addr string) error {
	c, err := cl.dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ex")); err != nil {
		return err
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return err
	}
	if b[0] != 'x' {
		return errors.New("wrong echo")
	}
	return nil
}

// connLoad makes new connections from workers goroutines for dur.
func (cl *client) connLoad(addr string, workers int, dur time.Duration) (int64, error) {
	var n atomic.Int64
	var firstErr atomic.Value
	end := time.Now().Add(dur)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				if err := cl.once(addr); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return n.Load(), err
	}
	return n.Load(), nil
}

// keepAliveLoad opens workers connections, then measures for dur the
// requests (64 bytes each way through the echo target) and the server's
// CPU.
func (cl *client) keepAliveLoad(addr string, workers int, dur time.Duration, pid func() int) (reqs int64, cpu, wall float64, err error) {
	conns := make([]*tls.Conn, workers)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		if conns[i], err = cl.dial(addr); err != nil {
			return 0, 0, 0, err
		}
		if _, err = conns[i].Write([]byte("e")); err != nil {
			return 0, 0, 0, err
		}
	}
	var n atomic.Int64
	var firstErr atomic.Value
	var stop atomic.Bool
	var wg sync.WaitGroup
	var started sync.WaitGroup
	startCh := make(chan struct{})
	for _, c := range conns {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			msg, back := bytes.Repeat([]byte("k"), 64), make([]byte, 64)
			// One request before the clock starts: the connection is
			// admitted and through to the target.
			_, err := c.Write(msg)
			if err == nil {
				_, err = io.ReadFull(c, back)
			}
			started.Done()
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			<-startCh
			for !stop.Load() {
				if _, err := c.Write(msg); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				if _, err := io.ReadFull(c, back); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	started.Wait()
	cpu0, t0 := cpuSeconds(pid()), time.Now()
	close(startCh)
	time.Sleep(dur)
	stop.Store(true)
	wg.Wait()
	cpu, wall = cpuSeconds(pid())-cpu0, time.Since(t0).Seconds()
	if e, ok := firstErr.Load().(error); ok {
		return 0, 0, 0, e
	}
	return n.Load(), cpu, wall, nil
}

// download reads n bytes from the target through addr.
func (cl *client) download(addr string, n int64) error {
	c, err := cl.dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	req := make([]byte, 9)
	req[0] = 'd'
	binary.BigEndian.PutUint64(req[1:], uint64(n))
	if _, err := c.Write(req); err != nil {
		return err
	}
	got, err := io.Copy(io.Discard, c)
	if err != nil && got != n {
		return err
	}
	if got != n {
		return fmt.Errorf("got %d bytes of %d", got, n)
	}
	return nil
}

// ---- the servers ----

// server is a running server process.
type server struct {
	name       string
	addr       string
	cmd        *exec.Cmd
	logPath    string
	started    time.Time
	readyAfter time.Duration
	listening  time.Duration // until the first TCP connection, zero before
	done       chan struct{}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waitReady tries an admitted round trip every few milliseconds until
// one succeeds (true), the server exits or max passes (false).
func (s *server) waitReady(cl *client, max time.Duration) bool {
	deadline := s.started.Add(max)
	for time.Now().Before(deadline) && !s.exited() {
		if s.listening == 0 {
			if c, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
				c.Close()
				s.listening = time.Since(s.started)
			}
		}
		if cl.once(s.addr) == nil {
			s.readyAfter = time.Since(s.started)
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

// tail is the end of the server's log.
func (s *server) tail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	return strings.TrimSpace(string(b))
}

func (s *server) stop() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// freePort is a loopback port free now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start writes the server's configuration for k keys and starts it,
// pinned to the servers' core.
func start(c config, fx *fixtures, name string, k int, target string) (*server, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.out, "run", fmt.Sprintf("%s-%d", name, k))
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var argv []string
	switch name {
	case "keytool", "keytool-base":
		bin := c.keytool
		if name == "keytool-base" {
			bin = c.base
		}
		argv = []string{bin, "proxy", "-H", fx.home(k), "--listen", addr, "--target", target, "--log-level", "warn"}
	case "stdlib":
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		argv = []string{self, "stdproxy", "-listen", addr, "-target", target, "-cert", fx.serverCert, "-key", fx.serverKey, "-ca", fx.caFile(k)}
	case "nginx":
		argv, err = nginxConfig(dir, fx, k, addr, target)
	case "haproxy":
		argv, err = haproxyConfig(dir, fx, k, addr, target)
	case "stunnel":
		argv, err = stunnelConfig(dir, fx, k, addr, target)
	default:
		return nil, fmt.Errorf("unknown server %q", name)
	}
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command("taskset", append([]string{"-c", c.core}, argv...)...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Dir = dir
	// The server dies with this process, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	s := &server{name: name, addr: addr, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	s.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	return s, nil
}

// nginxConfig: one process (no master), one worker connection pool,
// stream proxy with ssl_verify_client on.
func nginxConfig(dir string, fx *fixtures, k int, addr, target string) ([]string, error) {
	bin := lookSbin("nginx")
	mod := ""
	for _, m := range []string{"/usr/share/nginx/modules/ngx_stream_module.so", "/usr/lib/nginx/modules/ngx_stream_module.so"} {
		if _, err := os.Stat(m); err == nil {
			mod = "load_module " + m + ";\n"
		}
	}
	conf := mod + `daemon off;
master_process off;
worker_processes 1;
pid ` + dir + `/nginx.pid;
error_log ` + dir + `/error.log warn;
events { worker_connections 4096; }
stream {
	server {
		listen ` + addr + ` ssl;
		ssl_certificate ` + fx.serverCert + `;
		ssl_certificate_key ` + fx.serverKey + `;
		ssl_protocols TLSv1.3;
		ssl_ecdh_curve prime256v1;
		ssl_verify_client on;
		ssl_verify_depth 1;
		# The names sent in the CertificateRequest: one certificate that
		# is not the client's (sending 100,000 names would make a message
		# no TLS client takes); the anchors are ssl_trusted_certificate.
		ssl_client_certificate ` + fx.serverCert + `;
		ssl_trusted_certificate ` + fx.caFile(k) + `;
		ssl_session_tickets off;
		proxy_pass ` + target + `;
	}
}
`
	p := filepath.Join(dir, "nginx.conf")
	return []string{bin, "-p", dir, "-e", dir + "/error.log", "-c", p}, os.WriteFile(p, []byte(conf), 0o644)
}

// haproxyConfig: one thread, TCP mode, verify required; the anchors in
// ca-verify-file (ca-file's names are sent to the client: see
// nginxConfig).
func haproxyConfig(dir string, fx *fixtures, k int, addr, target string) ([]string, error) {
	conf := `global
	nbthread 1
	maxconn 4096
	tune.ssl.default-dh-param 2048
defaults
	mode tcp
	timeout connect 10s
	timeout client 120s
	timeout server 120s
frontend in
	bind ` + addr + ` ssl crt ` + fx.serverPair + ` ca-file ` + fx.serverCert + ` ca-verify-file ` + fx.caFile(k) + ` verify required ssl-min-ver TLSv1.3 curves P-256 no-tls-tickets
	default_backend target
backend target
	server t ` + target + `
`
	p := filepath.Join(dir, "haproxy.cfg")
	return []string{lookSbin("haproxy"), "-db", "-f", p}, os.WriteFile(p, []byte(conf), 0o644)
}

// stunnelConfig: foreground, verifyPeer with the CA file. stunnel sends
// the name of every anchor to the client (CAfile or CApath alike) and has
// no option against it: beyond a few thousand keys, its CertificateRequest
// passes the 64 KiB that Go's crypto/tls (the load client) takes, and only
// the time until it listens is measured.
func stunnelConfig(dir string, fx *fixtures, k int, addr, target string) ([]string, error) {
	anchors := "CAfile = " + fx.caFile(k)
	conf := `foreground = yes
pid =
output = ` + dir + `/stunnel.log
debug = warning
[in]
accept = ` + addr + `
connect = ` + target + `
cert = ` + fx.serverCert + `
key = ` + fx.serverKey + `
` + anchors + `
verifyPeer = yes
sslVersionMin = TLSv1.3
curves = prime256v1
sessionCacheSize = 1
`
	p := filepath.Join(dir, "stunnel.conf")
	bin := lookSbin("stunnel4")
	if _, err := os.Stat(bin); err != nil {
		bin = lookSbin("stunnel")
	}
	return []string{bin, p}, os.WriteFile(p, []byte(conf), 0o644)
}

// lookSbin finds a program on $PATH or in the sbin directories (not on a
// user's $PATH in Debian).
func lookSbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name)
		}
	}
	return name
}

// ---- the standard-library proxy ----

// stdproxy is the plainest Go mutual-TLS proxy: crypto/tls, the client
// certificates as trust anchors in an x509.CertPool, and io.Copy each
// way.
func stdproxy(args []string) {
	fs := flag.NewFlagSet("stdproxy", flag.ExitOnError)
	listen := fs.String("listen", "", "address")
	target := fs.String("target", "", "target")
	certF := fs.String("cert", "", "certificate")
	keyF := fs.String("key", "", "key")
	caF := fs.String("ca", "", "client certificates")
	_ = fs.Parse(args)
	cert, err := tls.LoadX509KeyPair(*certF, *keyF)
	if err != nil {
		log.Fatal(err)
	}
	ca, err := os.ReadFile(*caF)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		log.Fatal("stdproxy: no certificates in ", *caF)
	}
	// The certificates verify against the pool in VerifyPeerCertificate,
	// not as ClientCAs: crypto/tls would send every certificate's name in
	// the CertificateRequest, a message no client takes beyond 64 KiB.
	ln, err := tls.Listen("tcp", *listen, &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert, MinVersion: tls.VersionTLS13,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			return err
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			if err := c.(*tls.Conn).HandshakeContext(context.Background()); err != nil {
				return
			}
			t, err := net.Dial("tcp", *target)
			if err != nil {
				return
			}
			defer t.Close()
			go func() { _, _ = io.Copy(t, c); _ = t.(*net.TCPConn).CloseWrite() }()
			_, _ = io.Copy(c, t)
		}()
	}
}

// ---- process accounting ----

// cpuSeconds is utime+stime of a process (every thread), in seconds.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis (state is field 3).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, _ := strconv.ParseFloat(f[11], 64) // field 14
	st, _ := strconv.ParseFloat(f[12], 64) // field 15
	return (ut + st) / clockTicks
}

// clockTicks is sysconf(_SC_CLK_TCK): 100 on Linux (every architecture
// Go runs on there).
const clockTicks = 100

// rssKiB is VmRSS of a process.
func rssKiB(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// environment describes the machine and the peers' versions.
func environment() map[string]string {
	env := map[string]string{
		"date":        time.Now().UTC().Format(time.RFC3339),
		"go":          runtime.Version(),
		"cpus":        strconv.Itoa(runtime.NumCPU()),
		"load before": loadavg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		// The machine's CPUs (runtime.NumCPU counts this process's
		// affinity: one).
		n := 0
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				env["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				n++
			}
		}
		env["cpus"] = strconv.Itoa(n)
	}
	// version is the first line of a program's output that starts with
	// prefix (stunnel prints other lines first).
	version := func(prefix string, args ...string) string {
		out, _ := exec.Command(args[0], args[1:]...).CombinedOutput()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(l)
			}
		}
		return "?"
	}
	env["nginx"] = strings.TrimPrefix(version("nginx version", lookSbin("nginx"), "-v"), "nginx version: ")
	env["haproxy"] = strings.Join(strings.Fields(version("HAProxy", lookSbin("haproxy"), "-v"))[:min(3, len(strings.Fields(version("HAProxy", lookSbin("haproxy"), "-v"))))], " ")
	env["stunnel"] = strings.Join(strings.Fields(version("stunnel", lookSbin("stunnel4"), "-version"))[:2], " ")
	env["openssl"] = version("OpenSSL", "openssl", "version")
	return env
}

// ---- the report ----

const (
	begin = "<!-- peers:begin -->"
	end   = "<!-- peers:end -->"
)

// spread is the median and range of some figures.
type spread struct{ med, lo, hi float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{med, s[0], s[len(s)-1]}
}

// ratios are a server's figure over the baseline's, round by round (the
// servers of a round ran side by side).
func (r *results) ratios(server, base string, get func(round) float64) spread {
	var v []float64
	byRound := map[int]float64{}
	for _, rd := range r.Rounds {
		if rd.Server == base {
			byRound[rd.Round] = get(rd)
		}
	}
	for _, rd := range r.Rounds {
		if b := byRound[rd.Round]; rd.Server == server && b != 0 {
			v = append(v, get(rd)/b)
		}
	}
	return spreadOf(v)
}

func (r *results) values(server string, get func(round) float64) spread {
	var v []float64
	for _, rd := range r.Rounds {
		if rd.Server == server {
			v = append(v, get(rd))
		}
	}
	return spreadOf(v)
}

func fmtRange(s spread, f string) string {
	if s.lo == s.hi {
		return fmt.Sprintf(f, s.med)
	}
	return fmt.Sprintf(f+" ("+f+"–"+f+")", s.med, s.lo, s.hi)
}

// tableHead writes a table's header: first, then a column per server.
func tableHead(w func(string, ...any), first string, servers []string) {
	w("| %s | ", first)
	for _, s := range servers {
		w("%s | ", s)
	}
	w("\n|---|")
	for range servers {
		w("---|")
	}
	w("\n")
}

func (r *results) markdown(c config) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	rounds := c.rounds
	w("Measured %s on %s × %s, %s; load average %s before, %s after (1, 5, 15 min).\n",
		r.Env["date"], r.Env["cpus"], r.Env["cpu"], r.Env["go"], r.Env["load before"], r.Env["load after"])
	w("%s; %s; %s; %s. %d rounds, servers interleaved, %v per load, %d concurrent connections; ",
		r.Env["nginx"], r.Env["haproxy"], r.Env["stunnel"], r.Env["openssl"], rounds, c.dur, c.workers)
	w("figures are the median (and range) over the rounds; a ratio is taken within each round, then summarized.\n\n")
	metrics := []struct {
		name string
		get  func(round) float64
		unit string
		f    string
		mul  float64
	}{
		{"new connections per second", func(x round) float64 { return x.ConnPerSec }, "/s", "%.0f", 1},
		{"CPU per new connection", func(x round) float64 { return x.CPUPerConn }, "µs", "%.0f", 1e6},
		{"keep-alive: CPU per request (64 B each way)", func(x round) float64 { return x.CPUPerReq }, "µs", "%.1f", 1e6},
		{"keep-alive: requests per second", func(x round) float64 { return x.ReqPerSec }, "/s", "%.0f", 1},
		{"transfer of " + size(c.transfer) + ": time", func(x round) float64 { return x.XferSec }, "s", "%.2f", 1},
		{"transfer of " + size(c.transfer) + ": server CPU", func(x round) float64 { return x.XferCPU }, "s", "%.2f", 1},
		{"startup to the first admitted connection (1 key)", func(x round) float64 { return x.StartupSec }, "ms", "%.0f", 1000},
		{"RSS after the load (1 key)", func(x round) float64 { return float64(x.RSSLoadKiB) }, "MiB", "%.1f", 1.0 / 1024},
	}
	bases := []string{"nginx", "stdlib"}
	tableHead(w, "", r.Servers)
	for _, m := range metrics {
		w("| %s (%s) | ", m.name, m.unit)
		for _, s := range r.Servers {
			v := r.values(s, m.get)
			w("%s | ", fmtRange(spread{v.med * m.mul, v.lo * m.mul, v.hi * m.mul}, m.f))
		}
		w("\n")
		for _, base := range bases {
			if !slices.Contains(r.Servers, base) {
				continue
			}
			w("| ↳ ÷ %s | ", base)
			for _, s := range r.Servers {
				if s == base {
					w("1 | ")
					continue
				}
				w("%s | ", fmtRange(r.ratios(s, base, m.get), "%.2f"))
			}
			w("\n")
		}
	}
	if len(c.keys) == 0 {
		return b.String()
	}
	w("\nStartup (exec to the first admitted round trip) and RSS then, by number of trusted client keys (1 round; a server is given at most %v):\n\n", c.capWait)
	tableHead(w, "keys", r.Servers)
	for _, k := range c.keys {
		w("| %d | ", k)
		for _, s := range r.Servers {
			for _, st := range r.Startup {
				if st.Server == s && st.Keys == k {
					if st.Ready {
						w("%.2f s, %.0f MiB | ", st.Sec, float64(st.RSSKiB)/1024)
					} else if st.Listen > 0 {
						w("listening after %.1f s; no admitted connection within %.0f s | ", st.Listen, st.CapSec)
					} else {
						w("not listening within %.0f s | ", st.CapSec)
					}
				}
			}
		}
		w("\n")
	}
	w("\n")
	return b.String()
}
