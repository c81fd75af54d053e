package proxy

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/tlsbridge"
)

// BenchmarkConnOverhead measures, alone, what the metrics and the PROXY
// protocol add to each connection through a server-mode proxy, to set
// against a plain connection's CPU time (BenchmarkProxyOverhead in
// cmd/keytool, about a millisecond, nearly all of it the TLS handshake):
//
//   - metrics: the handshake counted, the connection opened and closed
//     with its bytes;
//   - proxyproto-header: the header built, with its TLVs, from a real
//     connection state;
//   - proxyproto-write: that header written to a loopback TCP connection
//     (the one system call it adds).
//
// Run it with
//
//	go test ./proxy -run '^$' -bench ConnOverhead
func BenchmarkConnOverhead(b *testing.B) {
	b.Run("metrics", func(b *testing.B) {
		m := NewMetrics()
		b.ReportAllocs()
		for range b.N {
			m.handshake(resultAdmitted, reasonKey)
			m.opened()
			m.closed(1200, 34000)
		}
	})
	cs, peer := benchConnState(b)
	src, dst := netip.MustParseAddrPort("192.0.2.10:51234"), netip.MustParseAddrPort("198.51.100.1:8443")
	b.Run("proxyproto-header", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = proxyHeader(src, dst, peerTLVs(cs, peer, peer.Fingerprint()))
		}
	})
	b.Run("proxyproto-write", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
			}
		}()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		b.ReportAllocs()
		for range b.N {
			if _, err := conn.Write(proxyHeader(src, dst, peerTLVs(cs, peer, peer.Fingerprint()))); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchConnState is the state of a TLS 1.3 connection whose client
// presented side's certificate, and the peer a proxy would have decided.
func benchConnState(b *testing.B) (*tls.ConnectionState, *tlsbridge.Peer) {
	s := newSide(b)
	leaf, err := x509.ParseCertificate(s.id.Certificate.Certificate[0])
	if err != nil {
		b.Fatal(err)
	}
	cs := &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256,
		ServerName: "db.example", PeerCertificates: []*x509.Certificate{leaf}}
	peer := &tlsbridge.Peer{Certificate: leaf, SPKIHash: sha256.Sum256(leaf.RawSubjectPublicKeyInfo),
		Entry: &authkeys.Entry{Name: "alice"}}
	return cs, peer
}
