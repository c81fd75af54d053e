package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUnauthenticatedPeersLeaveNothing: what peers without an admitted
// key can make a server-mode proxy hold, with its target down. Silent
// connections, a ClientHello trickled a byte at a time (slowloris: each
// byte would renew a deadline that was set per read), handshakes with an
// unknown key, and admitted clients whose target refuses them: each is
// closed by the proxy — the trickle before its record is whole, since the
// handshake's deadline is one for the whole handshake —, and afterwards
// no handler runs, no startup is counted (MaxStartups, per source or in
// all) and the goroutines are back to their level. Review of 2026-12-03
// (docs/security.md): held.
func TestUnauthenticatedPeersLeaveNothing(t *testing.T) {
	srv, alice, mallory := newSide(t), newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	down := listen(t)
	target := down.Addr().String()
	down.Close() // refused from now on
	p, addr, logs, _ := startServer(t, srv, target, ServerOptions{HandshakeTimeout: 300 * time.Millisecond})
	alice.pin(t, addr, srv)
	mallory.pin(t, addr, srv)

	var wg sync.WaitGroup
	fail := make(chan string, 64)
	run := func(f func() string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if msg := f(); msg != "" {
				fail <- msg
			}
		}()
	}
	dial := func() (net.Conn, string) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err.Error()
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
		return c, ""
	}
	for range 8 { // silent
		run(func() string {
			c, msg := dial()
			if c == nil {
				return msg
			}
			defer c.Close()
			if _, err := io.ReadAll(c); err != nil && !isReset(err) {
				return "silent connection: " + err.Error()
			}
			return ""
		})
	}
	for range 4 { // a ClientHello record of 512 bytes, a byte every 20 ms
		run(func() string {
			c, msg := dial()
			if c == nil {
				return msg
			}
			defer c.Close()
			closed := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, c); close(closed) }()
			record := append([]byte{0x16, 0x03, 0x01, 0x02, 0x00}, make([]byte, 512)...)
			for i := range record {
				select {
				case <-closed:
					return ""
				case <-time.After(20 * time.Millisecond):
				}
				if _, err := c.Write(record[i : i+1]); err != nil {
					return ""
				}
			}
			return "a ClientHello trickled a byte every 20 ms was read to its end: the handshake's deadline moved with each byte"
		})
	}
	for range 4 { // an unknown key
		run(func() string {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := mallory.tlsClient(t).DialContext(ctx, "tcp", addr)
			if err != nil {
				return ""
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err == nil || n > 0 {
				return "an unknown key's connection was not refused"
			}
			return ""
		})
	}
	for range 4 { // admitted, the target down
		run(func() string {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := alice.tlsClient(t).DialContext(ctx, "tcp", addr)
			if err != nil {
				return "alice: " + err.Error()
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			if b, err := io.ReadAll(c); len(b) > 0 || (err != nil && !isReset(err)) {
				return "alice, the target down: " + string(b) + " " + errString(err)
			}
			return ""
		})
	}
	wg.Wait()
	close(fail)
	for msg := range fail {
		t.Error(msg)
	}
	logs.waitFor(t, `msg="target unreachable"`)
	for deadline := time.Now().Add(30 * time.Second); p.l.open() > 0; time.Sleep(5 * time.Millisecond) { // a bound on a hang
		if time.Now().After(deadline) {
			t.Fatalf("%d handlers still running:\n%s", p.l.open(), logs)
		}
	}
	total, sources := p.startups.inTotal(), p.startups.perSource.Sources()
	if total != 0 || sources != 0 {
		t.Errorf("startups still counted: %d in all, %d sources", total, sources)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	g0, g1 := goroutines(t, logs, "listening"), goroutines(t, logs, `"stopped accepting`)
	if g1 > g0+2 {
		t.Errorf("goroutines leaked: %d when listening, %d after the peers left", g0, g1)
	}
	if t.Failed() {
		t.Logf("proxy's log:\n%s", logs)
	}
}

// isReset tells a connection the proxy reset (it closed with bytes
// unread).
func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || errors.Is(err, net.ErrClosed))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
