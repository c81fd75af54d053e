package testnet

import (
	"errors"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// FullBacklog returns the address of a socket on 127.0.0.1 that listens
// and accepts nothing, its queue of connections full: Linux drops the
// SYN of every further connection, so a dial to it waits, as a dial to a
// host that is down or behind a firewall dropping packets does — without
// leaving the loopback interface. The socket and the connection that
// fills it are closed when the test ends.
func FullBacklog(tb testing.TB) string {
	tb.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "full-backlog")
	tb.Cleanup(func() { f.Close() })
	// A backlog of 0 holds one connection; the kernel refuses the SYN of
	// the next one while it waits unaccepted.
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		tb.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		tb.Fatal(err)
	}
	addr := (&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}).String()
	// The first connection fills the queue; the dial after it must time
	// out. A dial that fails otherwise, or one that times out before any
	// got in (a goroutine stalled on a loaded machine), proves nothing.
	filled := 0
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		var ne net.Error
		switch {
		case err == nil:
			filled++
			tb.Cleanup(func() { c.Close() })
		case errors.As(err, &ne) && ne.Timeout() && filled > 0:
			return addr // the queue is full: this dial got no answer
		case errors.As(err, &ne) && ne.Timeout():
			continue
		default:
			tb.Fatalf("testnet: dialling %s to fill its queue: %v", addr, err)
		}
	}
	tb.Fatalf("testnet: %s still accepts connections after %d: the kernel does not drop SYNs when the queue is full", addr, filled)
	return ""
}
