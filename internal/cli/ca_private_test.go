package cli

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ca add --crl: a file that holds a private key beside the CRL — a small
// CA's key and CRL kept in one PEM file, given by mistake — is refused,
// and nothing is installed. It was written into ca.d with the key, 0644
// (InstallCA now writes the CRLs alone: TestInstallCAWritesOnlyTheCRL).
func TestCAAddRefusesCRLFileWithPrivateKey(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	cert, key := newTestCA(t)
	der := cert.Raw
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	crlPEM := pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl})
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	combined := filepath.Join(dir, "ca-key-and-crl.pem")
	if err := os.WriteFile(combined, append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), crlPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runKeytool(t, "", "-H", home, "ca", "add", caFile, "--crl", combined)
	if code != 1 || !strings.Contains(errOut, combined) || !strings.Contains(errOut, "private key") {
		t.Errorf("ca add --crl with a private key in the file: exit %d, %q; want 1, naming the file and the private key", code, errOut)
	}
	_ = filepath.WalkDir(home, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); bytes.Contains(b, []byte("PRIVATE KEY")) {
				t.Errorf("%s holds the private key", path)
			}
		}
		return nil
	})
	// The CRL alone is installed.
	crlFile := filepath.Join(dir, "ca.crl.pem")
	if err := os.WriteFile(crlFile, crlPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runKeytool(t, "", "-H", home, "ca", "add", caFile, "--crl", crlFile); code != 0 {
		t.Errorf("ca add --crl with the CRL alone: exit %d, %q", code, errOut)
	}
}
