// Package freeport gives tests a loopback port that nothing listens on,
// for a server they start as a separate process with the port on its
// command line (python3 -m http.server PORT, nsd, etcd, a keytool
// proxy). Only tests import it.
//
// A port from 127.0.0.1:0 is taken from the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768–60999 by default) — the range every
// other test's listener on port 0 and every outgoing connection draw from
// too. Between closing such a port and the server binding it, another
// test running in parallel may get the same port, and the server then
// either fails to start or, worse, a check that "something listens there"
// finds the other test's server, and the test talks to a stranger
// (connect to an HTTP target answered by a TLS server: no byte back).
// So the ports come from below the ephemeral range, where only callers
// of this package pick, at random, each one checked free for TCP and UDP.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Port returns a port of 127.0.0.1 free for both TCP and UDP now,
// outside the kernel's ephemeral range.
func Port(tb testing.TB) int {
	tb.Helper()
	port, err := Find()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// Find is Port for callers without a testing.TB (testscript commands).
func Find() (int, error) {
	lo, hi := 20000, ephemeralLow()
	if hi-lo < 1000 {
		lo = 1024
	}
	for range 200 {
		port := lo + rand.IntN(hi-lo)
		if free(port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("freeport: no free port of 127.0.0.1 in %d-%d after 200 tries", lo, hi-1)
}

// ephemeralLow is the first port of the kernel's ephemeral range
// (32768 when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 1024 {
		return 32768
	}
	return n
}

func free(port int) bool {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}
