package tlsbridge

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// TestCertFileHoldingAPrivateKey: a cert.pem that also holds a private
// key — a certificate and its key in one file, as HAProxy takes them,
// installed as it came (`cat server.crt server.key > cert.pem`) — is a
// private key file, and like key.* it must not be readable by group or
// others (*jwk.PermissionError, naming cert.pem). Only its CERTIFICATE
// blocks are read, so before (found by review, 2026-12-05) the identity
// loaded and was presented, its private key readable by every user,
// where key.pem holding that key at the same mode was refused. At 0600
// it loads; a rotation refuses it too, before moving a key.
func TestCertFileHoldingAPrivateKey(t *testing.T) {
	h := newHome(t, jwk.EC256)
	if err := jwk.WritePrivateKeyFile(filepath.Join(h.dir, "key.json"), h.id.Key, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(h.id.Key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	combined := append(h.id.CertificatePEM(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
	certFile := filepath.Join(h.dir, "cert.pem")
	if err := os.WriteFile(certFile, combined, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(certFile, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	var pe *jwk.PermissionError
	if _, err := LoadHomeIdentity(h.dir, CertOptions{}); !errors.As(err, &pe) || pe.File != certFile {
		t.Errorf("cert.pem 0644 holding a private key: %v, want a *jwk.PermissionError naming it", err)
	}
	if _, err := LoadIdentity(filepath.Join(h.dir, "key.json"), certFile, CertOptions{}); !errors.As(err, &pe) {
		t.Errorf("LoadIdentity with it: %v, want a *jwk.PermissionError", err)
	}
	// A rotation to a next key whose certificate comes with its key.
	next := mustGenerate(t, jwk.EC256)
	if err := jwk.WritePrivateKeyFile(filepath.Join(h.dir, "key.next.json"), next, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	nid, err := NewIdentity(next, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nder, err := x509.MarshalPKCS8PrivateKey(next.Signer())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, append(nid.CertificatePEM(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: nder})...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := RotateHome(h.dir); !errors.As(err, &pe) {
		t.Errorf("rotate to a cert.pem 0644 holding a private key: %v, want a *jwk.PermissionError", err)
	}
	if _, err := os.Stat(filepath.Join(h.dir, "key.next.json")); err != nil {
		t.Errorf("the refused rotation moved the next key: %v", err)
	}
	// At 0600, as a key file, it is the identity's chain.
	if err := os.WriteFile(certFile, combined, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(certFile, 0o600); err != nil { // WriteFile keeps the mode of a file that exists
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(h.dir, "key.next.json")); err != nil {
		t.Fatal(err)
	}
	if id, err := LoadHomeIdentity(h.dir, CertOptions{}); err != nil || !id.Key.Equal(h.id.Key) {
		t.Errorf("cert.pem 0600 holding the key: %v", err)
	}
}
