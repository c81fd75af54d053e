package enroll

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/tlsbridge"
)

// startPassingServer is keytool proxy --enroll in front of an HTTP
// service: a connection whose key is authorized goes to the service,
// which records every request it gets, body included, as an application
// logging its requests would (and answers 501, as Python's http.server
// answers a POST, 404 to the rest); the others go to ServeConn.
func startPassingServer(t *testing.T, h *home) (addr string, seen func() string) {
	t.Helper()
	clients := h.clients(t)
	srv, err := tlsbridge.NewServer(h.id, tlsbridge.ServerOptions{Clients: clients, AllowUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	handler, err := NewHandler(HandlerOptions{Dir: InvitesDir(h.dir), Clients: clients, ServerKey: h.id.Key,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got strings.Builder
	service := func(c *tls.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		fmt.Fprintf(&got, "%s %s %s\n", req.Method, req.URL.Path, body)
		mu.Unlock()
		status := "404 Not Found"
		if req.Method == http.MethodPost {
			status = "501 Unsupported method ('POST')"
		}
		fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				c := conn.(*tls.Conn)
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if err := c.HandshakeContext(ctx); err != nil {
					return
				}
				cs := c.ConnectionState()
				p, err := srv.Peer(&cs, netipOf(c.RemoteAddr()))
				switch {
				case err == nil && p.Authenticated():
					service(c)
				case err == nil && p.MayEnroll():
					_ = c.SetDeadline(time.Time{})
					_ = ServeConn(ctx, c, handler)
				}
			})
		}
	})
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	return ln.Addr().String(), func() string { mu.Lock(); defer mu.Unlock(); return got.String() }
}

// TestSecretNotSentToTheService: a client whose key is authorized
// already, joining with a new token — join run again, or given a second
// token — at a keytool proxy --enroll: the proxy passes its connections
// to the service behind it, the enrollment request included, so the
// token's secret went to that service, in the body of a POST it does not
// serve (found by review). The invitation stays pending, and whoever
// reads what the service receives — its request log, a debugging proxy,
// its operators — held a working token: any key of theirs could be
// enrolled under its name until it expires. Join now learns first, with a
// request that carries nothing, whether its requests reach keytool's
// enrollment gate; the secret goes only there.
func TestSecretNotSentToTheService(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	addr, seen := startPassingServer(t, srvHome)
	if _, err := cli.join(t, srvHome.invite(t, "laptop", addr)); err != nil {
		t.Fatalf("the first join: %v", err)
	}
	again := srvHome.invite(t, "laptop-again", addr)
	_, err := cli.join(t, again)
	var ne *NotEnrollmentError
	if !errors.As(err, &ne) {
		t.Errorf("joining again, the key authorized: %v; want a *NotEnrollmentError", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(again.Secret[:])
	if got := seen(); strings.Contains(got, secret) {
		t.Errorf("the service behind the proxy received the token's secret:\n%s", got)
	}
	invs, _ := ListInvites(InvitesDir(srvHome.dir))
	for _, inv := range invs {
		if inv.Name == "laptop-again" && inv.Status(time.Now()) != "pending" {
			t.Errorf("laptop-again is %s", inv.Status(time.Now()))
		}
	}
	// A client not authorized yet still enrolls with it.
	if res, err := newHome(t).join(t, again); err != nil || res.Name != "laptop-again" {
		t.Fatalf("a new client with the second token: %v", err)
	}
}

// TestGateAnswer: the probe's answer that lets the secret go is keytool's
// 403 naming this client's key, in today's body or that of the first
// versions of the handler; a service's answer, a 403 of its own, or one
// naming another key is not.
func TestGateAnswer(t *testing.T) {
	cli := newHome(t)
	fp := cli.key().Fingerprint()
	for _, c := range []struct {
		status int
		body   string
		want   bool
	}{
		{403, `{"error":"forbidden","reason":"not_authorized","message":"…","fingerprint":"` + fp + `","key_id":"k"}`, true},
		{403, `{"error":"this client's key is not trusted by the server","error_code":403,"fingerprint":"` + fp + `","reason":"only the enrollment endpoint serves…","hint":"…"}`, true},
		{404, `{"error":"forbidden","reason":"not_authorized","fingerprint":"` + fp + `"}`, false},
		{403, `{"error":"forbidden","reason":"not_authorized","fingerprint":"SHA256:another"}`, false},
		{403, `{"error":"forbidden","reason":"not_authorized"}`, false},
		{403, `{"error":"forbidden","fingerprint":"` + fp + `"}`, false},
		{403, `Forbidden`, false},
		{200, `hello laptop`, false},
	} {
		resp := &http.Response{StatusCode: c.status, Body: io.NopCloser(strings.NewReader(c.body))}
		if got := gateAnswer(resp, cli.id); got != c.want {
			t.Errorf("%d %s: %v, want %v", c.status, c.body, got, c.want)
		}
	}
}
