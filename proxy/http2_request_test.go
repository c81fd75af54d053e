package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
)

// h2Status sends, as alice over HTTP/2 framed by hand (Go's client
// refuses to send what these tests send), one request of the header
// fields given, and says how the server answered: its :status, or
// "reset", "goaway", or the answer's first HPACK bytes for a status the
// static table does not hold (Go's server writes those it holds as the
// one byte of their index).
func h2Status(t *testing.T, alice *side, addr string, fields [][2]string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, h2Config(t, alice, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
	block := h2Literals(fields)
	out := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	out = append(out, h2Frame(4, 0, 0, nil)...)   // SETTINGS
	out = append(out, h2Frame(1, 5, 1, block)...) // HEADERS, END_STREAM and END_HEADERS
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}
	static := map[byte]string{0x88: "200", 0x89: "204", 0x8a: "206", 0x8b: "304", 0x8c: "400", 0x8d: "404", 0x8e: "500"}
	br := bufio.NewReader(conn)
	for {
		var h [9]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2]))
		if _, err := io.ReadFull(br, p); err != nil {
			t.Fatal(err)
		}
		stream := binary.BigEndian.Uint32(h[5:]) &^ (1 << 31)
		switch {
		case h[3] == 1 && stream == 1 && len(p) > 0 && static[p[0]] != "":
			return static[p[0]]
		case h[3] == 1 && stream == 1:
			return fmt.Sprintf("headers %x", p)
		case h[3] == 3 && stream == 1:
			return "reset"
		case h[3] == 7:
			return "goaway"
		}
	}
}

// TestHTTP2RequestHeldToHTTP1: an HTTP/2 request that no HTTP/1.1
// request could be — a method that is no token, an authority that is no
// Host, a path holding a space — is answered 400, as Go's HTTP/1.1
// server answers such a request line or Host, and reaches neither the
// target nor the target's error count nor the log. Go's HTTP/2 server
// checks none of them (only that a field holds no control byte); they
// went to the transport, which refused the method (502, logged at ERROR
// as "target unreachable" with the client's bytes — a C1 control
// character unescaped in JSON logs — once per request, and counted
// as the target's bad_response: any admitted client could fill the
// error log and set off the target-error alert of docs/deploy.md at
// will), sent an empty Host for an authority with a space, and wrote a
// query's space into the request line ("GET /?a HTTP/1.0 b HTTP/1.1").
func TestHTTP2RequestHeldToHTTP1(t *testing.T) {
	ln := listen(t)
	reached := make(chan string, 10)
	testnet.ServeEach(t, ln, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			reached <- strings.TrimSpace(line)
			for l := ""; l != "\r\n" && err == nil; l, err = br.ReadString('\n') {
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
	})
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	m := NewMetrics()
	_, addr, logs, _ := startServer(t, srv, ln.Addr().String(), ServerOptions{HTTP: true, Metrics: m})
	alice.pin(t, addr, srv)
	request := func(method, authority, path string) [][2]string {
		return [][2]string{{":method", method}, {":scheme", "https"}, {":authority", authority}, {":path", path}}
	}
	for _, tc := range []struct {
		name   string
		fields [][2]string
	}{
		{"method with a space", request("GET /admin", "app", "/")},
		{"method with a C1 control", request("G\u009b31mET", "app", "/")},
		{"method of non-ASCII bytes", request("G\xffT", "app", "/")},
		{"authority with a space", request("GET", "app evil", "/")},
		{"authority of non-ASCII bytes", request("GET", "\xff", "/")},
		{"query with a space", request("GET", "app", "/?a HTTP/1.0 b")},
		{"path with a space", request("GET", "app", "/a b")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := h2Status(t, alice, addr, tc.fields); got != "400" {
				t.Errorf("answered %s, want 400", got)
			}
		})
	}
	// A good request on the same proxy: its line is the first the target
	// gets, and the only one.
	if got := h2Status(t, alice, addr, request("GET", "app", "/ok")); got != "200" {
		t.Errorf("a good request: %s, want 200", got)
	}
	if got := <-reached; got != "GET /ok HTTP/1.1" {
		t.Errorf("the target got %q first, want the good request", got)
	}
	select {
	case got := <-reached:
		t.Errorf("the target got %q too", got)
	default:
	}
	awaitCounted(t, m) // nothing
	if strings.Contains(logs.String(), "target unreachable") || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("logged as the target's failure:\n%s", logs.String())
	}
}
