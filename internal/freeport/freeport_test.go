package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestPortIsFreeAndBelowTheEphemeralRange: the port can be listened on,
// over TCP and UDP, and is not one the kernel hands out for port 0.
func TestPortIsFreeAndBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		port := Port(t)
		if port >= ephemeralLow() || port < 1024 {
			t.Fatalf("port %d is not below the ephemeral range (from %d)", port, ephemeralLow())
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("port %d is not free for TCP: %v", port, err)
		}
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("port %d is not free for UDP: %v", port, err)
		}
		l.Close()
		u.Close()
	}
}

// TestTakenPortIsNotGiven: a port in use is never returned.
func TestTakenPortIsNotGiven(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(Port(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if free(l.Addr().(*net.TCPAddr).Port) {
		t.Fatal("a port with a listener counts as free")
	}
}
