package tlsbridge

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// TestCertFileDanglingLinkIsAProblem: a cert.pem that is a link whose
// target is gone (a CA-issued chain linked from where a renewal tool
// keeps it, removed or renamed meanwhile) is a problem, as every trust
// input's dangling link is (docs/design.md, "One file-trust rule"): the
// identity does not load, and a watching server keeps the CA-issued
// chain it presents. Before (found by review, 2026-12-05): it was taken
// for no cert.pem (os.Stat failed), and the identity was loaded with a
// self-signed certificate — a running proxy logged "identity reloaded"
// and presented it, which every client verifying through the CA refuses.
func TestCertFileDanglingLinkIsAProblem(t *testing.T) {
	ca := newCA(t)
	h := newHome(t, jwk.EC256)
	if err := jwk.WritePrivateKeyFile(filepath.Join(h.dir, "key.json"), h.id.Key, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(h.dir, "chain.pem")
	issued := ca.issue(t, h.id.Key)
	if err := os.WriteFile(target, issued.CertificatePEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(h.dir, "cert.pem")
	if err := os.Symlink(target, certFile); err != nil {
		t.Fatal(err)
	}
	w, err := WatchHomeIdentity(t.Context(), h.dir, CertOptions{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := w.CurrentIdentity().Certificate.Leaf; !got.Equal(issued.Certificate.Leaf) {
		t.Fatalf("presents %v, want the CA-issued certificate", got.Issuer)
	}
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	id, err := LoadHomeIdentity(h.dir, CertOptions{})
	if err == nil {
		t.Errorf("cert.pem a dangling link: loaded, presenting a certificate issued by %v; want an error", id.Certificate.Leaf.Issuer)
	}
	if err := w.Reload(); err == nil {
		t.Error("a watching server reloaded with cert.pem a dangling link")
	}
	if got := w.CurrentIdentity().Certificate.Leaf; !got.Equal(issued.Certificate.Leaf) {
		t.Errorf("a watching server presents a certificate issued by %v, want the CA-issued one kept", got.Issuer)
	}
	var none *jwk.NoIdentityError
	if errors.As(err, &none) {
		t.Errorf("a dangling cert.pem reported as no identity: %v", err)
	}
}
