package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/tlsbridge"
)

// BenchmarkHTTPRequest sets what HTTP mode's decision on each request
// costs (tlsbridge.Server.PeerOf: "decide") against a whole request on a
// keep-alive connection through the proxy to a local target
// ("request": a GET), in one run; "post" is the same request with a
// small body, which ends the proxy's connection to the target after it
// (anti-smuggling, docs/proxy.md): what that costs is post − request,
// in time and in the CPU time of the whole process (client, proxy and
// target).
//
//	go test ./proxy -run '^$' -bench HTTPRequest -benchmem
func BenchmarkHTTPRequest(b *testing.B) {
	target := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // as a target that takes a body does
		_, _ = io.WriteString(w, "ok")
	}))
	var dialled atomic.Int64 // the proxy's connections to the target
	target.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			dialled.Add(1)
		}
	}
	target.Start()
	defer target.Close()
	srv, alice := newSide(b), newSide(b)
	srv.authorize(b, "alice", alice)
	tlsSrv := srv.tlsServer(b, tlsbridge.ServerOptions{})
	_, addr, _, _ := startServer(b, srv, strings.TrimPrefix(target.URL, "http://"), ServerOptions{TLS: tlsSrv, HTTP: true})
	alice.pin(b, addr, srv)
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return alice.tlsClient(b).DialContext(ctx, network, addr)
		},
		MaxConnsPerHost: 1,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var state *tls.ConnectionState
	b.Run("request", func(b *testing.B) {
		b.ReportAllocs()
		start, cpu := dialled.Load(), keydirtest.CPUTime(b)
		for range b.N {
			resp, err := client.Get("https://" + addr + "/")
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			state = resp.TLS
		}
		b.ReportMetric(float64(dialled.Load()-start)/float64(b.N), "target-conns/op")
		b.ReportMetric(float64((keydirtest.CPUTime(b)-cpu).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
	})
	b.Run("post", func(b *testing.B) {
		b.ReportAllocs()
		start, cpu := dialled.Load(), keydirtest.CPUTime(b)
		for range b.N {
			resp, err := client.Post("https://"+addr+"/", "application/json", strings.NewReader(`{"name":"alice","n":1}`))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatal(resp.Status)
			}
		}
		b.ReportMetric(float64(dialled.Load()-start)/float64(b.N), "target-conns/op")
		b.ReportMetric(float64((keydirtest.CPUTime(b)-cpu).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
	})
	b.Run("decide", func(b *testing.B) {
		// The server's view of the same connection: the client's
		// certificate as its peer's.
		leaf, err := x509.ParseCertificate(alice.id.Certificate.Certificate[0])
		if err != nil {
			b.Fatal(err)
		}
		cs := &tls.ConnectionState{Version: state.Version, HandshakeComplete: true, PeerCertificates: []*x509.Certificate{leaf}}
		r := httptest.NewRequest("GET", "https://"+addr+"/", nil)
		r.TLS, r.RemoteAddr = cs, "127.0.0.1:50000"
		b.ReportAllocs()
		for range b.N {
			p, err := tlsSrv.PeerOf(r)
			if err != nil || !p.Authenticated() {
				b.Fatal(err, p.Err)
			}
		}
	})
}
