package cli

import (
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/tlsbridge"
)

// hangUpServer is a keytool TLS server on 127.0.0.1 that admits the
// client key of clientHome, completes the handshake, sends nothing and
// hangs up as hangUp does; connect's pin for it is set. It returns its
// address.
func hangUpServer(t *testing.T, clientHome string, hangUp func(tc *tls.Conn, raw *net.TCPConn)) string {
	t.Helper()
	server := pxGen(t)
	pxMust(t, "", "keytool", "-H", server, "authorize", "--name", "laptop", filepath.Join(clientHome, "pub_key.json"))
	id, err := tlsbridge.LoadHomeIdentity(server, tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: authkeys.Load(authkeys.HomeOptions(server))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testnet.ServeEach(t, ln, func(c net.Conn) {
		tc := tls.Server(c, srv.TLSConfig())
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if tc.Handshake() == nil {
			hangUp(tc, c.(*net.TCPConn))
		}
	})
	addr := ln.Addr().String()
	pxMust(t, "", "keytool", "-H", clientHome, "trust-host", addr, "--key", filepath.Join(server, "pub_key.json"))
	return addr
}

// TestConnectServerHangsUp: a server that admits the client and hangs up
// without sending a byte — as keytool proxy does when its target is down
// — makes connect exit 1 with the one documented sentence (docs/cli.md,
// connect): while standard input is open, however it hangs up (a reset, a
// close_notify, the socket's close alone); and, when it resets, whether
// standard input is open or has ended. A reset came as crypto/tls's raw
// "read tcp …: connection reset by peer" once standard input had ended,
// as the sentence with that error in parentheses before. A server that
// reads standard input to its end and closes without answering is a sink:
// exit 0.
func TestConnectServerHangsUp(t *testing.T) {
	resetNow := func(_ *tls.Conn, raw *net.TCPConn) { _ = raw.SetLinger(0) }
	closeNow := func(tc *tls.Conn, _ *net.TCPConn) { _ = tc.Close() } // close_notify
	dropNow := func(*tls.Conn, *net.TCPConn) {}                       // the socket's close: no close_notify
	// After the client's close_notify: standard input has ended, its end
	// written, before the reset comes (the case that was the raw reset
	// every time).
	resetAfterInput := func(tc *tls.Conn, raw *net.TCPConn) {
		_, _ = io.Copy(io.Discard, tc)
		_ = raw.SetLinger(0)
	}
	sink := func(tc *tls.Conn, _ *net.TCPConn) {
		_, _ = io.Copy(io.Discard, tc)
		_ = tc.Close()
	}
	for _, tt := range []struct {
		name   string
		hangUp func(*tls.Conn, *net.TCPConn)
		stdin  *string // nil: left open
		code   int
	}{
		{"reset, input open", resetNow, nil, 1},
		{"close_notify, input open", closeNow, nil, 1},
		{"dropped, input open", dropNow, nil, 1},
		{"reset, input ended", resetNow, hangUpInput("hi\n"), 1},
		{"reset, no input", resetNow, hangUpInput(""), 1},
		{"reset after the input's end", resetAfterInput, hangUpInput("hi\n"), 1},
		{"reset after the end of no input", resetAfterInput, hangUpInput(""), 1},
		{"sink", sink, hangUpInput("hi\n"), 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := newClientHome(t)
			addr := hangUpServer(t, client, tt.hangUp)
			var o, e string
			var code int
			if tt.stdin == nil {
				p := pxStart(t, "keytool", "-H", client, "connect", addr)
				code = p.wait(t, 15*time.Second)
				o, e = p.stdout.String(), p.stderr.String()
			} else {
				o, e, code = pxRun(t, *tt.stdin, "keytool", "-H", client, "connect", addr)
			}
			want := ""
			if tt.code == 1 {
				want = "keytool connect: the connection was closed by " + addr + " before any data came back: is the service behind it down?\n"
			}
			if code != tt.code || o != "" || e != want {
				t.Errorf("exit status %d, want %d; stdout %q; stderr:\n%s\nwant:\n%s", code, tt.code, o, e, want)
			}
		})
	}
}

// hangUpInput is a standard input for connect, which nil leaves open.
func hangUpInput(s string) *string { return &s }
