package cli

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// echoHeadersBackend is Python's http.server answering every GET with the
// request's headers, as received, in a JSON list of [name, value].
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
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("listening", s.server_address[1], flush=True)
s.serve_forever()
`

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
func TestProxyHTTPIdentityHeaders(t *testing.T) {
	pxNeed(t, "curl", "openssl", "python3")
	dir := t.TempDir()
	script := filepath.Join(dir, "echo.py")
	pxWrite(t, script, echoHeadersBackend)
	backend := pxStart(t, "python3", "-u", script)
	target := "127.0.0.1:" + backend.waitFor(t, `listening (\d+)`, 10*time.Second)[1]

	home := pxGen(t)
	crt, key, spki := pxAuthorizedKey(t, home, dir, "alice")
	fp := "SHA256:" + strings.TrimRight(spki, "=")
	px, addr := pxProxy(t, home, "--target", target, "--http")

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

	// A key that is not authorized never reaches the backend.
	other, otherKey, _ := pxOpenSSLKey(t, dir, "stranger")
	if out, _, code := pxCurl(t, "https://"+addr+"/who", "-k", "--cert", other, "--key", otherKey); code == 0 {
		t.Fatalf("an unknown key got an answer: %s", out)
	}
}
