package proxy

import (
	"net"
	"testing"
	"time"
)

// writtenConn is a connection whose Write has put its bytes on the wire
// (written is closed) but does not return until release is: a writer
// descheduled between the system call and counting what it wrote.
type writtenConn struct {
	net.Conn
	written, release chan struct{}
}

func (c *writtenConn) Write(p []byte) (int, error) {
	close(c.written)
	<-c.release
	return len(p), nil
}

func (c *writtenConn) Close() error { return nil }

// TestCountSettlesWritesUnderWay: the counts of an HTTP-mode connection
// are read once every write under way has counted its bytes — HTTP/2
// writes from a goroutine of its own, and its last write, which the
// client already has, was left out of keytool_proxy_bytes_total and the
// "closed" line when the connection was seen to end first (under -race,
// 55,154 bytes out for a 64 KiB answer).
func TestCountSettlesWritesUnderWay(t *testing.T) {
	inner := &writtenConn{written: make(chan struct{}), release: make(chan struct{})}
	c := &countConn{Conn: inner}
	go c.Write(make([]byte, 100))
	<-inner.written
	settled := make(chan int64, 1)
	go func() {
		_, out := c.settle()
		settled <- out
	}()
	select {
	case out := <-settled:
		t.Fatalf("settled at %d bytes out with a write of 100 under way", out)
	case <-time.After(50 * time.Millisecond): // settle is waiting, as it must
	}
	close(inner.release)
	if out := <-settled; out != 100 {
		t.Errorf("settled at %d bytes out, want the write's 100", out)
	}
}
