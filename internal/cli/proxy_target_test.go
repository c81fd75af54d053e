package cli

import (
	"net"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
)

// TestProxyClientTargetSilent: keytool proxy --client logs a connection
// whose target never answers in connect's words, naming the target and
// --handshake-timeout — a target whose SYNs are dropped as one it could
// not connect to, one that accepts and never speaks as no TLS handshake
// — where it said "context deadline exceeded" under "target refused".
func TestProxyClientTargetSilent(t *testing.T) {
	home := newClientHome(t)
	down := testnet.FullBacklog(t)
	mute, err := net.Listen("tcp", "127.0.0.1:0") // never accepts
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	for _, c := range []struct{ target, line string }{
		{down, `level=ERROR msg="target unreachable" remote=127\.0\.0\.1:\d+ target=` + regexpQuote(down) +
			` reason="could not connect to ` + regexpQuote(down) + ` within 1s: is the address right, and is the host up\?"\n`},
		{mute.Addr().String(), `level=ERROR msg="target made no TLS handshake" remote=127\.0\.0\.1:\d+ target=` + regexpQuote(mute.Addr().String()) +
			` reason="no TLS handshake from ` + regexpQuote(mute.Addr().String()) + ` within 1s: is it a TLS server\?"\n`},
	} {
		proxy, addr := pxProxy(t, home, "--client", "--handshake-timeout", "1s", "--target", c.target)
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		proxy.waitFor(t, c.line, 10*time.Second)
	}
}
