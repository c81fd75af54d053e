package cli

import (
	"net"
	"testing"
	"time"
)

// TestProxyMaxStartups: keytool proxy --max-startups 2 holds two silent
// connections (sending nothing, a minute of handshake timeout) in their
// handshake, and closes the next one as it is accepted, logging the
// limit as given — the flag reaches the proxy, all sources together, the
// per-source bound (64) far above it.
func TestProxyMaxStartups(t *testing.T) {
	home := pxGen(t)
	proxy, addr := pxProxy(t, home, "--target", "127.0.0.1:1", "--max-startups", "2", "--handshake-timeout", "1m")
	// Each connection is counted in its own goroutine, at once but not
	// before its Dial returns: a connection the proxy did not close
	// within 200 ms is held, one more silent, and the next is tried.
	var refused bool
	for i := 0; i < 20 && !refused; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Read(make([]byte, 1))
		refused = n == 0 && !pxIsTimeout(err)
		if refused && i < 2 {
			t.Fatalf("connection %d closed with %v, MaxStartups 2", i+1, err)
		}
	}
	if !refused {
		t.Fatal("20 silent connections held, --max-startups 2")
	}
	proxy.waitFor(t, `level=WARN msg=refused remote=127\.0\.0\.1:\d+ reason="too many connections still in their handshake \(MaxStartups 2\)" in_handshake=2\n`, 5*time.Second)
}

// pxIsTimeout tells a read that hit its deadline.
func pxIsTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
