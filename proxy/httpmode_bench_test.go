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
	"testing"
	"time"

	"github.com/keytool/keytool/tlsbridge"
)

// BenchmarkHTTPRequest sets what HTTP mode's decision on each request
// costs (tlsbridge.Server.PeerOf: "decide") against a whole request on a
// keep-alive connection through the proxy to a local target
// ("request"), in one run:
//
//	go test ./proxy -run '^$' -bench HTTPRequest -benchmem
func BenchmarkHTTPRequest(b *testing.B) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
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
		for range b.N {
			resp, err := client.Get("https://" + addr + "/")
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			state = resp.TLS
		}
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
