package enroll

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// TestServeConnFirstByteFromHandshakeEnd: the time a client has to send
// its first byte counts from the end of the TLS handshake, not from the
// connection's start. ServeConn is handed a *tls.Conn whose handshake is
// not done (as tls.Listener's Accept returns it); the client connects,
// waits longer than the first-byte limit before it starts its handshake
// (a slow link, a loaded server), then sends its request right behind the
// handshake's end: it is served, and the handler sees its certificate in
// r.TLS (the state after the handshake, not the empty one before).
// Counted from ServeConn's start, the limit passed during the handshake,
// which failed, and the client was never served.
func TestServeConnFirstByteFromHandshakeEnd(t *testing.T) {
	const limit = time.Second // a client's request comes within it of the handshake's end, even under -race
	srvHome, c := newHome(t), newHome(t)
	srv, err := tlsbridge.NewServer(srvHome.id, tlsbridge.ServerOptions{Clients: srvHome.clients(t), AllowUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate in r.TLS", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "served "+jwk.FormatFingerprint(sha256.Sum256(r.TLS.PeerCertificates[0].RawSubjectPublicKeyInfo)))
	})
	ctx, cancel := context.WithCancel(context.Background())
	accepted := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		conn, err := ln.Accept() // a *tls.Conn, its handshake not done
		if err != nil {
			return
		}
		accepted <- struct{}{}
		_ = serveConn(ctx, conn, h, limit, connLifetime)
	}()
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })

	addr := ln.Addr().String()
	cfg, err := c.pinnedClient(t, addr, srvHome).TLSConfig(addr)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	<-accepted
	// Past the limit counted from the connection's start (ServeConn's).
	time.Sleep(limit + limit/2)
	conn := tls.Client(raw, cfg)
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if err := conn.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	answer, err := io.ReadAll(conn)
	want := "served " + c.key().Fingerprint()
	if !strings.HasPrefix(string(answer), "HTTP/1.1 200 ") || !strings.HasSuffix(string(answer), want) {
		t.Fatalf("got %q (%v), want 200 and %q", answer, err, want)
	}
}

// TestServeConnHTTP2Lifetime: an HTTP/2 client on the gate that keeps a
// stream open is cut off at the connection's lifetime. net/http's
// server, keep-alives off, closes an HTTP/2 connection only once none of
// its streams is open, and bounds a stream that sends nothing more only
// by its write timeout (15 s); a client that opens the next stream before
// the last ends held the connection for good. Here the handler never
// answers: the stream ends when the connection does, at the lifetime
// (1 s), far before the 15 s of the stream's own timeout.
func TestServeConnHTTP2Lifetime(t *testing.T) {
	const lifetime = time.Second
	srvHome, c := newHome(t), newHome(t)
	srv, err := tlsbridge.NewServer(srvHome.id, tlsbridge.ServerOptions{Clients: srvHome.clients(t), AllowUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{NextProtos: []string{"h2", "http/1.1"}} // as proxy --http offers
	if err := srv.Configure(cfg); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // a stream kept open
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		conn, err := ln.Accept() // one connection only
		if err != nil {
			served <- err
			return
		}
		served <- serveConn(ctx, conn, h, time.Second, lifetime)
	}()
	t.Cleanup(func() { cancel(); ln.Close() })

	addr := ln.Addr().String()
	ccfg, err := c.pinnedClient(t, addr, srvHome).TLSConfig(addr)
	if err != nil {
		t.Fatal(err)
	}
	ccfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", addr, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	dialed := false
	tr := &http.Transport{
		ForceAttemptHTTP2: true,
		TLSClientConfig:   ccfg,
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
			if dialed {
				return nil, io.EOF // the one connection only
			}
			dialed = true
			return conn, nil
		},
	}
	defer tr.CloseIdleConnections()
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "https://"+addr+"/", nil)
	start := time.Now()
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("a stream the handler never answers was answered %s", resp.Status)
	}
	if rctx.Err() != nil {
		t.Fatalf("the connection was still open after %v (its lifetime %v): %v", time.Since(start), lifetime, err)
	}
	select {
	case <-served:
	case <-time.After(10 * time.Second):
		t.Fatal("serveConn did not return once the connection's lifetime was over")
	}
}
