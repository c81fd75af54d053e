package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/freeport"
)

// TestConnectOpenSSLServer: openssl s_server, with a key and certificate
// OpenSSL made, is pinned with the fingerprint OpenSSL computes, then
// reached with keytool connect; when the server comes back with another
// key on the same port, connect refuses with the changed-key message.
func TestConnectOpenSSLServer(t *testing.T) {
	pxNeed(t, "openssl")
	dir := t.TempDir()
	crt1, key1, spki1 := pxOpenSSLKey(t, dir, "server1")
	crt2, key2, spki2 := pxOpenSSLKey(t, dir, "server2")
	fp1, fp2 := "SHA256:"+strings.TrimRight(spki1, "="), "SHA256:"+strings.TrimRight(spki2, "=")

	// -rev: s_server sends each line back reversed.
	sServer := func(accept, crt, key string) (*pxProc, string) {
		p := pxStart(t, "openssl", "s_server", "-accept", accept, "-cert", crt, "-key", key, "-rev")
		// With port 0 s_server prints the address it got; otherwise just ACCEPT.
		m := p.waitFor(t, `ACCEPT ?(127\.0\.0\.1:\d+)?\n`, 10*time.Second)
		return p, m[1]
	}
	server, addr := sServer("127.0.0.1:0", crt1, key1)
	client := pxGen(t)

	// Pinned with OpenSSL's own computation, in curl's form (sha256//…=).
	out := pxMust(t, "", "keytool", "-H", client, "trust-host", addr, "--fingerprint", "sha256//"+spki1)
	if !strings.Contains(out, fp1) {
		t.Fatalf("trust-host did not pin %s:\n%s", fp1, out)
	}

	conn := pxStart(t, "keytool", "-H", client, "connect", "-v", addr)
	if _, err := conn.stdin.Write([]byte("hello keytool\n")); err != nil {
		t.Fatal(err)
	}
	conn.waitFor(t, "lootyek olleh", 10*time.Second)
	conn.stdin.Close() // half-close: s_server sees the end, and closes
	if code := conn.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("keytool connect: exit status %d\n%s", code, conn.stderr.String())
	}
	if want := "ECDSA P-256 key " + fp1 + ", pinned"; !strings.Contains(conn.stderr.String(), want) {
		t.Errorf("-v does not say %q:\n%s", want, conn.stderr.String())
	}

	// The server is reinstalled with another key, on the same port.
	server.stop(t)
	sServer(addr, crt2, key2)
	o, e, code := pxRun(t, "hello again\n", "keytool", "-H", client, "connect", addr)
	if code != 1 || o != "" {
		t.Fatalf("connect to a changed key: exit status %d, want 1; stdout %q", code, o)
	}
	// The commands it gives carry the -H the user ran, so that pasted they
	// act on this home, not on ~/.keytool.
	for _, want := range []string{"The host key of " + addr + " has changed!", "it presented now:  " + fp2, "pinned before:     " + fp1,
		"keytool -H " + client + " trust-host --remove " + addr + "\n", "keytool -H " + client + " trust-host " + addr + " --fingerprint " + fp2} {
		if !strings.Contains(e, want) {
			t.Errorf("the changed-key message does not say %q:\n%s", want, e)
		}
	}
}

// TestConnectNginx: nginx serves the server home's identity (keytool cert,
// and key.pem made by keytool gen -f pem) and requires client certificates
// chaining to keytool bundle authorized; keytool connect gets in with an
// authorized key and is turned away with another.
func TestConnectNginx(t *testing.T) {
	dir := t.TempDir()
	server := pxGen(t, "-f", "pem")
	client := pxGen(t)
	stranger := pxGen(t)
	pxMust(t, "", "keytool", "-H", server, "authorize", "--name", "laptop", filepath.Join(client, "pub_key.json"))
	pxMust(t, "", "keytool", "-H", server, "bundle", "authorized", "-o", filepath.Join(dir, "clients.pem"))
	pxMust(t, "", "keytool", "-H", server, "cert", "--host", "127.0.0.1", "-o", filepath.Join(dir, "server.crt"))

	addr := fmt.Sprintf("127.0.0.1:%d", freeport.Port(t))
	pxNginxStart(t, dir, addr, fmt.Sprintf(`	access_log off;
	server {
		listen %[2]s ssl;
		ssl_certificate %[1]s/server.crt;
		ssl_certificate_key %[3]s;
		ssl_verify_client on;
		ssl_client_certificate %[1]s/clients.pem;
		location / {
			default_type text/plain;
			return 200 "hello from nginx, client verify=$ssl_client_verify\n";
		}
	}`, dir, addr, filepath.Join(server, "key.pem")))

	// Pin nginx's key from the server home's public key, without connecting.
	pxMust(t, "", "keytool", "-H", client, "trust-host", addr, "--key", filepath.Join(server, "pub_key.pem"))
	request := "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
	o, e, code := pxRun(t, request, "keytool", "-H", client, "connect", "-v", addr)
	if code != 0 || !strings.HasPrefix(o, "HTTP/1.1 200") || !strings.Contains(o, "hello from nginx, client verify=SUCCESS") {
		t.Fatalf("authorized client: exit status %d\nstdout:\n%s\nstderr:\n%s", code, o, e)
	}
	if want := pxFingerprint(t, server) + ", pinned"; !strings.Contains(e, want) {
		t.Errorf("-v does not say %q:\n%s", want, e)
	}

	// A key not in the bundle: nginx completes the handshake, then answers
	// 400 instead of the content. keytool presents its identity even though
	// nginx lists other CA names, so nginx checks it and says why.
	o, e, code = pxRun(t, request, "keytool", "-H", stranger, "--strict-host-keys", "accept-new", "connect", addr)
	if !strings.HasPrefix(o, "HTTP/1.1 400") || !strings.Contains(o, "The SSL certificate error") || strings.Contains(o, "hello from nginx") {
		t.Fatalf("client not in the bundle: exit status %d\nstdout:\n%s\nstderr:\n%s", code, o, e)
	}
}
