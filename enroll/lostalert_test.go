package enroll

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/keytool/keytool/authkeys"
)

// TestJoinReadsTheAlertTheRequestLost: a server that refuses the
// client's key in the handshake is reported as such even where the
// probe's error does not carry the server's alert. In TLS 1.3 the alert
// comes after the client's handshake is over, and net/http may lose it
// (its read loop closes the connection on the alert, and the request's
// write fails on the closed connection): CI saw "use of closed network
// connection" where TestJoinFailures expects a *HandshakeRefusedError.
// Here a relay drops the alert of the first connection for certain:
// Join must dial again and read it.
func TestJoinReadsTheAlertTheRequestLost(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	srv := startServer(t, srvHome, serverConfig{noEnroll: true})
	addr := relay(t, func(n int) (string, bool) { return srv.addr, n == 1 })
	f := &failure{srvHome: srvHome, cli: cli, srv: srv, tok: srvHome.invite(t, "laptop", addr)}
	err := f.join(t, f.tok)
	var he *HandshakeRefusedError
	if !errors.As(err, &he) || he.Addr != addr || he.ClientFingerprint != cli.key().Fingerprint() {
		t.Fatalf("got %v, want a *HandshakeRefusedError", err)
	}
}

// TestJoinProbeLostSaysNothingWasSent: a probe that gets no answer and
// no alert, dialled again to no more avail, is reported as the probe's
// failure — the secret was not sent, nothing was written — not as an
// enrollment whose outcome the server's log tells.
func TestJoinProbeLostSaysNothingWasSent(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	srv := startServer(t, srvHome, serverConfig{noEnroll: true})
	addr := relay(t, func(int) (string, bool) { return srv.addr, true })
	f := &failure{srvHome: srvHome, cli: cli, srv: srv, tok: srvHome.invite(t, "laptop", addr)}
	err := f.join(t, f.tok)
	var ne *NotEnrollmentError
	if !errors.As(err, &ne) || !ne.Probe || !strings.Contains(err.Error(), "the secret was not sent and nothing was written") || strings.Contains(err.Error(), "whether it enrolled") {
		t.Fatalf("got %v, want the probe's failure", err)
	}
}

// TestJoinAnswerLostAfterTheSecret: where the enrollment request reached
// the server, which enrolled the client, and its answer was lost, Join
// says so — nothing written here, the server's log says whether it
// enrolled this client — and does not dial again: another key met then
// would be reported as an interception that says the secret was not
// sent, and a refusal as "nothing was written" (found by review). Here
// the relay passes the probe, drops the server's answer to the request,
// and sends any later connection to a server with another key.
func TestJoinAnswerLostAfterTheSecret(t *testing.T) {
	srvHome, cli, other := newHome(t), newHome(t), newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	impostor := startServer(t, other, serverConfig{})
	addr := relay(t, func(n int) (string, bool) {
		if n >= 3 {
			return impostor.addr, false
		}
		return srv.addr, n == 2
	})
	_, err := cli.join(t, srvHome.invite(t, "laptop", addr))
	var ne *NotEnrollmentError
	if !errors.As(err, &ne) || errors.As(err, new(*InterceptionError)) || !strings.Contains(err.Error(), "the server's log says whether it enrolled this client") {
		t.Fatalf("got %v, want the request's own error", err)
	}
	if d := srvHome.clients(t).Decide(cli.key().SPKIHash(), netipOf(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})); d.Verdict != authkeys.Authorized {
		t.Fatalf("the server did not enroll the client (%v): the test's relay lost the request, not its answer", d.Verdict)
	}
}

// relay listens on 127.0.0.1 and relays its n-th connection (from 1) to
// the address plan gives; where plan says cut, it passes nothing the
// server sends once the client has sent its second handshake flight (its
// first encrypted record), and closes the client's side when the server
// closes its own: the client's handshake completes, and neither the
// server's alert nor its answer ever comes.
func relay(t *testing.T, plan func(n int) (to string, cut bool)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			to, drop := plan(n)
			s, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			var cut atomic.Bool
			go func() { // server to client
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if cut.Load() {
						return // the alert or answer: anything after the client's flight
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
