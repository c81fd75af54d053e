package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// BenchmarkPipe measures the copy loop of an admitted connection (pipe),
// against the plainest Go proxy's (io.Copy each way, as a
// standard-library proxy does), in one run: a TLS client on loopback,
// the copy, and an echo target over TCP.
//
//   - keepalive-64B: one request of 64 bytes each way per op, on one
//     connection (per-request cost: the system calls, the TLS record,
//     and whatever the copy adds);
//   - download-1MiB: the target sends 1 MiB per op to the client (TCP →
//     TLS: the buffer size and records per system call).
//
// Run it with
//
//	go test ./proxy -run '^$' -bench Pipe -benchmem -count 6
func BenchmarkPipe(b *testing.B) {
	copies := []struct {
		name string
		run  func(ctx context.Context, a, b net.Conn)
	}{
		{"pipe", func(ctx context.Context, a, b net.Conn) { _, _, _, _ = pipe(ctx, a, b, time.Minute) }},
		{"iocopy", func(_ context.Context, a, b net.Conn) {
			go func() { _, _ = io.Copy(b, a); b.(*net.TCPConn).CloseWrite() }()
			_, _ = io.Copy(a, b)
			a.Close()
			b.Close()
		}},
	}
	for _, cp := range copies {
		b.Run("keepalive-64B/"+cp.name, func(b *testing.B) {
			c := pipeBenchConn(b, cp.run, echoLoop)
			msg, back := make([]byte, 64), make([]byte, 64)
			b.ReportAllocs()
			b.SetBytes(64)
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, back); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("download-1MiB/"+cp.name, func(b *testing.B) {
			c := pipeBenchConn(b, cp.run, func(t net.Conn) {
				chunk := make([]byte, 1<<20)
				var req [1]byte
				for {
					if _, err := io.ReadFull(t, req[:]); err != nil {
						return
					}
					if _, err := t.Write(chunk); err != nil {
						return
					}
				}
			})
			back := make([]byte, 1<<20)
			b.ReportAllocs()
			b.SetBytes(1 << 20)
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write([]byte{'d'}); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, back); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// echoLoop writes back each read at once.
func echoLoop(c net.Conn) {
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
}

// pipeBenchConn is a TLS client connection whose server side is copied
// by run to a TCP target served by target; everything ends with b.
func pipeBenchConn(b *testing.B, run func(ctx context.Context, a, b net.Conn), target func(net.Conn)) *tls.Conn {
	b.Helper()
	tln, pln := listen(b), listen(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	b.Cleanup(func() {
		cancel()
		tln.Close()
		pln.Close()
		<-done
		<-done
	})
	go func() {
		defer func() { done <- struct{}{} }()
		t, err := tln.Accept()
		if err != nil {
			return
		}
		defer t.Close()
		target(t)
	}()
	cert := selfSigned(b)
	go func() {
		defer func() { done <- struct{}{} }()
		raw, err := pln.Accept()
		if err != nil {
			return
		}
		conn := tls.Server(raw, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
		if err := conn.Handshake(); err != nil {
			raw.Close()
			return
		}
		t, err := net.Dial("tcp", tln.Addr().String())
		if err != nil {
			raw.Close()
			return
		}
		run(ctx, conn, t)
	}()
	c, err := tls.Dial("tcp", pln.Addr().String(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// selfSigned is a throwaway P-256 server certificate.
func selfSigned(b *testing.B) tls.Certificate {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		b.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}
