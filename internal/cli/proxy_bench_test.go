package cli

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkProxyOverhead measures what --metrics-listen and
// --proxy-protocol cost keytool proxy, as ratios to the plain proxy in the
// same run. Three keytool proxy processes (plain, with metrics, with the
// PROXY protocol) stand in front of one in-process echo target; the
// benchmark alternates between them in rounds, so that the machine's load
// falls on all three alike (each round in another order), and reads each proxy process's CPU time
// (utime+stime, /proc/PID/stat) around its share of each round:
//
//   - new: a new mutual-TLS connection through the proxy, one byte each
//     way, closed (the handshake, the decision, the dial, the header);
//   - keepalive: one 64-byte request and its echo on an open connection.
//
// It reports each mode's proxy CPU per operation (µs) and the ratios
// metrics/plain and proxyproto/plain. Run it with
//
//	go test ./internal/cli -run '^$' -bench ProxyOverhead -benchtime 1x
//
// KEYTOOL_BENCH_ROUNDS (default 6) sets the number of rounds.
func BenchmarkProxyOverhead(b *testing.B) {
	const newPerRound, keepAlivePerRound = 400, 20000
	rounds := 6
	if n, err := strconv.Atoi(os.Getenv("KEYTOOL_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	target := benchEchoTarget(b)
	home := pxGen(b)
	cert := benchClientCert(b, home)
	modes := []struct {
		name  string
		flags []string
	}{
		{"plain", nil},
		{"metrics", []string{"--metrics-listen", "127.0.0.1:0"}},
		{"proxyproto", []string{"--proxy-protocol"}},
	}
	type result struct{ newCPU, kaCPU time.Duration }
	results := make([]result, len(modes))
	addrs, pids := make([]string, len(modes)), make([]int, len(modes))
	for i, m := range modes {
		p := pxStart(b, "keytool", append([]string{"-H", home, "proxy", "--listen", "127.0.0.1:0", "--target", target}, m.flags...)...)
		addrs[i] = p.waitFor(b, `msg=listening addr=(127\.0\.0\.1:\d+)`, 15*time.Second)[1]
		pids[i] = p.cmd.Process.Pid
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true} // no session cache: a full handshake each time
	for range b.N {
		for r := 0; r < rounds; r++ {
			for k := range modes {
				i := (k + r) % len(modes) // each round starts with another mode: no mode always runs first
				before := benchProcCPU(b, pids[i])
				for range newPerRound {
					benchNewConn(b, addrs[i], cfg)
				}
				results[i].newCPU += benchProcCPU(b, pids[i]) - before

				conn, err := tls.Dial("tcp", addrs[i], cfg)
				if err != nil {
					b.Fatal(err)
				}
				msg, buf := bytes.Repeat([]byte("k"), 64), make([]byte, 64)
				before = benchProcCPU(b, pids[i])
				for range keepAlivePerRound {
					if _, err := conn.Write(msg); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(conn, buf); err != nil {
						b.Fatal(err)
					}
				}
				results[i].kaCPU += benchProcCPU(b, pids[i]) - before
				conn.Close()
			}
		}
	}
	us := func(d time.Duration, n int) float64 { return float64(d.Microseconds()) / float64(n*rounds*b.N) }
	for i, m := range modes {
		b.ReportMetric(us(results[i].newCPU, newPerRound), m.name+"-new-cpu-µs/op")
		b.ReportMetric(us(results[i].kaCPU, keepAlivePerRound), m.name+"-keepalive-cpu-µs/op")
		if i > 0 {
			b.ReportMetric(float64(results[i].newCPU)/float64(results[0].newCPU), m.name+"/plain-new")
			b.ReportMetric(float64(results[i].kaCPU)/float64(results[0].kaCPU), m.name+"/plain-keepalive")
		}
	}
}

// benchNewConn makes one connection through the proxy, one byte each way.
func benchNewConn(b *testing.B, addr string, cfg *tls.Config) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var buf [1]byte
	if _, err := conn.Write([]byte{'x'}); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(conn, buf[:]); err != nil {
		b.Fatal(err)
	}
}

// benchProcCPU is a process's CPU time so far (user and system), from
// /proc/PID/stat, in clock ticks of 10 ms.
func benchProcCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name (which may hold spaces), from
	// field 3: utime and stime are fields 14 and 15.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// benchEchoTarget is a TCP echo server that first reads a PROXY protocol
// v2 header if one comes.
func benchEchoTarget(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	sig := []byte("\r\n\r\n\x00\r\nQUIT\n")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var hdr [16]byte
				n, err := io.ReadFull(c, hdr[:1])
				if err != nil || n == 0 {
					return
				}
				var first []byte
				if hdr[0] == sig[0] {
					if _, err := io.ReadFull(c, hdr[1:]); err != nil || !bytes.Equal(hdr[:12], sig) {
						return
					}
					if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint16(hdr[14:16]))); err != nil {
						return
					}
				} else {
					first = hdr[:1]
				}
				if _, err := c.Write(first); err != nil {
					return
				}
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// benchClientCert makes a client key, authorizes it in home, and returns
// its certificate.
func benchClientCert(b *testing.B, home string) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	pxWrite(b, filepath.Join(home, "authorized_keys.d", "bench.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})))
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
