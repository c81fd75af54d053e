package proxy

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// TestProxyProtocolAuthorityControlBytes: the PP2_TYPE_AUTHORITY TLV
// carried the client's SNI as sent. crypto/tls checks nothing of an SNI
// but a trailing dot, so an admitted client could put CR, LF, NUL (and
// bytes that are not UTF-8, which the specification says the TLV is) in
// it; a target that copies the authority into a header or a log line of
// its own (HAProxy's fc_pp_authority, nginx's
// $proxy_protocol_tlv_authority) was handed the client's line breaks.
// Found by review. A server name that cannot be a host's is left out
// (TestProxyHeaderServerName has the rule).
func TestProxyProtocolAuthorityControlBytes(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)

	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := tln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n, _ := io.ReadAtLeast(c, buf, 16)
		got <- buf[:n]
	}()

	_, addr, _, _ := startServer(t, srv, tln.Addr().String(), ServerOptions{ProxyProtocol: true})
	sni := "app.example\r\nX-Keytool-Name: admin\x00"
	conn, err := tls.Dial("tcp", addr, &tls.Config{
		InsecureSkipVerify: true, // the proxy's key is no matter here
		ServerName:         sni,
		Certificates:       []tls.Certificate{alice.id.Certificate},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("x")) // TLS 1.3: the proxy decides once the client's Finished is in
	header := <-got
	_, _, tlvs, _, err := parseProxyV2(header)
	if err != nil {
		t.Fatalf("header: %v (% x)", err, header)
	}
	for _, tv := range tlvs {
		if tv.typ != PP2TypeAuthority {
			continue
		}
		for i := 0; i < len(tv.value); i++ {
			if c := tv.value[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("PP2_TYPE_AUTHORITY holds control byte %#x: %q", c, tv.value)
			}
		}
		t.Errorf("PP2_TYPE_AUTHORITY sent for a server name that cannot be a host's: %q", tv.value)
	}
}
