package proxy

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/tlsbridge"
)

// TestRemoveForged: every spelling of an identity header is removed —
// other cases (as HTTP/2 and raw header maps carry them), underscores for
// dashes, unknown X-Keytool-* names, X-Forwarded-* and Forwarded — from
// headers and trailers alike; the three X-Forwarded-* that the proxy set
// itself stay in the headers; other headers are untouched.
func TestRemoveForged(t *testing.T) {
	h := http.Header{
		"X-Keytool-Name": {"admin"}, "x-keytool-fingerprint": {"SHA256:forged"}, "X_Keytool_Key_Id": {"x"},
		"X-Keytool-Role": {"admin"}, "X-Forwarded-Client-Cert": {"Hash=00"}, "x_forwarded_client_cert": {"Hash=00"},
		"X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Host": {"h"}, "X-Forwarded-Proto": {"https"},
		"X_Forwarded_For": {"6.6.6.6"}, "X-Forwarded-Port": {"1"}, "Forwarded": {"for=6.6.6.6"}, "FORWARDED": {"for=6.6.6.6"},
		"Accept": {"*/*"}, "X-Request-Id": {"abc"},
	}
	trailer := http.Header{"X-Keytool-Name": {"admin"}, "X-Forwarded-For": {"6.6.6.6"}, "X-Checksum": {"1"}}
	removeForged(h, true)
	removeForged(trailer, false)
	keys := func(h http.Header) []string {
		var k []string
		for name := range h {
			k = append(k, name)
		}
		slices.Sort(k)
		return k
	}
	if got, want := keys(h), []string{"Accept", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Request-Id"}; !slices.Equal(got, want) {
		t.Errorf("headers left: %v, want %v", got, want)
	}
	if got, want := keys(trailer), []string{"X-Checksum"}; !slices.Equal(got, want) {
		t.Errorf("trailers left: %v, want %v", got, want)
	}
}

// A client naming the identity headers in Connection (hop-by-hop: a proxy
// deletes the headers Connection names) cannot make the proxy delete the
// ones it adds, nor keep its forged ones: ReverseProxy applies Connection
// before Rewrite, which removes and sets them. The target sees the
// admitted peer's identity whatever the client sent.
func TestHopByHopCannotRemoveIdentity(t *testing.T) {
	got := make(chan http.Header, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	defer target.Close()
	h := newHTTPMode(strings.TrimPrefix(target.URL, "http://"), slog.New(slog.DiscardHandler), 5*time.Second)
	defer h.srv.Close()
	peer := &tlsbridge.Peer{SPKIHash: [32]byte{1}, Entry: &authkeys.Entry{Name: "alice"}}
	req := httptest.NewRequest("GET", "https://app.example/", nil)
	req.Header.Set("Connection", "X-Keytool-Name, X-Keytool-Fingerprint, X-Keytool-Key-Id, X-Forwarded-Client-Cert, Forwarded, X-Forwarded-For")
	req.Header.Set("X-Keytool-Name", "admin")
	req.Header.Set("X-Keytool-Fingerprint", "SHA256:forged")
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	req = req.WithContext(context.WithValue(req.Context(), peerKey{}, peer))
	rec := httptest.NewRecorder()
	h.srv.Handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	hdr := <-got
	for name, want := range map[string]string{
		HeaderName: "alice", HeaderFingerprint: peer.Fingerprint(), HeaderKeyID: peer.KeyID(), "X-Forwarded-For": "192.0.2.1",
	} {
		if v := hdr.Values(name); len(v) != 1 || v[0] != want {
			t.Errorf("%s: %q, want %q", name, v, want)
		}
	}
	for _, name := range []string{HeaderClientCert, "Forwarded"} {
		if len(hdr.Values(name)) != 1 {
			t.Errorf("%s: %q, want the proxy's one", name, hdr.Values(name))
		}
	}
}

// XFCC's Subject is sent only for a client a CA vouched for: a client
// admitted by its key wrote its certificate's subject itself.
func TestClientCertSubjectOnlyViaCA(t *testing.T) {
	cert := &x509.Certificate{Raw: []byte("der"), Subject: pkix.Name{CommonName: "admin"}}
	for _, viaCA := range []bool{false, true} {
		peer := &tlsbridge.Peer{Certificate: cert, ViaCA: viaCA}
		in := httptest.NewRequest("GET", "https://app.example/", nil)
		in = in.WithContext(context.WithValue(in.Context(), peerKey{}, peer))
		out := http.Header{}
		setPeer(out, in)
		if got := strings.Contains(out.Get(HeaderClientCert), `Subject="CN=admin"`); got != viaCA {
			t.Errorf("via CA %t: %s: %q", viaCA, HeaderClientCert, out.Get(HeaderClientCert))
		}
	}
}
