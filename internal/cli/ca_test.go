package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// opensslCA is a CA OpenSSL made, with its own database for CRLs
// (openssl ca -gencrl, -revoke).
type opensslCA struct {
	dir, cert, key, conf, crl string
}

func newOpenSSLCA(t *testing.T, dir, name, cn string) *opensslCA {
	t.Helper()
	ca := &opensslCA{dir: filepath.Join(dir, name)}
	if err := os.MkdirAll(ca.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca.cert, ca.key = filepath.Join(ca.dir, "ca.pem"), filepath.Join(ca.dir, "ca.key")
	ca.conf, ca.crl = filepath.Join(ca.dir, "ca.cnf"), filepath.Join(ca.dir, "ca.crl")
	pxMust(t, "", "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", ca.key, "-out", ca.cert, "-subj", "/CN="+cn, "-days", "30",
		"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
	pxWrite(t, filepath.Join(ca.dir, "index.txt"), "")
	pxWrite(t, filepath.Join(ca.dir, "crlnumber"), "01\n")
	pxWrite(t, ca.conf, "[ca]\ndefault_ca = d\n[d]\ndatabase = "+filepath.Join(ca.dir, "index.txt")+
		"\ncrlnumber = "+filepath.Join(ca.dir, "crlnumber")+"\ndefault_md = sha256\ndefault_crl_days = 7\n")
	ca.gencrl(t)
	return ca
}

// gencrl writes the CA's current CRL.
func (ca *opensslCA) gencrl(t *testing.T) {
	t.Helper()
	pxMust(t, "", "openssl", "ca", "-config", ca.conf, "-gencrl", "-keyfile", ca.key, "-cert", ca.cert, "-out", ca.crl)
}

// issue makes a key and a certificate with the extensions ext, signed
// by ca.
func (ca *opensslCA) issue(t *testing.T, name, ext string) (cert, key string) {
	t.Helper()
	cert, key = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+".key")
	csr, extFile := filepath.Join(ca.dir, name+".csr"), filepath.Join(ca.dir, name+".ext")
	pxMust(t, "", "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", key, "-out", csr, "-subj", "/CN="+name)
	pxWrite(t, extFile, ext)
	pxMust(t, "", "openssl", "x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
		"-out", cert, "-days", "2", "-extfile", extFile)
	return cert, key
}

// The extensions of a server's certificate for 127.0.0.1, and of a
// client's.
const (
	serverExt = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
	clientExt = "extendedKeyUsage=clientAuth\n"
)

// TestCAPurposesOpenSSL is seed 004 with OpenSSL-made CAs: a CA installed
// for the purpose "ldap" and a general one (keytool ca add), listed with
// their purpose; keytool connect --purpose ldap to openssl s_server with a
// certificate of the ldap CA connects, by that CA; without the purpose, or
// for another purpose, the general CA decides and refuses (a CA for
// another purpose never admits); the ldap CA's CRL revokes the server; and
// once the ldap CA is uninstalled (keytool ca remove), the general CA
// decides for ldap too.
func TestCAPurposesOpenSSL(t *testing.T) {
	pxNeed(t, "openssl")
	dir := t.TempDir()
	ldap := newOpenSSLCA(t, dir, "ldap", "Corp LDAP CA")
	general := newOpenSSLCA(t, dir, "general", "Corp Root CA")
	crt, key := ldap.issue(t, "ldap-server", serverExt)
	client := pxGen(t)

	out := pxMust(t, "", "keytool", "-H", client, "ca", "add", ldap.cert, "--purpose", "ldap", "--crl", ldap.crl, "--name", "corp-ldap")
	if want := filepath.Join(client, "ca.d", "ldap", "corp-ldap.pem"); !strings.Contains(out, "File: "+want) {
		t.Fatalf("ca add --purpose ldap:\n%s\nwant the file %s", out, want)
	}
	pxMust(t, "", "keytool", "-H", client, "ca", "add", general.cert)
	out = pxMust(t, "", "keytool", "-H", client, "ca", "list")
	for _, want := range []string{"PURPOSE  NAME", "ldap     corp-ldap     CN=Corp LDAP CA", "any      corp-root-ca  CN=Corp Root CA"} {
		if !strings.Contains(out, want) {
			t.Errorf("ca list does not show %q:\n%s", want, out)
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if len([]rune(line)) > 80 {
			t.Errorf("ca list passes 80 columns: %q", line)
		}
	}
	var infos []caInfo
	if err := json.Unmarshal([]byte(pxMust(t, "", "keytool", "-H", client, "ca", "list", "--json")), &infos); err != nil || len(infos) != 2 {
		t.Fatalf("ca list --json: %v, %+v", err, infos)
	}
	if infos[1].Purpose != "ldap" || infos[1].CRLNextUpdate == nil || !strings.HasPrefix(infos[1].Fingerprint, "SHA256:") {
		t.Errorf("ca list --json: %+v", infos[1])
	}
	if out := pxMust(t, "", "keytool", "-H", client, "list"); !strings.Contains(out, "ca.d/ldap/corp-ldap.crl.pem") {
		t.Errorf("keytool list does not show the installed CAs:\n%s", out)
	}

	server := pxStart(t, "openssl", "s_server", "-accept", "127.0.0.1:0", "-cert", crt, "-key", key, "-rev")
	addr := server.waitFor(t, `ACCEPT ?(127\.0\.0\.1:\d+)?\n`, 10*time.Second)[1]
	connect := func(args ...string) (string, string, int) {
		t.Helper()
		return pxRun(t, "hello\n", "keytool", append([]string{"-H", client, "--strict-host-keys", "yes", "connect", "-v"}, append(args, addr)...)...)
	}
	if o, e, code := connect("--purpose", "ldap"); code != 0 || !strings.Contains(o, "olleh") || !strings.Contains(e, ", PKI") {
		t.Fatalf("connect --purpose ldap: exit %d\n%s%s", code, o, e)
	}
	for _, args := range [][]string{nil, {"--purpose", "pool"}} {
		_, e, code := connect(args...)
		if code != 1 || !strings.Contains(e, "refused by "+filepath.Join(client, "ca.d", "corp-root-ca.pem")) {
			t.Errorf("connect %v: the general CA must decide and refuse: exit %d\n%s", args, code, e)
		}
	}

	// The ldap CA revokes the server: its new CRL is installed over the old.
	pxMust(t, "", "openssl", "ca", "-config", ldap.conf, "-revoke", crt, "-keyfile", ldap.key, "-cert", ldap.cert)
	ldap.gencrl(t)
	pxMust(t, "", "keytool", "-H", client, "ca", "add", ldap.cert, "--purpose", "ldap", "--crl", ldap.crl, "--name", "corp-ldap")
	if _, e, code := connect("--purpose", "ldap"); code != 1 || !strings.Contains(e, "is revoked by") {
		t.Errorf("connect --purpose ldap to a revoked server: exit %d\n%s", code, e)
	}

	out = pxMust(t, "", "keytool", "-H", client, "ca", "remove", "ldap/corp-ldap")
	if !strings.Contains(out, "Removed CA "+filepath.Join(client, "ca.d", "ldap", "corp-ldap.pem")) {
		t.Errorf("ca remove:\n%s", out)
	}
	if _, e, code := connect("--purpose", "ldap"); code != 1 || !strings.Contains(e, "corp-root-ca.pem") {
		t.Errorf("connect --purpose ldap with the ldap CA removed: exit %d\n%s", code, e)
	}
	// The general CA, by its certificate's fingerprint as OpenSSL prints it.
	certFP := strings.TrimPrefix(strings.TrimSpace(pxMust(t, "", "openssl", "x509", "-in", general.cert, "-noout", "-fingerprint", "-sha256")), "sha256 Fingerprint=")
	certFP = strings.TrimPrefix(certFP, "SHA256 Fingerprint=")
	if out := pxMust(t, "", "keytool", "-H", client, "ca", "remove", certFP); !strings.Contains(out, "corp-root-ca.pem") {
		t.Errorf("ca remove %s (openssl's fingerprint of the general CA):\n%s", certFP, out)
	}
	_, e, code := pxRun(t, "", "keytool", "-H", client, "ca", "remove", "corp-ldap")
	if code != 1 || !strings.Contains(e, "keytool -H "+client+" ca list") {
		t.Errorf("ca remove of a CA no longer there: exit %d\n%s", code, e)
	}
}

// TestProxyPurposeCurl is the server side of seed 004's purposes: keytool
// proxy --purpose pool admits curl with a client certificate of the pool's
// CA (installed with ca add --purpose pool), which it has never
// authorized; a proxy without the purpose lets the general CA decide, and
// it refuses — a CA for another purpose never admits.
func TestProxyPurposeCurl(t *testing.T) {
	pxNeed(t, "openssl", "curl", "python3")
	const page = "pool member\n"
	dir := t.TempDir()
	pool := newOpenSSLCA(t, dir, "pool", "Pool CA")
	general := newOpenSSLCA(t, dir, "general", "Corp Root CA")
	crt, key := pool.issue(t, "host2", clientExt)
	home := pxGen(t)
	pxMust(t, "", "keytool", "-H", home, "ca", "add", pool.cert, "--purpose", "pool", "--crl", pool.crl)
	pxMust(t, "", "keytool", "-H", home, "ca", "add", general.cert)
	target := pxPython(t, pxServeFile(t, page))

	withPurpose, addr := pxProxy(t, home, "--target", target, "--purpose", "pool")
	body, msg, code := pxCurl(t, "https://"+addr+"/page.txt", "-k", "--cert", crt, "--key", key)
	if code != 0 || body != page {
		t.Fatalf("curl with the pool CA's certificate, proxy --purpose pool: exit %d\n%s%s", code, body, msg)
	}
	withPurpose.waitFor(t, `via=ca`, 5*time.Second)

	without, addr := pxProxy(t, home, "--target", target)
	if body, msg, code := pxCurl(t, "https://"+addr+"/page.txt", "-k", "--cert", crt, "--key", key); code == 0 || body == page {
		t.Fatalf("curl with the pool CA's certificate got through a proxy without the purpose: exit %d\n%s%s", code, body, msg)
	}
	without.waitFor(t, `refused by `+regexpQuote(filepath.Join(home, "ca.d", "corp-root-ca.pem")), 5*time.Second)
}
