package cli

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
)

// echoHeadersBackend is Python's http.server answering every GET with the
// request's headers, as received, in a JSON list of [name, value], and
// every POST with its body.
const echoHeadersBackend = `
import json, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = json.dumps({"path": self.path, "headers": list(self.headers.items())}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("listening", s.server_address[1], flush=True)
s.serve_forever()
`

// pxBackend starts Python running source, a server that prints
// "listening PORT" once it listens on 127.0.0.1 (written in dir), and
// returns it and its address.
func pxBackend(t *testing.T, dir, source string) (backend *pxProc, addr string) {
	t.Helper()
	script := filepath.Join(dir, "backend.py")
	pxWrite(t, script, source)
	backend = pxStart(t, "python3", "-u", script)
	return backend, "127.0.0.1:" + backend.waitFor(t, `listening (\d+)`, 10*time.Second)[1]
}

// pxHTTPProxy starts keytool proxy --http in front of target, with args,
// on a home of its own that authorizes alice's key: it returns the proxy,
// its address, and alice's certificate and key (files in dir) and SPKI
// hash (pxAuthorizedKey).
func pxHTTPProxy(t *testing.T, dir, target string, args ...string) (px *pxProc, addr, crt, key, spki string) {
	t.Helper()
	home := pxGen(t)
	crt, key, spki = pxAuthorizedKey(t, home, dir, "alice")
	px, addr = pxProxy(t, home, append([]string{"--target", target, "--http"}, args...)...)
	return px, addr, crt, key, spki
}

// TestProxyHTTPIdentityHeaders: keytool proxy --http in front of Python's
// http.server, which echoes the headers it received. curl, over HTTP/1.1
// and over HTTP/2, with the authorized key, forges every identity header
// it can — the proxy's own names in other cases and with underscores
// (which CGI and WSGI fold into the same variable), an X-Keytool-* the
// proxy does not send, Envoy's X-Forwarded-Client-Cert, X-Forwarded-For
// and Forwarded. The backend sees exactly one of each identity header,
// with the admitted key's fingerprint, key ID and entry name, the
// certificate's SHA-256 in X-Forwarded-Client-Cert, the client's real
// address in X-Forwarded-For and Forwarded, and none of the forgeries.
// /metrics counts the bytes of --http connections: a body posted and
// echoed back over HTTP/1.1 and over HTTP/2 makes
// keytool_proxy_bytes_total grow by at least the bodies both ways (and
// not by much more: the handshakes, TLS framing and the requests' and
// responses' heads).
func TestProxyHTTPIdentityHeaders(t *testing.T) {
	pxNeed(t, "curl", "openssl", "python3")
	dir := t.TempDir()
	_, target := pxBackend(t, dir, echoHeadersBackend)
	px, addr, crt, key, spki := pxHTTPProxy(t, dir, target, "--metrics-listen", "127.0.0.1:0")
	fp := "SHA256:" + strings.TrimRight(spki, "=")
	metrics := "http://" + px.waitFor(t, `msg="serving health and metrics" addr=(127\.0\.0\.1:\d+)`, 5*time.Second)[1]

	pemBytes, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	certSum := sha256.Sum256(cert.Raw)

	forged := []string{
		"X-Keytool-Name: admin",
		"x-keytool-fingerprint: SHA256:forged",
		"X_Keytool_Name: admin",
		"X-KEYTOOL-KEY-ID: FORGED",
		"X-Keytool-Role: admin",
		"X-Forwarded-Client-Cert: Hash=00;Subject=\"CN=admin\"",
		"X_Forwarded_Client_Cert: Hash=00",
		"X-Forwarded-For: 6.6.6.6",
		"X_Forwarded_For: 6.6.6.6",
		"Forwarded: for=6.6.6.6",
		"X-Forwarded-Port: 1",
	}
	for _, version := range []string{"--http1.1", "--http2"} {
		args := []string{"-k", "--cert", crt, "--key", key, version, "-w", "\n%{http_version}"}
		for _, h := range forged {
			args = append(args, "-H", h)
		}
		out, msg, code := pxCurl(t, "https://"+addr+"/who", args...)
		if code != 0 {
			t.Fatalf("%s: curl exit %d: %s", version, code, msg)
		}
		body, httpVersion, _ := strings.Cut(out, "\n")
		if want := map[string]string{"--http1.1": "1.1", "--http2": "2"}[version]; httpVersion != want {
			t.Errorf("%s: curl spoke HTTP %s to the proxy", version, httpVersion)
		}
		var got struct {
			Path    string      `json:"path"`
			Headers [][2]string `json:"headers"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("%s: backend answered %q: %v", version, body, err)
		}
		seen := map[string][]string{}
		for _, h := range got.Headers {
			seen[strings.ToLower(h[0])] = append(seen[strings.ToLower(h[0])], h[1])
			if strings.Contains(h[1], "admin") || strings.Contains(h[1], "6.6.6.6") || strings.Contains(h[1], "forged") || strings.Contains(h[1], "FORGED") ||
				strings.Contains(h[0], "_") || strings.EqualFold(h[0], "X-Keytool-Role") || strings.EqualFold(h[0], "X-Forwarded-Port") {
				t.Errorf("%s: a forged header reached the backend: %s: %s", version, h[0], h[1])
			}
		}
		if got.Path != "/who" {
			t.Errorf("%s: path %q", version, got.Path)
		}
		one := func(name, want string) {
			t.Helper()
			if v := seen[strings.ToLower(name)]; len(v) != 1 || v[0] != want {
				t.Errorf("%s: %s: %q, want exactly %q", version, name, v, want)
			}
		}
		one("X-Keytool-Fingerprint", fp)
		one("X-Keytool-Name", "alice")
		one("X-Forwarded-Client-Cert", `Hash=`+hex.EncodeToString(certSum[:])) // no Subject: the client wrote it
		one("X-Forwarded-For", "127.0.0.1")
		one("X-Forwarded-Proto", "https")
		one("Forwarded", `for=127.0.0.1;host="`+addr+`";proto=https`)
		one("X-Keytool-Key-Id", pxKeyID(t, spki))
		if t.Failed() {
			t.Logf("%s: backend received %v", version, got.Headers)
		}
	}
	px.waitFor(t, `msg=accepted .*fingerprint=`+regexpQuote(fp)+` name=alice`, 5*time.Second)

	pxHTTPBytes(t, metrics, addr, crt, key)

	// A key that is not authorized never reaches the backend.
	other, otherKey, _ := pxOpenSSLKey(t, dir, "stranger")
	if out, _, code := pxCurl(t, "https://"+addr+"/who", "-k", "--cert", other, "--key", otherKey); code == 0 {
		t.Fatalf("an unknown key got an answer: %s", out)
	}
}

// pxHTTPBytes posts a body through keytool proxy --http at addr, over
// HTTP/1.1 and HTTP/2, to the echoing backend, and checks that the
// proxy's keytool_proxy_bytes_total grew by at least the bodies sent and
// received, and by less than they and 16 KiB a connection of handshake,
// framing and heads.
func pxHTTPBytes(t *testing.T, metrics, addr, crt, key string) {
	t.Helper()
	const size, slack = 64 << 10, 16 << 10
	body := strings.Repeat("0123456789abcdef", size/16)
	file := filepath.Join(t.TempDir(), "body")
	pxWrite(t, file, body)
	// Counted as each connection ends: wait for the earlier ones to.
	closed := func() map[string]*pxFamily {
		var fams map[string]*pxFamily
		if pxUntil(10*time.Second, func() bool {
			_, fams = pxScrape(t, metrics)
			return fams["keytool_proxy_open_connections"].get("") == 0
		}) < 0 {
			t.Fatalf("connections still open: %v", fams["keytool_proxy_open_connections"])
		}
		return fams
	}
	before := closed()["keytool_proxy_bytes_total"]
	for _, version := range []string{"--http1.1", "--http2"} {
		out, msg, code := pxCurl(t, "https://"+addr+"/echo", "-k", "--cert", crt, "--key", key, version, "--data-binary", "@"+file)
		if code != 0 || out != body {
			t.Fatalf("%s: POST of %d bytes: curl exit %d, %d bytes back: %s", version, size, code, len(out), msg)
		}
	}
	after := closed()["keytool_proxy_bytes_total"]
	for _, dir := range []string{"in", "out"} {
		grew := after.get("direction="+dir) - before.get("direction="+dir)
		if grew < 2*size || grew > 2*(size+slack) {
			t.Errorf("keytool_proxy_bytes_total{direction=%s} grew by %v for two bodies of %d bytes", dir, grew, size)
		} else {
			t.Logf("keytool_proxy_bytes_total{direction=%s} grew by %v for two bodies of %d bytes", dir, grew, size)
		}
	}
}

// TestProxyHTTPTargetNoResponse: keytool proxy --http in front of a
// target that accepts the connection, reads the request and never
// answers: with --response-header-timeout 300ms the client gets 504 with
// an empty body (nothing of the target, nor of the proxy's files), well
// before its own 10 s, and the proxy logs in words which target sent no
// response within what time — not Go's "timeout awaiting response
// headers" — and to which client: the key it was admitted with.
func TestProxyHTTPTargetNoResponse(t *testing.T) {
	pxNeed(t, "openssl")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testnet.ServeEach(t, ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }) // reads, never answers
	target := ln.Addr().String()
	px, addr, crt, key, _ := pxHTTPProxy(t, t.TempDir(), target, "--response-header-timeout", "300ms")
	cert, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}}}
	resp, err := c.Get("https://" + addr + "/report")
	if err != nil {
		t.Fatalf("a request to a target that never answers: %v, want 504 from the proxy", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || len(body) != 0 {
		t.Fatalf("a target that never answers: %s %q, want 504 and no body", resp.Status, body)
	}
	px.waitFor(t, `level=ERROR msg="target sent no response" remote=127\.0\.0\.1:\d+ fingerprint=SHA256:\S+ name=alice method=GET target=`+regexp.QuoteMeta(target)+
		` error="proxy: target `+regexp.QuoteMeta(target)+` sent no response to the request within 300ms"\n`, 5*time.Second)
}

// methodBackend is Python's http.server answering every method of the
// Allow header below with 200 and the method it got in X-Method.
const methodBackend = `
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self):
        print("got", self.command, flush=True)
        self.send_response(200)
        self.send_header("X-Method", self.command)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
for m in ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "CONNECT"]:
    setattr(H, "do_" + m, H.answer)
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("listening", s.server_address[1], flush=True)
s.serve_forever()
`

// TestProxyHTTPConnectAllow: curl's CONNECT through keytool proxy --http
// gets 405 with an Allow header (RFC 9110 section 15.5.6 requires one on
// a 405), listing methods that curl then sends and Python's http.server
// behind the proxy receives, each with its own name. The CONNECT, which
// it would answer 200, never reaches it.
func TestProxyHTTPConnectAllow(t *testing.T) {
	pxNeed(t, "curl", "openssl", "python3")
	dir := t.TempDir()
	backend, target := pxBackend(t, dir, methodBackend)
	px, addr, crt, key, _ := pxHTTPProxy(t, dir, target)

	tls := []string{"-sS", "--max-time", "10", "-k", "--cert", crt, "--key", key, "--http1.1", "-o", "/dev/null", "-D", "-"}
	head, msg, code := pxRun(t, "", "curl", append(tls, "-X", "CONNECT", "https://"+addr+"/")...)
	if code != 0 {
		t.Fatalf("curl -X CONNECT: exit %d: %s", code, msg)
	}
	if !strings.HasPrefix(head, "HTTP/1.1 405 ") {
		t.Fatalf("curl -X CONNECT: %q, want 405", head)
	}
	m := regexp.MustCompile(`(?mi)^Allow: (.*)\r$`).FindAllStringSubmatch(head, -1)
	if len(m) != 1 || m[0][1] == "" {
		t.Fatalf("curl -X CONNECT: %q, want one Allow header", head)
	}
	px.waitFor(t, `level=WARN msg="request refused: CONNECT is not forwarded" remote=127\.0\.0\.1:\d+ fingerprint=\S+ name=alice method=CONNECT`, 5*time.Second)
	for _, method := range strings.Split(m[0][1], ", ") {
		args := append(tls, "-X", method)
		if method == "HEAD" {
			args = append(tls, "-I") // curl waits for a body after -X HEAD
		}
		head, msg, code := pxRun(t, "", "curl", append(args, "https://"+addr+"/")...)
		if code != 0 || !strings.HasPrefix(head, "HTTP/1.1 200 ") || !strings.Contains(head, "X-Method: "+method+"\r\n") {
			t.Errorf("curl -X %s, listed in Allow: exit %d %s %q, want 200 from the target, which got %s", method, code, msg, head, method)
		}
	}
	if got := backend.stdout.String(); strings.Contains(got, "got CONNECT") {
		t.Errorf("the CONNECT reached the target:\n%s", got)
	}
}

// TestProxyHTTPRequestBodyStalls: openssl s_client sends a POST's head
// and the first bytes of its body through keytool proxy --http
// --request-body-timeout 500ms, and then nothing (its standard input
// stays open): the proxy closes the connection with no answer, as nginx
// does when client_body_timeout passes (nginx 1.22 measured: nothing
// sent, 408 in its access log only), and s_client, which watches the
// socket beside its input, ends well before the test's 30 s — and the
// proxy logs the stall with the client's identity. Without the bound the
// request, and the target's connection, waited as long as the client.
// (curl cannot show it: uploading from a pipe, it blocks reading its
// input and sees the close only when its own time ends. HTTP/2's stream
// reset: proxy.TestHTTPRequestBodyStalls.)
func TestProxyHTTPRequestBodyStalls(t *testing.T) {
	pxNeed(t, "openssl", "python3")
	dir := t.TempDir()
	_, target := pxBackend(t, dir, echoHeadersBackend)
	px, addr, crt, key, _ := pxHTTPProxy(t, dir, target, "--request-body-timeout", "500ms")
	client := pxStart(t, "openssl", "s_client", "-quiet", "-connect", addr, "-cert", crt, "-key", key)
	if _, err := io.WriteString(client.stdin, "POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 100\r\n\r\nthe first bytes"); err != nil {
		t.Fatal(err)
	}
	defer client.stdin.Close()
	client.wait(t, 30*time.Second) // a bound on a hang: the close comes after 500 ms
	if out := client.stdout.String(); out != "" {
		t.Errorf("a body that stalls: the client got %q, want the connection closed with no answer", out)
	}
	px.waitFor(t, `level=INFO msg="request body stalled: closing" remote=127\.0\.0\.1:\d+ fingerprint=SHA256:\S+ name=alice method=POST`+
		` error="proxy: the client sent nothing of its request body for 500ms"`, 5*time.Second)
}

// TestProxyHTTP2RequestNotHTTP1: curl over HTTP/2, through keytool proxy
// --http --log-format json, sends what no HTTP/1.1 request line or Host
// could hold — a method with a C1 control (U+009B, a terminal's CSI) and
// a Host with a space, both of which curl sends over HTTP/2 and Go's
// HTTP/2 server takes. Each gets 400 and reaches neither Python's
// http.server behind the proxy nor the log: until a review found it, the
// method got 502 and an ERROR line "target unreachable" with the C1
// byte raw in the JSON log (log/slog's JSON escapes only the controls
// below 0x20), for every request, counted as the target's bad_response;
// the Host went on empty. A good request then reaches the target
// (proxy.TestHTTP2RequestHeldToHTTP1 frames the other cases by hand).
func TestProxyHTTP2RequestNotHTTP1(t *testing.T) {
	pxNeed(t, "curl", "openssl", "python3")
	dir := t.TempDir()
	backend, target := pxBackend(t, dir, methodBackend)
	home := pxGen(t)
	crt, key, _ := pxAuthorizedKey(t, home, dir, "alice")
	px := pxStart(t, "keytool", "-H", home, "proxy", "--listen", "127.0.0.1:0", "--target", target, "--http", "--log-format", "json")
	addr := px.waitFor(t, `"msg":"listening","addr":"(127\.0\.0\.1:\d+)"`, 15*time.Second)[1]
	h2 := []string{"-sS", "--max-time", "10", "-k", "--cert", crt, "--key", key, "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}"}
	for _, tc := range []struct{ name, arg, value string }{
		{"a method with a C1 control", "-X", "G\u009bT"},
		{"a Host with a space", "-H", "Host: app evil"},
	} {
		out, msg, code := pxRun(t, "", "curl", append(h2, tc.arg, tc.value, "https://"+addr+"/")...)
		if code != 0 || out != "2 400" {
			t.Errorf("%s: curl exit %d %s, HTTP version and status %q, want 2 400", tc.name, code, msg, out)
		}
	}
	if out, msg, code := pxRun(t, "", "curl", append(h2, "https://"+addr+"/")...); code != 0 || out != "2 200" {
		t.Errorf("a good request: curl exit %d %s, HTTP version and status %q, want 2 200", code, msg, out)
	}
	backend.waitFor(t, `got GET\n`, 5*time.Second)
	if got := backend.stdout.String(); strings.Count(got, "got ") != 1 {
		t.Errorf("the target got more than the good request:\n%s", got)
	}
	// Each request's log line, if any, is written before its answer.
	if logs := px.stderr.String(); strings.Contains(logs, "target unreachable") || strings.Contains(logs, "\u009b") || strings.Contains(logs, `"level":"ERROR"`) {
		t.Errorf("the requests were logged as the target's failure, or the client's bytes written raw:\n%q", logs)
	}
}
