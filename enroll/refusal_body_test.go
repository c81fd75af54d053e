package enroll

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// post sends an enrollment request for tok's invitation as c to path,
// over TLS pinned to the server's key srvKey, and returns the status and
// the raw body.
func (c *home) post(t *testing.T, addr, path string, tok Token, srvKey *jwk.Key) (int, []byte) {
	t.Helper()
	hosts := c.hosts(t)
	if _, err := hosts.Add(addr, srvKey); err != nil {
		t.Fatal(err)
	}
	cl, err := tlsbridge.NewClient(c.id, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Strict})
	if err != nil {
		t.Fatal(err)
	}
	tr := cl.Transport()
	defer tr.CloseIdleConnections()
	body, _ := json.Marshal(Request{Name: tok.Name, Secret: base64.RawURLEncoding.EncodeToString(tok.Secret[:])})
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Post("https://"+addr+path, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// The refusals go to a client that is not trusted yet: their bodies hold
// the reason, and a message naming nothing of the server but what the
// client sent — no file, no other entry's name, no network, no keytool
// command.
func TestRefusalBodiesLeakNothing(t *testing.T) {
	srvHome := newHome(t)
	srvKey := srvHome.key().PublicKey()
	later := time.Now().Add(3 * time.Hour)
	srv := startServer(t, srvHome, serverConfig{})
	expSrv := startServer(t, srvHome, serverConfig{now: func() time.Time { return later }})
	proxyLike := startServer(t, srvHome, serverConfig{conn: true})
	clients := srvHome.clients(t)

	// The client sends the invitation's name, which may be named back;
	// nothing else of the server may be.
	secrets := []string{srvHome.dir, "invites.d", "authorized_keys", ".json", "keytool", "alice-entry", "127.0.0.1"}
	check := func(what string, status int, body []byte, want Reason) {
		t.Helper()
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		var a Response
		if err := dec.Decode(&a); err != nil || a.Reason != want || status != reasonStatus[want] || a.Name != "" || a.ServerFingerprint != "" {
			t.Errorf("%s: %d %s (%v), want reason %s", what, status, body, err, want)
		}
		for _, s := range secrets {
			if strings.Contains(string(body), s) {
				t.Errorf("%s: the body tells the client %q: %s", what, s, body)
			}
		}
	}

	// Expired, by the server's clock.
	tok := srvHome.invite(t, "late", srv.addr)
	status, body := newHome(t).post(t, expSrv.addr, Path, tok, srvKey)
	check("expired", status, body, ReasonExpired)

	// The name is taken by another key on the server.
	tok = srvHome.invite(t, "taken-by", srv.addr)
	if _, err := clients.Add(newHome(t).key(), "taken-by", authkeys.AddNew); err != nil {
		t.Fatal(err)
	}
	status, body = newHome(t).post(t, srv.addr, Path, tok, srvKey)
	check("name taken", status, body, ReasonNotEnrollable)

	// The client's key is already authorized, under another name, which
	// the answer must not tell.
	alice := newHome(t)
	if _, err := clients.Add(alice.key(), "alice-entry", authkeys.AddNew); err != nil {
		t.Fatal(err)
	}
	tok = srvHome.invite(t, "again", srv.addr)
	status, body = alice.post(t, srv.addr, Path, tok, srvKey)
	check("already authorized", status, body, ReasonNotEnrollable)

	// Unknown (revoked) invitation.
	tok = srvHome.invite(t, "gone", srv.addr)
	if _, err := RevokeInvite(InvitesDir(srvHome.dir), "gone"); err != nil {
		t.Fatal(err)
	}
	status, body = newHome(t).post(t, srv.addr, Path, tok, srvKey)
	check("unknown", status, body, ReasonUnknown)

	// Any other path, on a connection served by ServeConn: tlsbridge's
	// 403 body, with the client's own key only.
	stranger := newHome(t)
	status, body = stranger.post(t, proxyLike.addr, "/elsewhere", tok, srvKey)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var fb tlsbridge.ForbiddenBody
	if err := dec.Decode(&fb); err != nil || status != 403 || fb.Reason != tlsbridge.ReasonNotAuthorized || fb.Fingerprint != stranger.key().Fingerprint() {
		t.Errorf("other path: %d %s (%v)", status, body, err)
	}
	for _, s := range secrets {
		if strings.Contains(string(body), s) {
			t.Errorf("other path: the body tells the client %q: %s", s, body)
		}
	}
}
