package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/faillog"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// TestRemoveForged: every spelling of an identity header is removed —
// other cases (as HTTP/2 and raw header maps carry them), underscores for
// dashes, unknown X-Keytool-* names, X-Forwarded-* and Forwarded, and the
// address, certificate and user headers of other proxies (X-Real-IP,
// X-SSL-Client-*, X-Client-Cert*, RFC 9440's Client-Cert, X-Remote-User…)
// — from headers and trailers alike; the three X-Forwarded-* that the
// proxy set itself stay in the headers; other headers are untouched.
func TestRemoveForged(t *testing.T) {
	h := http.Header{
		"X-Keytool-Name": {"admin"}, "x-keytool-fingerprint": {"SHA256:forged"}, "X_Keytool_Key_Id": {"x"},
		"X-Keytool-Role": {"admin"}, "X-Forwarded-Client-Cert": {"Hash=00"}, "x_forwarded_client_cert": {"Hash=00"},
		"X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Host": {"h"}, "X-Forwarded-Proto": {"https"},
		"X_Forwarded_For": {"6.6.6.6"}, "X-Forwarded-Port": {"1"}, "Forwarded": {"for=6.6.6.6"}, "FORWARDED": {"for=6.6.6.6"},
		"Accept": {"*/*"}, "X-Request-Id": {"abc"},
		// Other proxies' address, certificate and user headers.
		"X-Real-Ip": {"6.6.6.6"}, "X_REAL_IP": {"6.6.6.6"}, "X-Client-Ip": {"6.6.6.6"}, "Client-Ip": {"6.6.6.6"},
		"True-Client-Ip": {"6.6.6.6"}, "Cf-Connecting-Ip": {"6.6.6.6"}, "Fastly-Client-Ip": {"6.6.6.6"}, "X-Cluster-Client-Ip": {"6.6.6.6"},
		"X-Ssl-Client-Cert": {"pem"}, "X-SSL-Client-Verify": {"SUCCESS"}, "X-Ssl-Client-S-Dn": {"CN=admin"}, "X-Ssl-Cert": {"pem"},
		"Ssl_Client_S_Dn": {"CN=admin"}, "X-Client-Cert": {"pem"}, "X-Client-Cert-Present": {"true"}, "X-Client-Verify": {"SUCCESS"},
		"X-Client-Dn": {"CN=admin"}, "Client-Cert": {":MII=:"}, "Client-Cert-Chain": {":MII=:"}, "X-Amzn-Mtls-Clientcert": {"pem"},
		"X-Forwarded-Tls-Client-Cert": {"pem"}, "X-Remote-User": {"admin"}, "X-Remote-Group": {"system:masters"},
		"X-Remote-Extra-Scopes": {"all"}, "Remote-User": {"admin"}, "X-Auth-Request-User": {"admin"},
		// Look-alikes that are not identity headers stay.
		"X-Client-Version": {"1.2"}, "X-Ssl": {"on"}, "Client-Hints": {"x"},
	}
	trailer := http.Header{"X-Keytool-Name": {"admin"}, "X-Forwarded-For": {"6.6.6.6"}, "X-Checksum": {"1"}}
	removeForged(h, true)
	removeForged(trailer, false)
	keys := func(h http.Header) []string {
		var k []string
		for name := range h {
			k = append(k, name)
		}
		slices.Sort(k)
		return k
	}
	if got, want := keys(h), []string{"Accept", "Client-Hints", "X-Client-Version", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id", "X-Ssl"}; !slices.Equal(got, want) {
		t.Errorf("headers left: %v, want %v", got, want)
	}
	if got, want := keys(trailer), []string{"X-Checksum"}; !slices.Equal(got, want) {
		t.Errorf("trailers left: %v, want %v", got, want)
	}
}

// A client naming the identity headers in Connection (hop-by-hop: a proxy
// deletes the headers Connection names) cannot make the proxy delete the
// ones it adds, nor keep its forged ones: ReverseProxy applies Connection
// before Rewrite, which removes and sets them. The target sees the
// admitted peer's identity whatever the client sent.
func TestHopByHopCannotRemoveIdentity(t *testing.T) {
	got := make(chan http.Header, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	defer target.Close()
	h := newHTTPMode(strings.TrimPrefix(target.URL, "http://"), targetAddr{"tcp", strings.TrimPrefix(target.URL, "http://")}, slog.New(slog.DiscardHandler), faillog.New(slog.New(slog.DiscardHandler)), httpTimeouts{5 * time.Second, time.Minute, time.Minute, DefaultIdleTimeout}, nil)
	defer h.srv.Close()
	peer := &tlsbridge.Peer{SPKIHash: [32]byte{1}, Entry: &authkeys.Entry{Name: "alice"}}
	req := httptest.NewRequest("GET", "https://app.example/", nil)
	req.Header.Set("Connection", "X-Keytool-Name, X-Keytool-Fingerprint, X-Keytool-Key-Id, X-Forwarded-Client-Cert, Forwarded, X-Forwarded-For")
	req.Header.Set("X-Keytool-Name", "admin")
	req.Header.Set("X-Keytool-Fingerprint", "SHA256:forged")
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req = req.WithContext(context.WithValue(req.Context(), peerKey{}, peer))
	rec := httptest.NewRecorder()
	h.rp.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	hdr := <-got
	for name, want := range map[string]string{
		HeaderName: "alice", HeaderFingerprint: peer.Fingerprint(), HeaderKeyID: peer.KeyID(), "X-Forwarded-For": "192.0.2.1",
	} {
		if v := hdr.Values(name); len(v) != 1 || v[0] != want {
			t.Errorf("%s: %q, want %q", name, v, want)
		}
	}
	for _, name := range []string{HeaderClientCert, "Forwarded"} {
		if len(hdr.Values(name)) != 1 {
			t.Errorf("%s: %q, want the proxy's one", name, hdr.Values(name))
		}
	}
}

// An entry's name that is not shown as it is (a file of an earlier
// version: "ad\u200bmin", which reads "admin"; a bidi override) is not
// sent as X-Keytool-Name, as a name with a control character is not, and
// the one the client forged is still removed: the target sees no name,
// and the fingerprint (docs/design.md, "Names").
func TestNameHeaderOnlyPrintable(t *testing.T) {
	got := make(chan http.Header, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	defer target.Close()
	h := newHTTPMode(strings.TrimPrefix(target.URL, "http://"), targetAddr{"tcp", strings.TrimPrefix(target.URL, "http://")}, slog.New(slog.DiscardHandler), faillog.New(slog.New(slog.DiscardHandler)), httpTimeouts{5 * time.Second, time.Minute, time.Minute, DefaultIdleTimeout}, nil)
	defer h.srv.Close()
	for name, want := range map[string][]string{
		"ad\u200bmin": nil, "x\u202eevil": nil, "\u2066admin\u2069": nil, "alice\u00a0laptop": nil, "a\x1bb": nil,
		"alice": {"alice"}, "ünïcode 世界": {"ünïcode 世界"},
	} {
		peer := &tlsbridge.Peer{SPKIHash: [32]byte{1}, Entry: &authkeys.Entry{Name: name}}
		req := httptest.NewRequest("GET", "https://app.example/", nil)
		req.Header.Set("X-Keytool-Name", "admin")
		req = req.WithContext(context.WithValue(req.Context(), peerKey{}, peer))
		rec := httptest.NewRecorder()
		h.rp.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%q: status %d", name, rec.Code)
		}
		hdr := <-got
		if v := hdr.Values(HeaderName); !slices.Equal(v, want) {
			t.Errorf("name %q: %s %q, want %q", name, HeaderName, v, want)
		}
		if v := hdr.Values(HeaderFingerprint); len(v) != 1 || v[0] != peer.Fingerprint() {
			t.Errorf("name %q: %s %q", name, HeaderFingerprint, v)
		}
	}
}

// XFCC's Subject is sent only for a client a CA vouched for: a client
// admitted by its key wrote its certificate's subject itself.
func TestClientCertSubjectOnlyViaCA(t *testing.T) {
	cert := &x509.Certificate{Raw: []byte("der"), Subject: pkix.Name{CommonName: "admin"}}
	for _, viaCA := range []bool{false, true} {
		peer := &tlsbridge.Peer{Certificate: cert, ViaCA: viaCA}
		in := httptest.NewRequest("GET", "https://app.example/", nil)
		in = in.WithContext(context.WithValue(in.Context(), peerKey{}, peer))
		out := http.Header{}
		setPeer(out, in)
		if got := strings.Contains(out.Get(HeaderClientCert), `Subject="CN=admin"`); got != viaCA {
			t.Errorf("via CA %t: %s: %q", viaCA, HeaderClientCert, out.Get(HeaderClientCert))
		}
	}
}

// TestHTTPRequestDecidedAgain: in HTTP mode with KeepOpenOnRevoke, each
// request on a kept-open connection (HTTP/1.1 keep-alive, HTTP/2) is
// decided again: once the key is
// revoked, the next request on the same connection gets 403 with
// tlsbridge's ForbiddenBody (naming none of the server's files or
// entries), the refusal is logged — once for its source and reason, then
// counted — and nothing reaches the target. (The
// identity headers came from the handshake, so a revoked client went on
// as itself.)
func TestHTTPRequestDecidedAgain(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			reached := make(chan string, 10)
			target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached <- r.Header.Get(HeaderName)
				_, _ = io.WriteString(w, "hello "+r.Header.Get(HeaderName))
			}))
			defer target.Close()
			m := NewMetrics()
			w := startWatchedWith(t, strings.TrimPrefix(target.URL, "http://"), ServerOptions{KeepOpenOnRevoke: true, HTTP: true, Metrics: m})
			alice := newSide(t)
			w.authorize(t, "alice", alice)
			tr := &http.Transport{
				DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					cfg, err := alice.tlsClient(t).TLSConfig(addr)
					if err != nil {
						return nil, err
					}
					if h2 {
						cfg.NextProtos = []string{"h2"}
					}
					return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, addr)
				},
				MaxConnsPerHost:   1,
				ForceAttemptHTTP2: h2,
			}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			get := func() (status int, body string, reused bool) {
				t.Helper()
				trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
				req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", "https://"+w.addr+"/", nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
					t.Fatalf("%s, want HTTP/2 %v", resp.Proto, h2)
				}
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b), reused
			}
			if status, body, _ := get(); status != http.StatusOK || body != "hello alice" {
				t.Fatalf("before the revocation: %d %q", status, body)
			}
			<-reached
			revoked := filepath.Join(w.opts.RevokedDirs[0], "alice.json")
			keydirtest.Put(t, revoked, keydirtest.JWK(t, alice.id.Key.PublicKey()))
			w.logs.waitFor(t, `msg="trust reloaded" authorized=\+0/-0 revoked=\+1/-0`)
			status, body, reused := get()
			if !reused {
				t.Fatal("the second request did not reuse the kept-open connection")
			}
			if status != http.StatusForbidden || !strings.Contains(body, `"reason":"revoked"`) || !strings.Contains(body, alice.id.Key.Fingerprint()) {
				t.Errorf("a request of a revoked key on a kept-open connection: %d %q; want 403, reason revoked", status, body)
			}
			for _, secret := range []string{"alice", "revoked_keys", filepath.Dir(w.opts.RevokedDirs[0])} {
				if strings.Contains(body, secret) {
					t.Errorf("the 403's body names %q: %s", secret, body)
				}
			}
			select {
			case name := <-reached:
				t.Errorf("the refused request reached the target (as %q)", name)
			default:
			}
			w.logs.waitFor(t, `level=WARN msg="request refused: key no longer admitted" remote=127\.0\.0\.1:\d+ fingerprint=`+
				regexp.QuoteMeta(alice.id.Key.Fingerprint())+` name=alice method=GET reason=".*revoked`)
			// The client may go on sending requests as fast as it likes:
			// they are counted, not logged each (found by review: a line
			// per request).
			for range 20 {
				if status, _, _ := get(); status != http.StatusForbidden {
					t.Fatalf("a request of the revoked key: %d", status)
				}
			}
			if n := strings.Count(w.logs.String(), msgRequestRefused); n != 1 {
				t.Errorf("%d lines for 21 refused requests, want 1 (then a count every %v)", n, faillog.Interval)
			}
			// Each is counted, by the decision's reason: after the
			// handshake, no handshake counts them.
			awaitCounted(t, m, `keytool_proxy_requests_refused_total{reason="revoked"} 21`)
		})
	}
}

// TestHTTPBodyAnsweredAsRead: over HTTP/1.1, a target that answers a POST
// as soon as it has read the body gets its whole answer to the client,
// even when the proxy's transport checks the body for more past its
// Content-Length only after the answer began to reach the client
// (lateBody makes that order certain; under load it happens by itself):
// the proxy's HTTP server must not have closed the body under the
// transport, which then drops the target's connection and cuts the
// answer (golang/go#40747).
func TestHTTPBodyAnsweredAsRead(t *testing.T) {
	const size = 64 << 10
	answer := strings.Repeat("a", 4*size)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, err := io.Copy(io.Discard, r.Body); err != nil || n != size {
			t.Errorf("the target read %d bytes of the body, %v", n, err)
		}
		// The start of the answer, then the rest a moment later: the
		// answer is still on its way when the transport reads on.
		_, _ = io.WriteString(w, answer[:size])
		http.NewResponseController(w).Flush()
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, answer[size:])
	}))
	defer target.Close()
	peer := &tlsbridge.Peer{SPKIHash: [32]byte{1}, Entry: &authkeys.Entry{Name: "alice"}}
	h := newHTTPMode(strings.TrimPrefix(target.URL, "http://"), targetAddr{"tcp", strings.TrimPrefix(target.URL, "http://")}, slog.New(slog.DiscardHandler), faillog.New(slog.New(slog.DiscardHandler)), httpTimeouts{5 * time.Second, time.Minute, time.Minute, DefaultIdleTimeout},
		func(*http.Request) (*tlsbridge.Peer, error) { return peer, nil })
	defer h.srv.Close()
	h.rp.Transport = lateBody{h.rp.Transport}

	srv := newSide(t)
	ln := listen(t)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conn := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{srv.id.Certificate}, NextProtos: []string{"http/1.1"}})
			go func() {
				defer conn.Close()
				if conn.Handshake() == nil {
					h.serve(context.Background(), conn, nil)
				}
			}()
		}
	}()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},                  // not a test of pinning
		TLSNextProto:    map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1
	}}
	for i := range 3 {
		resp, err := client.Post("https://"+ln.Addr().String()+"/", "application/octet-stream", strings.NewReader(strings.Repeat("b", size)))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(body) != len(answer) {
			t.Fatalf("POST %d: %d of the answer's %d bytes, %v", i+1, len(body), len(answer), err)
		}
	}
}

// lateBody is a RoundTripper whose requests' bodies, once their
// Content-Length is read, wait 100 ms before each further read: the
// transport's check that the body holds no more then comes after the
// target's answer has begun to reach the client.
type lateBody struct{ rt http.RoundTripper }

func (l lateBody) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.ContentLength > 0 {
		r = r.Clone(r.Context())
		r.Body = &lateReader{ReadCloser: r.Body, left: r.ContentLength}
	}
	return l.rt.RoundTrip(r)
}

type lateReader struct {
	io.ReadCloser
	left int64
}

func (l *lateReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		time.Sleep(100 * time.Millisecond)
	}
	n, err := l.ReadCloser.Read(p)
	l.left -= int64(n)
	return n, err
}

// pythonBodyIgnored is a single-threaded target on Python's http.server
// whose GET handler, as many do, never reads a request's body. It
// answers /seen with the requests it served before, one "path name"
// each, and any other path with "ok"; it closes a connection lingering,
// draining what was not read (closed at once, the unread body made the
// kernel answer with a reset, which could cut the answer short).
const pythonBodyIgnored = `
import json, http.server, socket
seen = []
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        if self.path == "/seen":
            body = json.dumps(seen).encode()
        else:
            seen.append(self.path + " " + str(self.headers.get("X-Keytool-Name")))
            body = b"ok"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
class S(http.server.HTTPServer):
    def handle_error(self, *a): pass # a connection reset as the test ends
    def shutdown_request(self, c):
        # A lingering close, as nginx and Apache close: what the client
        # sent unread (a body) is drained, not answered with a reset.
        try:
            c.shutdown(socket.SHUT_WR); c.settimeout(5)
            while c.recv(4096): pass
        except OSError: pass
        c.close()
srv = S(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
`

// TestHTTPBodyCannotSmuggleRequest: a client sends a GET whose body is
// another request, naming itself admin. The target ignores the body;
// had the proxy kept the target connection open, the target read the
// body as the next request on it and served it as "admin" (the identity
// headers of a request inside a body are neither cleaned nor decided),
// its answer going to whichever request came next on that connection. A
// request with a body now ends its target connection: the target serves
// alice's GET and nothing else.
func TestHTTPBodyCannotSmuggleRequest(t *testing.T) {
	w := startWatchedWith(t, pythonTarget(t, pythonBodyIgnored), ServerOptions{HTTP: true})
	alice := newSide(t)
	w.authorize(t, "alice", alice)
	conn := dialTLS(t, alice, w.addr)
	smuggled := "GET /admin HTTP/1.1\r\nHost: app.example\r\nX-Keytool-Name: admin\r\n\r\n"
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: app.example\r\nContent-Length: %d\r\n\r\n%s", len(smuggled), smuggled)
	br := bufio.NewReader(conn)
	for _, want := range []string{"ok", `["/ alice"]`} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Fatalf("%s %q, want %q", resp.Status, body, want)
		}
		fmt.Fprintf(conn, "GET /seen HTTP/1.1\r\nHost: app.example\r\n\r\n")
	}
}

// TestHTTPBodyAfterTheAnswer: a client sends a request's head, reads the
// answer (the target answers without reading the body), then sends the
// body and a second request on the same connection, which is answered.
// The transport was still reading the body when the handler returned,
// and reaching its end restarted the server's background read of the
// connection beside its read of the next request: the server panicked
// ("invalid concurrent Body.Read call") and dropped the connection.
func TestHTTPBodyAfterTheAnswer(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok "+r.Method)
	}))
	defer target.Close()
	w := startWatchedWith(t, strings.TrimPrefix(target.URL, "http://"), ServerOptions{HTTP: true})
	alice := newSide(t)
	w.authorize(t, "alice", alice)
	conn := dialTLS(t, alice, w.addr)
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\n\r\n")
	for i, want := range []string{"ok POST", "ok GET"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i+1, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Fatalf("answer %d: %s %q, want %q", i+1, resp.Status, body, want)
		}
		if i == 0 {
			fmt.Fprintf(conn, "hello"+"GET / HTTP/1.1\r\nHost: app.example\r\n\r\n")
		}
	}
}

// In HTTP mode, each request's "from" rules are checked against its
// connection's address, which the proxy's HTTP server records
// (tlsbridge.ConnContext): a key allowed from 127.0.0.0/8 is admitted
// request after request. Without the hook, tlsbridge refuses such a key
// at every request rather than trust r.RemoteAddr.
func TestHTTPModeFromRules(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.Header.Get(HeaderName))
	}))
	defer target.Close()
	w := startWatchedWith(t, strings.TrimPrefix(target.URL, "http://"), ServerOptions{HTTP: true})
	bob := newSide(t)
	k := keydirtest.WithAttrs(bob.id.Key.PublicKey(), jwk.AttrName, "bob", jwk.AttrFrom, "127.0.0.0/8")
	keydirtest.Put(t, filepath.Join(w.opts.Dirs[0], "bob.json"), keydirtest.JWK(t, k))
	for deadline := time.Now().Add(30 * time.Second); w.store.Decide(bob.id.Key.SPKIHash(), netip127).Verdict != authkeys.Authorized; time.Sleep(5 * time.Millisecond) { // a bound on a hang
		if time.Now().After(deadline) {
			t.Fatal("bob was not authorized")
		}
	}
	bob.pin(t, w.addr, w.srv)
	tr := bob.tlsClient(t).Transport()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := range 2 { // the second on the kept-alive connection
		resp, err := client.Get("https://" + w.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "hello bob" {
			t.Errorf("request %d of a key allowed from 127.0.0.0/8: %d %q, want admitted", i+1, resp.StatusCode, body)
		}
	}
}
