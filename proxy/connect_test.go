package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
)

// tunnelTarget answers any request 200 and then copies back every byte
// it receives after the request's head, as a forward proxy's tunnel
// does; reached gets each request line it read.
func tunnelTarget(t *testing.T) (addr string, reached <-chan string) {
	t.Helper()
	ln := listen(t)
	ch := make(chan string, 10)
	testnet.ServeEach(t, ln, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		ch <- strings.TrimSpace(line)
		for l := ""; l != "\r\n" && err == nil; l, err = br.ReadString('\n') {
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		_, _ = io.Copy(c, br)
	})
	return ln.Addr().String(), ch
}

// TestHTTPConnectRefused: in HTTP mode a CONNECT request of an admitted
// key is answered 405, logged, and never reaches the target — over
// HTTP/1.1, over HTTP/2 (where the proxy used to forward it with the
// request's body as a stream: the client's bytes went raw to the target
// and the target's back, a tunnel of requests never cleaned nor
// decided), and as an extended CONNECT (RFC 8441, :protocol), which
// Go's server accepts with GODEBUG=http2xconnect=1: the test runs that
// case again in a process of its own with it set.
func TestHTTPConnectRefused(t *testing.T) {
	target, reached := tunnelTarget(t)
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	_, addr, logs, _ := startServer(t, srv, target, ServerOptions{HTTP: true})
	alice.pin(t, addr, srv)
	notReached := func(t *testing.T) {
		t.Helper()
		select {
		case line := <-reached:
			t.Errorf("the CONNECT reached the target: %q", line)
		default:
		}
	}
	refusedLogged := func(t *testing.T, protocol string) {
		t.Helper()
		logs.waitFor(t, `level=WARN msg="`+msgConnectRefused+`" remote=127\.0\.0\.1:\d+ fingerprint=\S+ name=alice method=CONNECT protocol=`+protocol+`\n`)
	}
	xconnect := strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1")

	t.Run("HTTP/1.1", func(t *testing.T) {
		if xconnect {
			t.Skip("run in the parent process")
		}
		conn := dialTLS(t, alice, addr)
		if _, err := io.WriteString(conn, "CONNECT 10.0.0.1:22 HTTP/1.1\r\nHost: 10.0.0.1:22\r\n\r\nSSH-2.0-client\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		if resp.StatusCode != http.StatusMethodNotAllowed || strings.Contains(string(b), target) {
			t.Errorf("CONNECT over HTTP/1.1: %s %q, want 405 and nothing of the target", resp.Status, b)
		}
		if got := resp.Header.Values("Allow"); len(got) != 1 || got[0] != allowedMethods {
			t.Errorf("CONNECT over HTTP/1.1: Allow %q, want %q (RFC 9110 section 15.5.6)", got, allowedMethods)
		}
		notReached(t)
		refusedLogged(t, `""`)
	})
	t.Run("HTTP/2", func(t *testing.T) {
		if xconnect {
			t.Skip("run in the parent process")
		}
		tr := &http.Transport{
			DialTLSContext: func(ctx context.Context, network, a string) (net.Conn, error) {
				return (&tls.Dialer{Config: h2Config(t, alice, a)}).DialContext(ctx, network, a)
			},
			ForceAttemptHTTP2: true,
		}
		defer tr.CloseIdleConnections()
		pr, pw := io.Pipe()
		defer pw.Close()
		go func() { _, _ = io.WriteString(pw, "SSH-2.0-client\r\n") }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second) // a bound on a hang: a tunnel would echo forever
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "CONNECT", "https://"+addr, pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = "10.0.0.1:22"
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusMethodNotAllowed || len(b) != 0 {
			t.Errorf("CONNECT over HTTP/2: %s %s %q, want HTTP/2 405 and no tunnel", resp.Proto, resp.Status, b)
		}
		if got := resp.Header.Values("Allow"); len(got) != 1 || got[0] != allowedMethods {
			t.Errorf("CONNECT over HTTP/2: Allow %q, want %q (RFC 9110 section 15.5.6)", got, allowedMethods)
		}
		notReached(t)
		refusedLogged(t, `""`)
	})
	t.Run("extended", func(t *testing.T) {
		if !xconnect {
			// The server reads GODEBUG once, at start: without
			// http2xconnect=1 it resets a stream with :protocol.
			if got := extendedConnect(t, alice, addr); got != "reset" {
				t.Errorf("an extended CONNECT without http2xconnect: %s, want the stream reset", got)
			}
			notReached(t)
			cmd := exec.Command(os.Args[0], "-test.run=^TestHTTPConnectRefused$/^extended$", "-test.v")
			cmd.Env = append(os.Environ(), "GODEBUG=http2xconnect=1")
			if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS: TestHTTPConnectRefused/extended") {
				t.Errorf("with GODEBUG=http2xconnect=1: %v\n%s", err, out)
			}
			return
		}
		if got := extendedConnect(t, alice, addr); got != "headers, end of stream" {
			t.Errorf("an extended CONNECT: %s, want an answer that ends the stream", got)
		}
		notReached(t)
		refusedLogged(t, "websocket")
	})
}

// h2Config is alice's TLS configuration for addr, offering HTTP/2 alone.
func h2Config(t *testing.T, alice *side, addr string) *tls.Config {
	t.Helper()
	cfg, err := alice.tlsClient(t).TLSConfig(addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"h2"}
	return cfg
}

// extendedConnect sends, as alice over HTTP/2 framed by hand (Go's
// client refuses a :protocol header), an extended CONNECT for
// WebSocket and a first message, and says how the server answered
// the stream: "headers" (", end of stream" when they end it), "reset",
// or "goaway".
func extendedConnect(t *testing.T, alice *side, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, h2Config(t, alice, addr))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN: %q, want h2", p)
	}
	block := h2Literals([][2]string{
		{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "https"}, {":path", "/chat"},
		{":authority", addr}, {"sec-websocket-version", "13"},
	})
	out := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	out = append(out, h2Frame(4, 0, 0, nil)...)             // SETTINGS
	out = append(out, h2Frame(1, 4, 1, block)...)           // HEADERS, END_HEADERS
	out = append(out, h2Frame(0, 0, 1, []byte("hello"))...) // DATA
	if _, err := conn.Write(out); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for {
		var h [9]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			t.Fatal(err)
		}
		n := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
			t.Fatal(err)
		}
		stream := binary.BigEndian.Uint32(h[5:]) &^ (1 << 31)
		switch {
		case h[3] == 1 && stream == 1 && h[4]&1 != 0:
			return "headers, end of stream"
		case h[3] == 1 && stream == 1:
			return "headers"
		case h[3] == 3 && stream == 1:
			return "reset"
		case h[3] == 7:
			return "goaway"
		}
	}
}

// TestHTTPAllowedMethodsPass: every method the 405 to a CONNECT lists
// in its Allow header reaches the target, over HTTP/1.1 and HTTP/2: the
// header says what the proxy passes, not a guess.
func TestHTTPAllowedMethodsPass(t *testing.T) {
	reached := make(chan string, 20)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.Method
	}))
	defer target.Close()
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	_, addr, _, _ := startServer(t, srv, strings.TrimPrefix(target.URL, "http://"), ServerOptions{HTTP: true})
	alice.pin(t, addr, srv)
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{
			DialTLSContext: func(ctx context.Context, network, a string) (net.Conn, error) {
				cfg := h2Config(t, alice, a)
				if !h2 {
					cfg.NextProtos = nil
				}
				return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, a)
			},
			ForceAttemptHTTP2: h2,
		}
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		for _, m := range strings.Split(allowedMethods, ", ") {
			req, err := http.NewRequest(m, "https://"+addr+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s (HTTP/2 %v): %v", m, h2, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
				t.Errorf("%s (HTTP/2 %v): %s %s, want 200", m, h2, resp.Proto, resp.Status)
				continue
			}
			if got := <-reached; got != m {
				t.Errorf("%s (HTTP/2 %v): the target got %s", m, h2, got)
			}
		}
		tr.CloseIdleConnections()
	}
}
