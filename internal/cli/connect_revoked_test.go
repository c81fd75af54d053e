package cli

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// TestConnectRevokedByServer: a server that says this client's key is
// revoked (TLS alert 44, "certificate revoked") gets its own message —
// authorizing the key again would not help — instead of the advice to get
// authorized. The server is OpenSSL's s_server checking client
// certificates against a CA and a CRL that lists the client's; the
// client's certificate is its home's cert.pem, issued by that CA.
func TestConnectRevokedByServer(t *testing.T) {
	pxNeed(t, "openssl")
	dir := t.TempDir()
	client := newClientHome(t)
	data, err := os.ReadFile(filepath.Join(client, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	clientKey, err := jwk.ParseOne(data)
	if err != nil {
		t.Fatal(err)
	}

	// A CA, the client's certificate from it, and a CRL revoking it.
	now := time.Now()
	ca, caKey, caDER := pxCA(t, now.Add(-time.Hour), now.Add(24*time.Hour))
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "laptop"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, clientKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	crlDER, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: now.Add(-time.Minute),
		NextUpdate:                now.Add(24 * time.Hour),
		RevokedCertificateEntries: []x509.RevocationListEntry{{SerialNumber: big.NewInt(42), RevocationTime: now.Add(-time.Minute)}}}, ca, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM := func(file, typ string, der []byte) {
		pxWrite(t, file, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
	}
	writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER)
	writePEM(filepath.Join(dir, "crl.pem"), "X509 CRL", crlDER)
	writePEM(filepath.Join(client, "cert.pem"), "CERTIFICATE", leafDER)

	crt, key, spki := pxOpenSSLKey(t, dir, "server")
	server := pxStart(t, "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", crt, "-key", key, "-rev",
		"-Verify", "1", "-verify_return_error", "-CAfile", filepath.Join(dir, "ca.pem"),
		"-CRL", filepath.Join(dir, "crl.pem"), "-crl_check")
	addr := server.waitFor(t, `ACCEPT (127\.0\.0\.1:\d+)\n`, 10*time.Second)[1]
	pxMust(t, "", "keytool", "-H", client, "trust-host", addr, "--fingerprint", "sha256//"+spki)

	conn := pxStart(t, "keytool", "-H", client, "connect", addr) // stdin open: a refusal, not an end
	code := conn.wait(t, 15*time.Second)
	e := conn.stderr.String()
	if code != 1 || conn.stdout.String() != "" {
		t.Fatalf("exit status %d, want 1; stdout %q\n%s", code, conn.stdout.String(), e)
	}
	want := "keytool connect: " + addr + " has revoked this client's key " + clientKey.Fingerprint() +
		"; it will not be let in again by authorizing it: ask its administrator\n(the server said: "
	if !strings.HasPrefix(e, want) || !strings.Contains(e, "revoked certificate") {
		t.Errorf("stderr:\n%s\nwant it to start with:\n%s", e, want)
	}
	if strings.Contains(e, "authorize --name") {
		t.Errorf("a revoked client is told to get authorized:\n%s", e)
	}
}

// TestConnectRevokedByKeytoolProxy: keytool proxy refuses a revoked key in
// the handshake with the only alert crypto/tls lets it send (bad
// certificate), the same as for an unknown key; connect's message says
// that authorizing a revoked key does not let it in, and the proxy's log
// names the revocation.
func TestConnectRevokedByKeytoolProxy(t *testing.T) {
	server := pxGen(t)
	client := newClientHome(t)
	pub := filepath.Join(client, "pub_key.json")
	pxMust(t, "", "keytool", "-H", server, "authorize", "--name", "laptop", pub)
	pxMust(t, "", "keytool", "-H", server, "revoke", pub)
	proxy, addr := pxProxy(t, server, "--target", "127.0.0.1:9")
	pxMust(t, "", "keytool", "-H", client, "trust-host", addr, "--key", filepath.Join(server, "pub_key.json"))

	conn := pxStart(t, "keytool", "-H", client, "connect", addr)
	code := conn.wait(t, 15*time.Second)
	e := conn.stderr.String()
	if code != 1 {
		t.Fatalf("exit status %d, want 1\n%s", code, e)
	}
	for _, want := range []string{addr + " does not authorize this client's key " + pxFingerprint(t, client),
		"printed by: keytool -H " + client + " pub\n",
		"(authorizing it does not help if the server revoked this key, or lets it in only from other networks or until a time now past: the server's log names the reason, and only its administrator can change it)",
		"remote error: tls: bad certificate"} {
		if !strings.Contains(e, want) {
			t.Errorf("stderr does not say %q:\n%s", want, e)
		}
	}
	proxy.waitFor(t, `msg=refused .*reason="authkeys: key \S+ is revoked`, 5*time.Second)
}
