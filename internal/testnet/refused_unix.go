//go:build unix

package testnet

import (
	"net"
	"os"
	"syscall"
	"testing"
)

// RefusedAddr returns an address on 127.0.0.1 whose dials are refused
// (ECONNREFUSED), and stay refused for the whole test: a TCP socket
// bound to the port, listening on nothing, held until the test ends. A
// port found by listening and closing again (the usual way) is free for
// the next listener of the process to be given — a FullBacklog made
// just after it got that very port, and a dial meant to be refused
// waited for its timeout instead (TestTargetErrorsCounted, in CI).
func RefusedAddr(tb testing.TB) string {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	syscall.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "refused")
	tb.Cleanup(func() { f.Close() })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	return (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
}
