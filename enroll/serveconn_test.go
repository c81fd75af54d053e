package enroll

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/tlsbridge"
)

// pinnedClient is c as a tlsbridge client that connects to addr only if
// it presents srvHome's key, pinned here.
func (c *home) pinnedClient(t *testing.T, addr string, srvHome *home) *tlsbridge.Client {
	t.Helper()
	hosts := c.hosts(t)
	if _, err := hosts.Add(addr, srvHome.key().PublicKey()); err != nil {
		t.Fatal(err)
	}
	cl, err := tlsbridge.NewClient(c.id, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Strict})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// dialRaw opens a TLS connection to addr as c, the server's key pinned,
// on which the test writes what it likes.
func (c *home) dialRaw(t *testing.T, addr string, srvHome *home) *tls.Conn {
	t.Helper()
	conn, err := c.pinnedClient(t, addr, srvHome).DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// readRefusal reads the whole answer on conn and checks that it is
// tlsbridge's 403 for c's key, reason not_authorized, in tlsbridge's
// fields alone — what keytool connect recognises as the refusal of its key.
func (c *home) readRefusal(t *testing.T, conn *tls.Conn, what string) {
	t.Helper()
	answer, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("%s: reading the answer: %v (got %q)", what, err, answer)
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(answer))), nil)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("%s: got %q (%v), want tlsbridge's 403", what, answer, err)
	}
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	var fb tlsbridge.ForbiddenBody
	msg, _ := tlsbridge.ReasonNotAuthorized.Message()
	if err := dec.Decode(&fb); err != nil || fb.Error != "forbidden" || fb.Reason != tlsbridge.ReasonNotAuthorized || fb.Message != msg || fb.Fingerprint != c.key().Fingerprint() {
		t.Errorf("%s: body %+v (%v), want not_authorized for %s", what, fb, err, c.key().Fingerprint())
	}
}

// TestServeConnRefusesNonHTTP: a client of the service behind keytool
// proxy --enroll whose key is not authorized, and which does not speak
// HTTP, gets tlsbridge's 403 for its key — not net/http's 400, not a
// silent close: whether its first bytes are another protocol's, or it
// ends its stream without a word, or it waits for the server to speak
// first (answered after firstByteTimeout).
func TestServeConnRefusesNonHTTP(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{conn: true})
	for name, first := range map[string]string{
		"SSH":                "SSH-2.0-OpenSSH_9.6\r\n",
		"SMTP":               "EHLO client.example\r\n",
		"Redis":              "*1\r\n$4\r\nPING\r\n",
		"PostgreSQL":         "\x00\x00\x00\x08\x04\xd2\x16\x2f",
		"HTTP/1 version bad": "GET / HTTP/1.1x\r\n\r\n",
	} {
		c := newHome(t)
		conn := c.dialRaw(t, srv.addr, srvHome)
		if _, err := conn.Write([]byte(first)); err != nil {
			t.Fatal(err)
		}
		c.readRefusal(t, conn, name)
	}

	c := newHome(t)
	conn := c.dialRaw(t, srv.addr, srvHome)
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	c.readRefusal(t, conn, "nothing sent, stream ended")

	c = newHome(t)
	c.readRefusal(t, c.dialRaw(t, srv.addr, srvHome), "nothing sent, waiting for the server")
}

// TestServeConnHTTPInPieces: a request whose line comes in several
// records is read ahead whole and served by the HTTP server as before —
// here the enrollment endpoint's own refusal of a GET.
func TestServeConnHTTPInPieces(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{conn: true})
	c := newHome(t)
	conn := c.dialRaw(t, srv.addr, srvHome)
	for _, piece := range []string{"GE", "T " + Path[:5], Path[5:] + " HTT", "P/1.1\r", "\nHost: x\r\nConnection: close\r\n\r\n"} {
		if _, err := conn.Write([]byte(piece)); err != nil {
			t.Fatal(err)
		}
	}
	answer, err := io.ReadAll(conn)
	if err != nil || !strings.HasPrefix(string(answer), "HTTP/1.1 405 ") || !strings.Contains(string(answer), `"reason":"method_not_allowed"`) {
		t.Fatalf("got %q (%v), want the endpoint's 405", answer, err)
	}
}

// TestRequestLine: what ServeConn takes for the beginning of an HTTP/1
// request, as net/http reads one, and what it does not.
func TestRequestLine(t *testing.T) {
	for _, line := range []string{"GET / HTTP/1.1\r\n", "POST " + Path + " HTTP/1.0\n", "M-SEARCH * HTTP/1.1\r\n", "GET /caf\xc3\xa9?a=b HTTP/1.1\r\n", "PRI * HTTP/2.0\r\n"} {
		for i := range len(line) {
			if got := requestLine([]byte(line[:i])); got != linePartial {
				t.Errorf("%q: %v, want partial", line[:i], got)
			}
		}
		if got := requestLine([]byte(line + "Host: x\r\n")); got != lineComplete {
			t.Errorf("%q: %v, want complete", line, got)
		}
	}
	for _, b := range []string{
		" GET / HTTP/1.1\r\n", "\r\nGET / HTTP/1.1\r\n", "GET\r\n", "G(T / HTTP/1.1\r\n", "GET  HTTP/1.1\r\n",
		"GET /\x01 HTTP/1.1\r\n", "GET / HTTP/1.1 \r\n", "GET / HTTP/11\r\n", "GET / HTTP/1.1\rx", "GET / http/1.1\r\n",
		"SSH-2.0-OpenSSH_9.6\r\n", "\x16\x03\x01", "\xc3\xa9 / HTTP/1.1\r\n",
	} {
		if got := requestLine([]byte(b)); got != lineInvalid {
			t.Errorf("%q: %v, want invalid", b, got)
		}
	}
}

// TestServeConnClosesWithoutRequest: ServeConn closes conn, as it
// promises, when no HTTP server ran on it — after refusing a client that
// made no HTTP request, and after a connection that failed before one
// (reset by the client) — so that its caller does not keep the socket.
func TestServeConnClosesWithoutRequest(t *testing.T) {
	for name, client := range map[string]func(*net.TCPConn){
		"refused": func(c *net.TCPConn) {
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
			_, _ = io.ReadAll(c)
			_ = c.Close()
		},
		"reset": func(c *net.TCPConn) {
			_ = c.SetLinger(0)
			_ = c.Close()
		},
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			cc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			sc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			done := make(chan error, 1)
			go func() { done <- ServeConn(context.Background(), sc, http.NotFoundHandler()) }()
			client(cc.(*net.TCPConn))
			err = <-done
			if noReq := (*NoRequestError)(nil); (name == "refused") != errors.As(err, &noReq) {
				t.Errorf("ServeConn: %v", err)
			}
			if err := sc.SetReadDeadline(time.Time{}); !errors.Is(err, net.ErrClosed) {
				t.Errorf("the connection is still open after ServeConn returned (%v)", err)
			}
		})
	}
}

// ServeConn's requests carry the address of their connection
// (tlsbridge.ConnContext), which the rate limits count them against
// (remoteOf): without it, every client of keytool proxy --enroll would
// count against one address, the zero Addr.
func TestServeConnRecordsTheConnectionAddress(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	srv, err := tlsbridge.NewServer(srvHome.id, tlsbridge.ServerOptions{Clients: srvHome.clients(t), AllowUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	testnet.ServeEach(t, ln, func(c net.Conn) {
		_ = ServeConn(context.Background(), c, http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			a, ok := tlsbridge.RemoteAddrFromContext(r.Context())
			got <- fmt.Sprint(a, ok)
		}))
	})
	conn := cli.dialRaw(t, ln.Addr().String(), srvHome)
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(conn)
	if g, want := <-got, fmt.Sprint(netipOf(conn.LocalAddr()), true); g != want {
		t.Errorf("the request's connection address: %s, want %s", g, want)
	}
}
