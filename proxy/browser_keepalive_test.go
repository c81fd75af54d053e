package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestClientChecksEveryRequestOfAConnection: a browser whose pool of
// connections is not split by site may send a page's request on a
// connection another page's request opened to the client proxy. Every
// request of a connection is read, as the target reads it — its body by
// Content-Length or by chunks, the next head after it — and checked as
// the first is: a cross-site request after a same-site one is answered
// 403 and nothing of it reaches the target. Before (found by review,
// 2026-12-05): only the first request of a connection was looked at,
// and everything after it passed. A request hidden in a body is a body
// (as the target reads it), framing the two could read differently is
// refused, and after an upgrade the other protocol's bytes pass.
func TestClientChecksEveryRequestOfAConnection(t *testing.T) {
	logs := &logBuffer{}
	addr := clientProxyTo(t, echoTarget(t), ClientOptions{Logger: logs.logger()})

	const ok1 = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
	evil := "GET /steal HTTP/1.1\r\nHost: localhost\r\nOrigin: https://attacker.example\r\n\r\n"
	hidden := "GET /x HTTP/1.1\r\nHost: attacker.example\r\n\r\n"
	upgrade := "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
	cases := []struct {
		name   string
		sends  []string // written one after the other, each echoed before the next is sent
		then   string   // sent last
		refuse string   // the reason logged, or "" for: echoed as it is
	}{
		{"a cross-site request after a same-site one", []string{ok1}, evil, "comes from https://attacker.example"},
		{"after a body of known length", []string{"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello"}, evil, "comes from https://attacker.example"},
		{"after a chunked body and its trailer", []string{"POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"}, evil, "comes from https://attacker.example"},
		{"after empty lines", []string{ok1 + "\r\n"}, evil, "comes from https://attacker.example"},
		{"a request in a body is the body", []string{fmt.Sprintf("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n%s", len(hidden), hidden)}, ok1, ""},
		{"a request in a chunk is the chunk", []string{fmt.Sprintf("POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(hidden), hidden)}, ok1, ""},
		{"after an upgrade the target did not switch for", []string{upgrade}, evil, "comes from https://attacker.example"},
		{"both Content-Length and Transfer-Encoding", []string{ok1}, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + hidden, "both Content-Length and Transfer-Encoding"},
		{"two lengths", nil, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n" + hidden, "two Content-Length headers"},
		{"a folded header", nil, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n Content-Length: 40\r\n\r\n" + hidden, "folded header line"},
		{"a coding not chunked", nil, "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n" + hidden, "Transfer-Encoding other than chunked"},
		{"no request where one must begin", []string{ok1}, "\x16\x03\x01" + hidden, "not an HTTP/1.x request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
			for _, s := range c.sends {
				if _, err := io.WriteString(conn, s); err != nil {
					t.Fatal(err)
				}
				b := make([]byte, len(s))
				if _, err := io.ReadFull(conn, b); err != nil || string(b) != s {
					t.Fatalf("%q: echoed %q, %v", s, b, err)
				}
			}
			got, _ := exchange(conn.(*net.TCPConn), c.then)
			if c.refuse == "" {
				if got != c.then {
					t.Errorf("got %q, want %q echoed", trim(got), c.then)
				}
				return
			}
			if !strings.HasPrefix(got, "HTTP/1.1 403 Forbidden\r\n") || strings.Contains(got, "Host:") {
				t.Errorf("got %q, want the proxy's 403 and nothing from the target", trim(got))
			}
			logs.waitFor(t, `level=WARN msg="refused a browser's cross-site request" .*reason=".*`+regexp.QuoteMeta(c.refuse))
		})
	}
}

// TestClientPassesAKeepAliveHTTPClient: what the gate follows request by
// request is HTTP/1.1 as clients send it: Go's own client, keeping one
// connection to the proxy for requests with bodies of known length and
// chunked ones, reaches a net/http server behind the server proxy with
// every request and every byte of its body.
func TestClientPassesAKeepAliveHTTPClient(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		fmt.Fprintf(w, "%s %d", r.Method, len(b))
	}))
	t.Cleanup(app.Close)
	addr := clientProxyTo(t, strings.TrimPrefix(app.URL, "http://"), ClientOptions{})

	var dials int
	var dialMu sync.Mutex
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxConnsPerHost: 1,
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			dialMu.Lock()
			dials++
			dialMu.Unlock()
			return (&net.Dialer{}).DialContext(ctx, network, a)
		},
	}}
	big := strings.Repeat("x", 100<<10)
	for i, req := range []func() (*http.Request, error){
		func() (*http.Request, error) { return http.NewRequest("GET", "http://"+addr+"/", nil) },
		func() (*http.Request, error) {
			return http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(big))
		},
		func() (*http.Request, error) {
			// An io.Reader of unknown length: sent chunked.
			return http.NewRequest("POST", "http://"+addr+"/", struct{ io.Reader }{bufio.NewReader(strings.NewReader(big))})
		},
		func() (*http.Request, error) { return http.NewRequest("GET", "http://"+addr+"/", nil) },
	} {
		r, err := req()
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(r)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %s %q", i, resp.Status, b)
		}
	}
	if dials != 1 {
		t.Errorf("%d connections to the proxy, want 1 (kept alive)", dials)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 4 || bodies[1] != big || bodies[2] != big {
		t.Errorf("the server read %d requests, bodies of %d and %d bytes; want 4, %d and %d", len(bodies), len(bodies[1]), len(bodies[2]), len(big), len(big))
	}
}

// TestClientPassesAStreamTheTargetSwitchedTo: after a request to switch
// protocols that the target grants — 101 to a WebSocket or docker's
// "Upgrade: tcp", 200 to CONNECT, after interim answers if any — what
// the client sends is the other protocol's and passes as it is, however
// much it looks like a request.
func TestClientPassesAStreamTheTargetSwitchedTo(t *testing.T) {
	for _, c := range []struct{ name, req, answer string }{
		{"WebSocket", "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"},
		{"docker attach", "POST /v1.47/containers/c/attach?stream=1&stdin=1 HTTP/1.1\r\nHost: api.moby.localhost\r\nUpgrade: tcp\r\nConnection: Upgrade\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"},
		{"WebSocket, after 100 Continue", "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nExpect: 100-continue\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"},
		{"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "HTTP/1.1 200 Connection established\r\n\r\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := clientProxyTo(t, switchingTarget(t, c.answer), ClientOptions{})
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
			if _, err := io.WriteString(conn, c.req); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, len(c.answer))
			if _, err := io.ReadFull(conn, b); err != nil || string(b) != c.answer {
				t.Fatalf("answered %q, %v", b, err)
			}
			stream := "GET /x HTTP/1.1\r\nHost: attacker.example\r\nOrigin: https://attacker.example\r\n\r\n"
			if got, _ := exchange(conn.(*net.TCPConn), stream); got != stream {
				t.Errorf("the switched-to stream: got %q, want it echoed", trim(got))
			}
		})
	}
}

// switchingTarget is a plain TCP server that reads a request head,
// answers it with answer, and then echoes the rest of the connection.
func switchingTarget(t testing.TB, answer string) string {
	t.Helper()
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if line == "\r\n" {
						break
					}
				}
				_, _ = io.WriteString(c, answer)
				if _, err := io.Copy(c, r); err == nil {
					_ = c.(*net.TCPConn).CloseWrite()
				}
			}()
		}
	}()
	return ln.Addr().String()
}
