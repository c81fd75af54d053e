package enroll

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// TestJoinReadsTheAlertTheRequestLost: a server that refuses the
// client's key in the handshake is reported as such even where the
// request's error does not carry the server's alert. In TLS 1.3 the alert
// comes after the client's handshake is over, and net/http may lose it
// (its read loop closes the connection on the alert, and the request's
// write fails on the closed connection): CI saw "use of closed network
// connection" where the test below it expects a *HandshakeRefusedError.
// Here a relay drops the alert of the first connection for certain:
// Join must dial again and read it.
func TestJoinReadsTheAlertTheRequestLost(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	srv := startServer(t, srvHome, serverConfig{noEnroll: true})
	relay := alertDropper(t, srv.addr)
	f := &failure{srvHome: srvHome, cli: cli, srv: srv, tok: srvHome.invite(t, "laptop", relay)}
	err := f.join(t, f.tok)
	var he *HandshakeRefusedError
	if !errors.As(err, &he) || he.Addr != relay || he.ClientFingerprint != cli.key().Fingerprint() {
		t.Fatalf("got %v, want a *HandshakeRefusedError", err)
	}
}

// alertDropper listens on 127.0.0.1 and relays each connection to
// target; of the first, it passes nothing the server sends once the
// client has sent its second handshake flight (its first encrypted
// record), and closes the client's side when the server closes its own:
// the client's handshake completes, and the server's alert never comes.
func alertDropper(t *testing.T, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	first := true
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			drop := first
			first = false
			wg.Add(2)
			var cut atomic.Bool
			go func() { // server to client
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if cut.Load() {
						return // the alert, or anything after the client's flight
					}
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() { // client to server, record by record
				defer wg.Done()
				defer s.Close()
				if !drop {
					io.Copy(s, c)
					return
				}
				hdr := make([]byte, 5)
				for {
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
					if _, err := io.ReadFull(c, body); err != nil {
						return
					}
					if hdr[0] == 23 { // application data: the client's second flight
						cut.Store(true)
					}
					if _, err := s.Write(append(hdr, body...)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}
