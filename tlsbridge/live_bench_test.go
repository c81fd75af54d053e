package tlsbridge

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// BenchmarkLiveSweep measures one sweep of LiveConns: every open
// connection of a Server decided again (what a reload of the store costs
// per open connection), conns connections from 1,000 keys, each with its
// own handshake state as a server holds it.
//
//	go test ./tlsbridge -run '^$' -bench LiveSweep
func BenchmarkLiveSweep(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			h := newHome(b, jwk.EC256)
			srv, err := NewServer(h.id, ServerOptions{Clients: h.auth})
			if err != nil {
				b.Fatal(err)
			}
			live := srv.Live(LiveOptions{Changes: h.auth})
			defer live.Close()
			keys := make([]*x509.Certificate, 1000)
			for i := range keys {
				c := newHome(b, jwk.EC256)
				h.authorize(b, fmt.Sprintf("k%d", i), c.id.Key)
				if keys[i], err = x509.ParseCertificate(c.id.Certificate.Certificate[0]); err != nil {
					b.Fatal(err)
				}
			}
			for i := range n {
				a, _ := net.Pipe()
				defer a.Close()
				cert, err := x509.ParseCertificate(keys[i%len(keys)].Raw) // a copy, as each handshake has
				if err != nil {
					b.Fatal(err)
				}
				live.Track(a, tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}})
			}
			if got := live.Stats().Tracked; got != n {
				b.Fatalf("%d tracked, want %d", got, n)
			}
			b.ResetTimer()
			for range b.N {
				live.t.Sweep()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/conn")
		})
	}
}
