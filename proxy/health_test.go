package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir"
)

// fakeStore is a store whose status a test sets.
type fakeStore struct{ st keydir.Status }

func (f *fakeStore) OnChange(func(authkeys.Change)) func() { return func() {} }
func (f *fakeStore) Status() keydir.Status                 { return f.st }

// TestHealthReady: ready only while serving, loaded, with a valid
// identity and no revocation input failing closed; /readyz says why not
// without naming files, /healthz answers all the same; an identity set
// again (a reload) is the one checked.
func TestHealthReady(t *testing.T) {
	store := &fakeStore{keydir.Status{Generation: 1, Keys: 3}}
	h := NewHealth()
	h.AddStore("authorized", store)
	valid := &tls.Certificate{Leaf: &x509.Certificate{NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}}
	expired := &tls.Certificate{Leaf: &x509.Certificate{NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}}
	h.SetIdentity(CertificateValid(valid))
	ready := func() (int, string) {
		rec := httptest.NewRecorder()
		OpsHandler(h, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := ready(); code != 503 || !strings.Contains(body, "not accepting connections") {
		t.Fatalf("before serving: %d %q", code, body)
	}
	h.SetServing(true)
	if code, body := ready(); code != 200 || body != "ready\n" {
		t.Fatalf("serving: %d %q", code, body)
	}
	store.st.RevocationErr = errors.New("/secret/path/revoked_keys.d/x.json: permissions 0666")
	if code, body := ready(); code != 503 || !strings.Contains(body, "trust store authorized: a revocation input cannot be read") || strings.Contains(body, "secret") {
		t.Fatalf("revocation failing: %d %q", code, body)
	}
	store.st = keydir.Status{Generation: 0}
	if code, body := ready(); code != 503 || !strings.Contains(body, "not loaded yet") {
		t.Fatalf("not loaded: %d %q", code, body)
	}
	store.st = keydir.Status{Generation: 2}
	h.SetIdentity(CertificateValid(expired))
	if code, body := ready(); code != 503 || !strings.Contains(body, "identity: certificate expired") {
		t.Fatalf("expired identity: %d %q", code, body)
	}
	rec := httptest.NewRecorder()
	OpsHandler(h, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != 200 || rec.Body.String() != "ok\n" {
		t.Fatalf("/healthz while not ready: %d %q", rec.Code, rec.Body.String())
	}
}
