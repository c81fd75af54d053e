//go:build !unix

package testnet

import (
	"net"
	"testing"
)

// RefusedAddr returns an address on 127.0.0.1 nothing listens on: here
// a port listened on and closed again, which a later listener of the
// process may be given (on unix the port stays bound for the test).
func RefusedAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ln.Close()
	return ln.Addr().String()
}
