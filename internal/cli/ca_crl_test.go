package cli

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ca add with a CRL older than the one installed for the CA (a lower CRL
// number: a stale file, an old playbook run again) is refused, exit 1,
// naming both, and the newer CRL stays: replaced, the certificate it
// revokes was admitted again, without a word (found by review,
// 2026-12-05).
func TestCAAddRefusesAnOlderCRL(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cert, key := testCA(t, "Corp CA", time.Now().Add(24*time.Hour))
	caFile := filepath.Join(root, "corp.pem")
	writePEM(t, caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	crl := func(num int64, revoked ...int64) string {
		var entries []x509.RevocationListEntry
		for _, serial := range revoked {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: big.NewInt(serial), RevocationTime: time.Now().Add(-time.Hour)})
		}
		der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(num),
			ThisUpdate: time.Now().Add(-time.Duration(10-num) * time.Hour), NextUpdate: time.Now().Add(7 * 24 * time.Hour),
			RevokedCertificateEntries: entries}, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(root, "crl"+big.NewInt(num).String()+".pem")
		writePEM(t, f, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
		return f
	}
	older, newer := crl(1), crl(2, 42)
	if o, e, code := runKeytool(t, "", "-H", home, "ca", "add", caFile, "--name", "corp", "--crl", newer); code != 0 {
		t.Fatalf("ca add --crl newer: exit %d\n%s%s", code, o, e)
	}
	installed := filepath.Join(home, "ca.d", "corp.crl.pem")
	before, err := os.ReadFile(installed)
	if err != nil {
		t.Fatal(err)
	}
	_, e, code := runKeytool(t, "", "-H", home, "ca", "add", caFile, "--name", "corp", "--crl", older)
	if code != 1 || !strings.Contains(e, "number 1") || !strings.Contains(e, "number 2") || !strings.Contains(e, "is older than the one installed in") {
		t.Errorf("ca add --crl older: exit %d, want 1 naming both CRLs; stderr:\n%s", code, e)
	}
	if after, err := os.ReadFile(installed); err != nil || string(after) != string(before) {
		t.Errorf("the newer CRL was replaced (%v)", err)
	}
	if o, e, code := runKeytool(t, "", "-H", home, "ca", "add", caFile, "--name", "corp", "--crl", crl(3)); code != 0 {
		t.Errorf("ca add --crl with a newer one: exit %d\n%s%s", code, o, e)
	}
}

// ca remove of a CA whose key ca.pem (which ca does not manage) still
// trusts says so: removed, the admin took the CA for gone while PKI mode
// still admitted what it signs (found by review, 2026-12-05).
func TestCARemoveNotesCAStillTrusted(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	cert, _ := testCA(t, "Corp CA", time.Now().Add(24*time.Hour))
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	caFile := filepath.Join(root, "corp.pem")
	writePEM(t, caFile, p)
	if o, e, code := runKeytool(t, "", "-H", home, "ca", "add", caFile, "--name", "corp"); code != 0 {
		t.Fatalf("ca add: exit %d\n%s%s", code, o, e)
	}
	o, e, code := runKeytool(t, "", "-H", home, "ca", "remove", "corp")
	if code != 0 || strings.Contains(e, "still trusted") {
		t.Errorf("ca remove of a CA trusted nowhere else: exit %d\n%s%s", code, o, e)
	}
	writePEM(t, filepath.Join(home, "ca.pem"), p)
	if o, e, code := runKeytool(t, "", "-H", home, "ca", "add", caFile, "--name", "corp"); code != 0 {
		t.Fatalf("ca add: exit %d\n%s%s", code, o, e)
	}
	o, e, code = runKeytool(t, "", "-H", home, "ca", "remove", "corp")
	if code != 0 || !strings.Contains(o, "Removed CA") || !strings.Contains(e, "is still trusted by "+filepath.Join(home, "ca.pem")+" (any)") {
		t.Errorf("ca remove of a CA ca.pem still trusts: exit %d, want 0 and a note naming ca.pem\n%s%s", code, o, e)
	}
}
