package tlsbridge

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// The 403 body goes to a client the server does not trust: it holds the
// reason code, a fixed sentence and the client's own key, and nothing of
// the server — no file, no entry name, no network, no keytool command —
// whatever the refusal (not authorized, revoked on a live connection,
// expired, from another network, refused by the CA).
func TestForbiddenBodyLeaksNothing(t *testing.T) {
	srvHome := newHome(t, jwk.EC256)
	ca := newCA(t)
	// Two servers of one home: pinned keys only, and PKI mode.
	serve := func(pki *PKI) (*Server, string) {
		srv, err := NewServer(srvHome.id, ServerOptions{Clients: srvHome.auth, AllowUnknown: true, PKI: pki})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewUnstartedServer(srv.RequireAuthenticated(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hello "+PeerFromContext(r.Context()).Name())
		})))
		hs.TLS = srv.TLSConfig()
		hs.Config.ConnContext = ConnContext
		hs.StartTLS()
		t.Cleanup(hs.Close)
		return srv, hs.URL
	}
	_, url := serve(nil)
	pkiSrv, pkiURL := serve(ca.pki(t))
	client := func(id *Identity, url string) *http.Client {
		h := newHome(t, jwk.EC256)
		if id != nil {
			h.id = id
		}
		h.pin(t, strings.TrimPrefix(url, "https://"), srvHome.id.Key)
		return &http.Client{Transport: h.client(t, ClientOptions{}).Transport()}
	}

	// What the body must not hold: the server's home and files, the
	// entry names, the networks, the command.
	secrets := []string{srvHome.dir, ca.dir, "authorized_keys", "revoked_keys", ".json", "ca.pem", "crl.pem",
		"revoked-entry", "expired-entry", "office-entry", "10.0.0.0", "10.0.0.0/8", "127.0.0.1", "keytool", "Example Org CA"}

	get := func(c *http.Client, url string, key *jwk.Key, want ForbiddenReason) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: status %d, want 403: %s", want, resp.StatusCode, body)
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var fb struct {
			Error       string `json:"error"`
			Reason      string `json:"reason"`
			Message     string `json:"message"`
			Fingerprint string `json:"fingerprint"`
			KeyID       string `json:"key_id"`
		}
		if err := dec.Decode(&fb); err != nil || dec.More() {
			t.Fatalf("%s: the body is not exactly the allowed fields (%v): %s", want, err, body)
		}
		if fb.Error != "forbidden" || fb.Reason != string(want) || fb.Message != forbiddenMessages[want] ||
			fb.Fingerprint != key.Fingerprint() || fb.KeyID != key.KeyID() {
			t.Errorf("%s: body %+v, want reason %s, its sentence, and the client's own fingerprint and key ID", want, fb, want)
		}
		for _, s := range secrets {
			if strings.Contains(string(body), s) {
				t.Errorf("%s: the body tells the client %q: %s", want, s, body)
			}
		}
	}

	// Not authorized.
	stranger := newHome(t, jwk.EC256)
	get(client(stranger.id, url), url, stranger.id.Key, ReasonNotAuthorized)

	// Revoked after the handshake: the live connection's next request.
	revoked := newHome(t, jwk.EC256)
	srvHome.authorize(t, "revoked-entry", revoked.id.Key)
	rc := client(revoked.id, url)
	if resp, err := rc.Get(url); err != nil || resp.StatusCode != 200 {
		t.Fatalf("authorized client: %v", err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body) // so that the connection is reused
		resp.Body.Close()
	}
	srvHome.revoke(t, revoked.id.Key)
	get(rc, url, revoked.id.Key, ReasonRevoked)

	// Expired.
	expired := newHome(t, jwk.EC256)
	k := expired.id.Key.PublicKey()
	k.Attrs = jwk.Attributes{}
	k.Attrs.SetString(jwk.AttrExpires, time.Now().Add(-time.Minute).UTC().Format(time.RFC3339))
	srvHome.authorize(t, "expired-entry", k)
	get(client(expired.id, url), url, expired.id.Key, ReasonExpired)

	// From another network.
	office := newHome(t, jwk.EC256)
	k = office.id.Key.PublicKey()
	k.Attrs = jwk.Attributes{}
	k.Attrs.SetList(jwk.AttrFrom, []string{"10.0.0.0/8"})
	srvHome.authorize(t, "office-entry", k)
	get(client(office.id, url), url, office.id.Key, ReasonSourceNotAllowed)

	// A certificate from another CA, and one this CA revoked.
	other := newHome(t, jwk.EC256)
	get(client(newCA(t).issue(t, other.id.Key), pkiURL), pkiURL, other.id.Key, ReasonCARefused)
	crlRevoked := newHome(t, jwk.EC256)
	crlID := ca.issue(t, crlRevoked.id.Key)
	ca.writeCRL(t, crlID)
	pkiSrv.opts.PKI.checkedAt.Store(0)
	// A certificate its CA's CRL revokes is refused in the handshake, as a
	// revoked key is, even under AllowUnknown: no 403, no enrollment.
	if _, err := client(crlID, pkiURL).Get(pkiURL); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Errorf("a certificate the CRL revokes: %v, want the handshake refused", err)
	}
}

// ReasonOf maps each refusal to its code; anything else is
// not_authorized, and a trust state that cannot be read is unavailable.
func TestReasonOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want ForbiddenReason
	}{
		{&PKIFileError{File: "ca.pem", Err: errors.New("x")}, ReasonUnavailable},
		{&CARefusedError{File: "ca.pem", Err: errors.New("x")}, ReasonCARefused},
		{&RevokedCertificateError{}, ReasonRevoked},
		{&noCertificateError{}, ReasonNoCertificate},
		{errors.New("something else"), ReasonNotAuthorized},
	} {
		if got := ReasonOf(tc.err); got != tc.want {
			t.Errorf("ReasonOf(%T) = %s, want %s", tc.err, got, tc.want)
		}
	}
	for r, msg := range forbiddenMessages {
		if strings.Contains(msg, "keytool") || strings.Contains(msg, "\n") {
			t.Errorf("%s: %q", r, msg)
		}
	}
}

// A request that did not come over TLS with a client certificate gets
// no_certificate, and no fingerprint.
func TestForbiddenNoCertificate(t *testing.T) {
	h := newHome(t, jwk.EC256)
	srv, err := NewServer(h.id, ServerOptions{Clients: h.auth})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.RequireAuthenticated(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	var fb ForbiddenBody
	dec := json.NewDecoder(rec.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fb); err != nil || rec.Code != 403 || fb.Reason != ReasonNoCertificate || fb.Fingerprint != "" || fb.Error != "forbidden" {
		t.Fatalf("%d %+v (%v)", rec.Code, fb, err)
	}
}

// TestForbiddenResponseIsWriteForbidden: the refusal written on a bare
// connection (WriteForbiddenResponse, for a client that made no HTTP
// request) is WriteForbidden's answer — the same status, headers and
// body — and says it closes the connection.
func TestForbiddenResponseIsWriteForbidden(t *testing.T) {
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	sum := k.SPKIHash()
	for _, spki := range []*[32]byte{&sum, nil} {
		rec := httptest.NewRecorder()
		WriteForbidden(rec, ReasonRevoked, spki)
		var wire bytes.Buffer
		if err := WriteForbiddenResponse(&wire, ReasonRevoked, spki); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(&wire), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != rec.Code || !bytes.Equal(body, rec.Body.Bytes()) || !resp.Close {
			t.Errorf("on the connection: %d close=%v %s (%v)\nWriteForbidden: %d %s", resp.StatusCode, resp.Close, body, err, rec.Code, rec.Body.Bytes())
		}
		for _, h := range []string{"Content-Type", "Cache-Control"} {
			if got, want := resp.Header.Get(h), rec.Header().Get(h); got != want {
				t.Errorf("%s: %q, WriteForbidden's %q", h, got, want)
			}
		}
	}
}
