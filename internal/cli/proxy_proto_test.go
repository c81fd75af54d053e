package cli

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/freeport"
	"github.com/keytool/keytool/jwk"
)

// pxAuthorizedKey makes a key and certificate with OpenSSL in dir
// (pxOpenSSLKey) and authorizes the key in home under name, with keytool
// authorize.
func pxAuthorizedKey(t *testing.T, home, dir, name string) (certFile, keyFile, spkiB64 string) {
	t.Helper()
	certFile, keyFile, spkiB64 = pxOpenSSLKey(t, dir, name)
	pub := filepath.Join(dir, name+"-pub.pem")
	pxWrite(t, pub, pxMust(t, "", "openssl", "pkey", "-in", keyFile, "-pubout"))
	pxMust(t, "", "keytool", "-H", home, "authorize", "--name", name, pub)
	return certFile, keyFile, spkiB64
}

// pxKeyID is the libtrust key ID of the key whose SPKI SHA-256 OpenSSL
// printed in base64 (pxOpenSSLKey).
func pxKeyID(t *testing.T, spkiB64 string) string {
	t.Helper()
	sum, err := base64.StdEncoding.DecodeString(spkiB64)
	if err != nil || len(sum) != 32 {
		t.Fatalf("SPKI hash %q: %v", spkiB64, err)
	}
	return jwk.FormatKeyID([32]byte(sum))
}

// pxTLSClient connects to addr with an OpenSSL-made key and certificate
// (pxDialTLS), closed at the end of the test.
func pxTLSClient(t *testing.T, addr, crt, key string) *tls.Conn {
	t.Helper()
	conn, err := pxDialTLS(t, addr, crt, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// pxDialTLS connects to addr with an OpenSSL-made key and certificate
// (the proxy's key is not checked: these tests are not about pinning),
// with a deadline 20 s away.
func pxDialTLS(t *testing.T, addr, crt, key string) (*tls.Conn, error) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{
		Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, ServerName: "backend.example",
	})
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn, nil
}

// TestProxyProtocolNginx: keytool proxy --proxy-protocol in front of
// nginx listening with proxy_protocol: nginx reads the client's real
// address and port ($proxy_protocol_addr, $proxy_protocol_port), in its
// answer and its access log, not the proxy's.
func TestProxyProtocolNginx(t *testing.T) {
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.Port(t))
	accessLog := filepath.Join(dir, "access.log")
	pxNginxStart(t, dir, addr, fmt.Sprintf(`	log_format peer '$proxy_protocol_addr:$proxy_protocol_port via $remote_addr';
	access_log %[2]s peer;
	server {
		listen %[1]s proxy_protocol;
		location / {
			default_type text/plain;
			return 200 "client $proxy_protocol_addr:$proxy_protocol_port\n";
		}
	}`, addr, accessLog))
	pxNeed(t, "openssl")

	home := pxGen(t)
	crt, key, _ := pxAuthorizedKey(t, home, dir, "alice")
	_, paddr := pxProxy(t, home, "--target", addr, "--proxy-protocol")

	conn := pxTLSClient(t, paddr, crt, key)
	client := conn.LocalAddr().String()
	if _, err := io.WriteString(conn, "GET / HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(conn)
	if err != nil || !strings.HasPrefix(string(resp), "HTTP/1.1 200") || !strings.HasSuffix(string(resp), "client "+client+"\n") {
		t.Fatalf("nginx answered %q, %v; want the client's address %s", resp, err, client)
	}
	if pxUntil(5*time.Second, func() bool {
		b, _ := os.ReadFile(accessLog)
		return strings.Contains(string(b), client+" via 127.0.0.1")
	}) < 0 {
		b, _ := os.ReadFile(accessLog)
		t.Fatalf("nginx's access log does not name the client %s:\n%s", client, b)
	}
}

// proxyProtoBackend is a target that reads the PROXY protocol v2 header
// as the specification describes it (written apart from keytool's
// encoder, in Python), answers with what it found as JSON, and closes.
const proxyProtoBackend = `
import json, socket, struct, sys
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
def read(c, n):
    b = b""
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            raise EOFError
        b += chunk
    return b
def tlvs(b):
    out = []
    while b:
        t, l = b[0], struct.unpack("!H", b[1:3])[0]
        assert len(b) >= 3 + l, "TLV past the header"
        out.append((t, b[3:3+l]))
        b = b[3+l:]
    return out
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print("listening", s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    hdr = read(c, 16)
    assert hdr[:12] == SIG, "no signature"
    ver_cmd, fam, length = hdr[12], hdr[13], struct.unpack("!H", hdr[14:16])[0]
    body = read(c, length)
    r = {"version": ver_cmd >> 4, "command": ver_cmd & 15, "family": fam}
    if fam == 0x11:
        src, dst = socket.inet_ntop(socket.AF_INET, body[0:4]), socket.inet_ntop(socket.AF_INET, body[4:8])
        sport, dport = struct.unpack("!HH", body[8:12])
        rest = body[12:]
    else:
        src, dst = socket.inet_ntop(socket.AF_INET6, body[0:16]), socket.inet_ntop(socket.AF_INET6, body[16:32])
        sport, dport = struct.unpack("!HH", body[32:36])
        rest = body[36:]
    r.update(src="%s:%d" % (src, sport), dst="%s:%d" % (dst, dport))
    for t, v in tlvs(rest):
        if t == 0x20:
            r["ssl_client"], r["ssl_verify"] = v[0], struct.unpack("!I", v[1:5])[0]
            for st, sv in tlvs(v[5:]):
                r["ssl_0x%02x" % st] = sv.decode()
        else:
            r["0x%02x" % t] = v.decode()
    c.sendall(json.dumps(r).encode() + b"\n" + c.recv(100))
    c.close()
`

// TestProxyProtocolTLVs: a backend that parses the PROXY protocol v2
// header (Python, written from the specification) receives the client's
// address and port, the address it connected to, PP2_TYPE_SSL with the
// client flags, verify 0, the TLS version and cipher the client
// negotiated, the SNI (PP2_TYPE_AUTHORITY), and keytool's TLVs: the
// client key's fingerprint (0xE0, as OpenSSL computes it), the entry's
// name (0xE1) and the key ID (0xE2); then the client's own bytes.
func TestProxyProtocolTLVs(t *testing.T) {
	pxNeed(t, "openssl", "python3")
	dir := t.TempDir()
	_, target := pxBackend(t, dir, proxyProtoBackend)

	home := pxGen(t)
	crt, key, spki := pxAuthorizedKey(t, home, dir, "alice")
	px, paddr := pxProxy(t, home, "--target", target, "--proxy-protocol")

	conn := pxTLSClient(t, paddr, crt, key)
	if _, err := io.WriteString(conn, "hello\n"); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("%q, %v", out, err)
	}
	line, rest, _ := strings.Cut(string(out), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("backend: %q: %v", out, err)
	}
	if rest != "hello\n" {
		t.Errorf("the client's bytes after the header: %q", rest)
	}
	cs := conn.ConnectionState()
	fp := "SHA256:" + strings.TrimRight(spki, "=")
	px.waitFor(t, `msg=accepted .*fingerprint=`+regexpQuote(fp)+` name=alice`, 5*time.Second)
	want := map[string]any{
		"version": 2.0, "command": 1.0, "family": float64(0x11),
		"src": conn.LocalAddr().String(), "dst": paddr,
		"ssl_client": 3.0, "ssl_verify": 0.0,
		"ssl_0x21": "TLSv1.3", "ssl_0x23": tls.CipherSuiteName(cs.CipherSuite),
		"ssl_0x24": "ECDSA-SHA256", "ssl_0x25": "ECDSA",
		"0x02": "backend.example",
		"0xe0": fp, "0xe1": "alice",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
	if id := pxKeyID(t, spki); got["0xe2"] != id {
		t.Errorf("0xe2 (key ID): %v, want %s", got["0xe2"], id)
	}
	if t.Failed() {
		t.Logf("backend received: %s", line)
	}
}

// TestProxyProtocolClientHeaderNotBelieved: an admitted client whose
// first bytes are a PROXY protocol header of its own — v1 text, or v2
// binary — naming another source (203.0.113.9:4444), through keytool
// proxy --proxy-protocol to nginx listening with proxy_protocol: nginx
// reads keytool's header, which comes first, and takes the client's as
// the start of its request (400). Neither its answer nor its access log
// names the forged address; the log names the client's real one. Review
// of 2026-12-03 (docs/security.md): held.
func TestProxyProtocolClientHeaderNotBelieved(t *testing.T) {
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", freeport.Port(t))
	accessLog := filepath.Join(dir, "access.log")
	pxNginxStart(t, dir, addr, fmt.Sprintf(`	log_format peer '$proxy_protocol_addr:$proxy_protocol_port $status';
	access_log %[2]s peer;
	server {
		listen %[1]s proxy_protocol;
		# A 400 is logged when its connection closes: with lingering close
		# (nginx's default) that is up to lingering_timeout, 5 s, after the
		# answer when the client's bytes are not all read — as long as the
		# wait for the access log below, which then missed it (CI run of
		# 37e2f10, the v2 case).
		lingering_close off;
		location / {
			default_type text/plain;
			return 200 "client $proxy_protocol_addr:$proxy_protocol_port\n";
		}
	}`, addr, accessLog))
	pxNeed(t, "openssl")

	home := pxGen(t)
	crt, key, _ := pxAuthorizedKey(t, home, dir, "alice")
	_, paddr := pxProxy(t, home, "--target", addr, "--proxy-protocol")

	v2 := append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0, 12, 203, 0, 113, 9, 127, 0, 0, 1, 0x11, 0x5c, 0, 80)
	for name, forged := range map[string]string{
		"v1": "PROXY TCP4 203.0.113.9 127.0.0.1 4444 80\r\n",
		"v2": string(v2),
	} {
		conn := pxTLSClient(t, paddr, crt, key)
		client := conn.LocalAddr().String()
		if _, err := io.WriteString(conn, forged+"GET / HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := io.ReadAll(conn)
		if err != nil || strings.Contains(string(resp), "203.0.113.9") || !strings.HasPrefix(string(resp), "HTTP/1.1 400") {
			t.Errorf("%s: nginx answered %q, %v; want 400, the forged header read as the request", name, resp, err)
		}
		if pxUntil(5*time.Second, func() bool {
			b, _ := os.ReadFile(accessLog)
			return strings.Contains(string(b), client+" 400")
		}) < 0 {
			b, _ := os.ReadFile(accessLog)
			t.Errorf("%s: nginx's access log does not name the client %s:\n%s", name, client, b)
		}
	}
	if b, _ := os.ReadFile(accessLog); strings.Contains(string(b), "203.0.113.9") {
		t.Errorf("nginx's access log names the forged source:\n%s", b)
	}
}
