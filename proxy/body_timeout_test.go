package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// bodyTarget is an HTTP target that reads each request's body to its
// end and answers 200 with its length; ended gets, for each request,
// what its body read ended with (nil: the whole body).
func bodyTarget(t *testing.T) (addr string, ended <-chan error) {
	addr, _, ended = bodyTargetBegun(t)
	return addr, ended
}

// bodyTargetBegun is bodyTarget, and begun gets the first byte of each
// request's body as the target reads it.
func bodyTargetBegun(t *testing.T) (addr string, begun <-chan byte, ended <-chan error) {
	t.Helper()
	ln := listen(t)
	ch, first := make(chan error, 10), make(chan byte, 10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [1]byte
		if _, err := io.ReadFull(r.Body, b[:]); err != nil {
			ch <- err
			return
		}
		first <- b[0]
		n, err := io.Copy(io.Discard, r.Body)
		n++
		ch <- err
		if err == nil {
			_, _ = io.WriteString(w, strings.Repeat("x", int(n)))
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), first, ch
}

// TestHTTPRequestBodyStalls: in HTTP mode, a client that sends a
// request's head and part of its body, then nothing, holds the
// request — a goroutine, the target's connection, a stream — no longer
// than RequestBodyTimeout: the proxy closes the client's connection
// without an answer (HTTP/1.1) or resets its stream (HTTP/2), as nginx
// closes one when client_body_timeout passes; the target's connection
// is closed, its body read failing; the log says it in words, with the
// client's identity. It held them until the client left.
func TestHTTPRequestBodyStalls(t *testing.T) {
	target, ended := bodyTarget(t)
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	_, addr, logs, _ := startServer(t, srv, target, ServerOptions{HTTP: true, RequestBodyTimeout: 300 * time.Millisecond})
	alice.pin(t, addr, srv)
	line := `level=INFO msg="request body stalled: closing" remote=127\.0\.0\.1:\d+ fingerprint=` + regexp.QuoteMeta(alice.id.Key.Fingerprint()) +
		` name=alice method=POST error="proxy: the client sent nothing of its request body for 300ms"\n`
	targetClosed := func(t *testing.T) {
		t.Helper()
		select {
		case err := <-ended:
			if err == nil {
				t.Error("the target read a whole body, want its connection closed mid-body")
			}
		case <-time.After(30 * time.Second): // a bound on a hang
			t.Error("the target's connection was kept open")
		}
	}

	t.Run("HTTP/1.1", func(t *testing.T) {
		conn := dialTLS(t, alice, addr)
		if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(conn)
		if len(got) != 0 || err != nil {
			t.Errorf("a body that stalls: %q (%v), want the connection closed with no answer", got, err)
		}
		targetClosed(t)
		logs.waitFor(t, line)
	})
	t.Run("HTTP/2", func(t *testing.T) {
		tr := &http.Transport{
			DialTLSContext: func(ctx context.Context, network, a string) (net.Conn, error) {
				return (&tls.Dialer{Config: h2Config(t, alice, a)}).DialContext(ctx, network, a)
			},
			ForceAttemptHTTP2: true,
		}
		defer tr.CloseIdleConnections()
		pr, pw := io.Pipe()
		defer pw.Close()
		go func() { _, _ = io.WriteString(pw, "0123456789") }()                  // and then nothing
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a bound on a hang
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "POST", "https://"+addr+"/", pr)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := tr.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a body that stalls over HTTP/2: %s, want the stream reset", resp.Status)
		}
		if errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stream error") {
			t.Errorf("a body that stalls over HTTP/2: %v, want the stream reset", err)
		}
		targetClosed(t)
		logs.waitFor(t, line)
	})
}

// TestHTTPRequestBodySlowNotStalled: RequestBodyTimeout bounds the time
// between two reads of a body, as nginx's client_body_timeout, not the
// whole body: one that comes a byte each tenth of the timeout, longer in
// all than the timeout, reaches the target whole and is answered.
func TestHTTPRequestBodySlowNotStalled(t *testing.T) {
	target, ended := bodyTarget(t)
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	_, addr, _, _ := startServer(t, srv, target, ServerOptions{HTTP: true, RequestBodyTimeout: 2 * time.Second})
	alice.pin(t, addr, srv)
	conn := dialTLS(t, alice, addr)
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 15\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	for range 15 {
		time.Sleep(200 * time.Millisecond)
		if _, err := io.WriteString(conn, "x"); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(got), "HTTP/1.1 200 ") || !strings.HasSuffix(string(got), strings.Repeat("x", 15)) {
		t.Errorf("a body of 3 s, a byte each 200 ms, under a 2 s timeout: %q, want 200 and the body", got)
	}
	if err := <-ended; err != nil {
		t.Errorf("the target's read of the body: %v", err)
	}
}

// TestHTTPRequestBodyBrokenOff: a client that sends part of a body and
// then resets its connection failed the request itself: the log says
// "request body failed", with its identity, and no target error is
// counted (it was counted as the target's, and logged as "target
// unreachable").
func TestHTTPRequestBodyBrokenOff(t *testing.T) {
	target, begun, _ := bodyTargetBegun(t)
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	m := NewMetrics()
	_, addr, logs, _ := startServer(t, srv, target, ServerOptions{HTTP: true, Metrics: m})
	alice.pin(t, addr, srv)
	conn := dialTLS(t, alice, addr)
	if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: app\r\nContent-Length: 100\r\n\r\n0123456789"); err != nil {
		t.Fatal(err)
	}
	<-begun // the target has the request, and waits for the rest of its body
	_ = conn.NetConn().(*net.TCPConn).SetLinger(0)
	conn.NetConn().Close() // a reset
	logs.waitFor(t, `level=INFO msg="request body failed" remote=127\.0\.0\.1:\d+ fingerprint=`+regexp.QuoteMeta(alice.id.Key.Fingerprint())+
		` name=alice method=POST error=".*reset`)
	awaitCounted(t, m)
}
