package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// A keytool server may let a client whose key it does not admit finish
// the handshake and answer its first request with an HTTP 403 instead of
// a TLS alert: keytool proxy --enroll (so that the client can enroll on
// that connection), proxy --http for a key removed since the handshake, a
// tlsbridge HTTP API with AllowUnknown. connect pipes that answer like any
// other; it recognises it afterwards, so that the refusal is an exit
// status and a message, not a JSON body on standard output and exit 0.

// forbiddenCapture bounds what connect keeps of the server's answer to
// recognise such a refusal: tlsbridge.WriteForbidden's answer is a few
// hundred bytes, so a longer stream is not one.
const forbiddenCapture = 4 << 10

// headWriter writes to w and keeps the first max bytes written.
type headWriter struct {
	w    io.Writer
	max  int
	head []byte
}

func (h *headWriter) Write(p []byte) (int, error) {
	if room := h.max - len(h.head); room > 0 {
		h.head = append(h.head, p[:min(room, len(p))]...)
	}
	return h.w.Write(p)
}

// forbiddenAnswer returns the body of answer when answer is keytool's
// HTTP 403 refusal of the key whose fingerprint is fp
// (tlsbridge.WriteForbidden), else nil. A 403 of the service behind a
// proxy is the service's own answer: only a body in tlsbridge's fields,
// and those alone, naming this client's own key, with one of tlsbridge's
// reasons and its fixed sentence, is taken as a refusal — what connect
// then prints of it is keytool's own words, never bytes a server chose
// (a reason of escape sequences would reach the terminal).
func forbiddenAnswer(answer []byte, fp string) *tlsbridge.ForbiddenBody {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(answer)), nil)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		return nil
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	dec.DisallowUnknownFields()
	var body tlsbridge.ForbiddenBody
	if dec.Decode(&body) != nil || body.Error != "forbidden" || body.Fingerprint != fp {
		return nil
	}
	if msg, known := body.Reason.Message(); !known || body.Message != msg {
		return nil
	}
	return &body
}

// forbiddenByServerError: the server let this client finish the handshake,
// then answered keytool's HTTP 403 for its key (piped to standard output
// all the same).
type forbiddenByServerError struct {
	addr   string
	key    *jwk.Key
	reason tlsbridge.ForbiddenReason
	msg    string // the server's fixed sentence for reason
}

func (e *forbiddenByServerError) Error() string {
	return fmt.Sprintf("%s refused this client's key %s: it answered HTTP 403 Forbidden, reason %s (%q)", e.addr, e.key.Fingerprint(), e.reason, e.msg)
}

// forbiddenAdvice is what to do about a forbiddenByServerError.
func (c *cli) forbiddenAdvice(e *forbiddenByServerError) string {
	authorize := askToAuthorize(c.command("pub"))
	switch e.reason {
	case tlsbridge.ReasonNotAuthorized:
		return "If the server serves enrollment (keytool proxy --enroll), enroll with a token its administrator makes (keytool invite, on the server):\n" +
			"  " + c.command("join", "TOKEN") + "\n" +
			"Or " + authorize
	case tlsbridge.ReasonExpired:
		return "Its authorization has expired: " + authorize
	case tlsbridge.ReasonRevoked:
		return "Authorizing the key or enrolling it again does not let it in: only the server's administrator can lift the revocation."
	}
	return "Ask the server's administrator."
}
