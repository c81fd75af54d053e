package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
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

// pxRefused connects to the proxy at addr with a key and certificate and
// fails the test unless the handshake is refused (in TLS 1.3, the refusal
// arrives on the first read).
func pxRefused(t *testing.T, addr, crt, key string) {
	t.Helper()
	conn, err := pxDialTLS(t, addr, crt, key)
	if err != nil {
		return
	}
	defer conn.Close()
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatalf("%s got in", crt)
	}
}

// TestProxyOpsTrustMetrics: keytool proxy --metrics-listen, end to end,
// counts a revoked key's handshake under reason="revoked" and a key
// connecting from outside its entry's "from" networks under
// reason="from", with the revoked key in keytool_trust_revoked_keys.
// keytool_trust_seconds_since_last_successful_load is at most the
// proxy's age after its clean first load; it keeps growing (no reload
// resets it) while an authorized-keys file is skipped and while a
// revocation file fails closed, and is small again once both are gone.
func TestProxyOpsTrustMetrics(t *testing.T) {
	pxNeed(t, "openssl", "python3", "promtool")
	target := pxPython(t, pxServeFile(t, "-\n"))
	home := pxGen(t)
	dir := t.TempDir()
	revokedCrt, revokedKey, _ := pxAuthorizedKey(t, home, dir, "revoked")
	pxMust(t, "", "keytool", "-H", home, "revoke", filepath.Join(dir, "revoked-pub.pem"))
	farCrt, farKey, _ := pxOpenSSLKey(t, dir, "far")
	pxWrite(t, filepath.Join(dir, "far-pub.pem"), pxMust(t, "", "openssl", "pkey", "-in", farKey, "-pubout"))
	pxMust(t, "", "keytool", "-H", home, "authorize", "--name", "far", "--from", "192.0.2.0/24", filepath.Join(dir, "far-pub.pem"))

	started := time.Now()
	px, addr := pxProxy(t, home, "--target", target, "--metrics-listen", "127.0.0.1:0")
	base := "http://" + px.waitFor(t, `msg="serving health and metrics" addr=(127\.0\.0\.1:\d+)`, 5*time.Second)[1]
	sinceOK := func() float64 {
		t.Helper()
		_, fams := pxScrape(t, base)
		return fams["keytool_trust_seconds_since_last_successful_load"].get("store=authorized")
	}
	// The clean first load, which the proxy may finish after it serves
	// /metrics (under -race, a scrape came first and read -1).
	px.waitFor(t, `msg="trust store reloaded" files=\d+ problems=0`, 10*time.Second)
	if v, age := sinceOK(), time.Since(started).Seconds(); v < 0 || v > age {
		t.Fatalf("after a clean load, keytool_trust_seconds_since_last_successful_load = %v, want 0 to the proxy's age %.2f", v, age)
	}

	pxRefused(t, addr, revokedCrt, revokedKey)
	px.waitFor(t, `msg=refused .*reason="authkeys: key \S+ is revoked`, 10*time.Second)
	pxRefused(t, addr, farCrt, farKey)
	px.waitFor(t, `msg=refused .*reason="authkeys: key \S+ \(\\"far\\"\) may connect only from 192\.0\.2\.0/24, not from 127\.0\.0\.1`, 10*time.Second)
	text, fams := pxScrape(t, base)
	hs := fams["keytool_proxy_handshakes_total"]
	if hs.get("reason=revoked,result=refused") != 1 || hs.get("reason=from,result=refused") != 1 ||
		hs.get("reason=unknown,result=refused") != 0 || hs.get("reason=key,result=admitted") != 0 {
		t.Fatalf("handshakes: %v", hs.values)
	}
	if v := fams["keytool_trust_revoked_keys"].get("store=authorized"); v != 1 {
		t.Fatalf("keytool_trust_revoked_keys{store=authorized} = %v, want 1", v)
	}
	if out, msg, code := pxRun(t, text, "promtool", "check", "metrics"); code != 0 {
		t.Fatalf("promtool check metrics: exit %d\n%s%s", code, out, msg)
	}

	// A file that does not parse is skipped: the reload that sees it is
	// not a successful load, and the gauge goes on from the last one.
	broke := time.Now()
	pxWrite(t, filepath.Join(home, "authorized_keys.d", "broken.json"), "{not json")
	// inotify, or the minute's rescan when the machine is out of inotify
	// instances (TestProxyOpsEndpointsAndSystemd).
	if pxUntil(90*time.Second, func() bool {
		_, fams := pxScrape(t, base)
		return fams["keytool_trust_skipped_files"].get("store=authorized") == 1
	}) < 0 {
		t.Fatal("the broken authorized-keys file was not skipped")
	}
	growing := func(what string) {
		t.Helper()
		d := time.Since(broke).Seconds()
		v1 := sinceOK()
		if v1 < d-0.05 {
			t.Fatalf("%s: keytool_trust_seconds_since_last_successful_load = %v, less than the %.2f s since the file broke", what, v1, d)
		}
		time.Sleep(time.Second)
		if v2 := sinceOK(); v2 < v1+0.9 {
			t.Fatalf("%s: keytool_trust_seconds_since_last_successful_load went from %v to %v in a second", what, v1, v2)
		}
	}
	growing("an authorized-keys file skipped")

	// A revocation file that cannot be read fails closed; then the
	// skipped file is removed: the reload that sees it gone, with the
	// revocation still failing, is not a successful load either.
	pxWrite(t, filepath.Join(home, "revoked_keys.d", "broken.json"), "{not json")
	if pxUntil(90*time.Second, func() bool {
		_, fams := pxScrape(t, base)
		return fams["keytool_trust_revocation_failed"].get("store=authorized") == 1 && fams["keytool_trust_skipped_files"].get("store=authorized") == 2
	}) < 0 {
		t.Fatal("the broken revocation file did not fail closed (with the skipped file, two skipped)")
	}
	if err := os.Remove(filepath.Join(home, "authorized_keys.d", "broken.json")); err != nil {
		t.Fatal(err)
	}
	if pxUntil(90*time.Second, func() bool {
		_, fams := pxScrape(t, base)
		return fams["keytool_trust_skipped_files"].get("store=authorized") == 1 && fams["keytool_trust_revocation_failed"].get("store=authorized") == 1
	}) < 0 {
		t.Fatal("the removal of the skipped file was not seen")
	}
	growing("a revocation file failing closed")

	// The revocation file gone: the next load is clean, and the gauge
	// starts again. (The time is taken before the removal: the proxy may
	// reload the moment its event comes, before os.Remove has returned to
	// this goroutine.)
	fixed := time.Now()
	if err := os.Remove(filepath.Join(home, "revoked_keys.d", "broken.json")); err != nil {
		t.Fatal(err)
	}
	if pxUntil(90*time.Second, func() bool {
		_, fams := pxScrape(t, base)
		return fams["keytool_trust_skipped_files"].get("store=authorized") == 0 && fams["keytool_trust_revocation_failed"].get("store=authorized") == 0
	}) < 0 {
		t.Fatal("the store did not load cleanly once the broken files were removed")
	}
	if v, d := sinceOK(), time.Since(fixed).Seconds(); v < 0 || v > d {
		t.Fatalf("after a clean reload, keytool_trust_seconds_since_last_successful_load = %v, want 0 to the %.2f s since the fix", v, d)
	}
}

// TestProxyReadyzExpiredIdentity: a proxy whose identity is presented
// with a CA-issued certificate (the home's cert.pem) that has expired is
// not ready: /readyz answers 503 and says so, with the time it expired.
func TestProxyReadyzExpiredIdentity(t *testing.T) {
	pxNeed(t, "python3")
	target := pxPython(t, pxServeFile(t, "-\n"))
	home := pxGen(t)
	data, err := os.ReadFile(filepath.Join(home, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.ParseOne(data)
	if err != nil {
		t.Fatal(err)
	}
	expired := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	ca, caKey, _ := pxCA(t, expired.Add(-48*time.Hour), expired.Add(48*time.Hour))
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "proxy"}, DNSNames: []string{"localhost"},
		NotBefore: expired.Add(-24 * time.Hour), NotAfter: expired, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	pxWrite(t, filepath.Join(home, "cert.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))

	px, _ := pxProxy(t, home, "--target", target, "--metrics-listen", "127.0.0.1:0")
	base := "http://" + px.waitFor(t, `msg="serving health and metrics" addr=(127\.0\.0\.1:\d+)`, 5*time.Second)[1]
	code, body := pxGet(t, base+"/readyz")
	if want := "identity: certificate expired at " + expired.Format(time.RFC3339); code != 503 || !strings.Contains(body, want) {
		t.Fatalf("/readyz with an expired identity certificate: %d %q, want 503 and %q", code, body, want)
	}
	if code, _ := pxGet(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz: %d, want 200 (alive, though not ready)", code)
	}
}

// pxCA makes a CA, valid from notBefore to notAfter, that signs
// certificates and CRLs.
func pxCA(t *testing.T, notBefore, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key, der
}
