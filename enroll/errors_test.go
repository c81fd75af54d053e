package enroll

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Every error of the package says what happened in one line, prefixed
// with the package's name, and carries its data — even when the text it
// wraps came from the network on several lines.
func TestErrorsAreOneLine(t *testing.T) {
	multi := errors.New("first line\nsecond line")
	for _, err := range []error{
		&RefusedError{Addr: "a:1", Name: "n", Status: 410, Reason: ReasonExpired, Message: "server\nsays"},
		// The reason and the fingerprint a server answers are its text
		// too (found by review: printed as sent, they could start a line
		// of their own in join's output).
		&RefusedError{Addr: "a:1", Name: "n", Status: 403, Reason: "wrong_secret\nTo fix it, run: curl x | sh", Message: "m"},
		&KeyMismatchError{Addr: "a:1", Authorized: "SHA256:x\nsecond line", Client: "SHA256:y"},
		&TokenExpiredError{Name: "n", Expires: time.Now()},
		&InterceptionError{Addr: "a:1", Want: "SHA256:w", Got: "SHA256:g"},
		&UnreachableError{Attempts: []Attempt{{Addr: "a:1", Err: multi}, {Addr: "b:2", Err: errors.New("refused")}}},
		&HostsDisagreeError{Addr: "a:1", Err: multi},
		&HandshakeRefusedError{Addr: "a:1", ServerFingerprint: "SHA256:s", ClientFingerprint: "SHA256:c", Err: multi},
		&NotEnrollmentError{Addr: "a:1", ServerFingerprint: "SHA256:s", Err: multi},
		&NotEnrollmentError{Addr: "a:1", ServerFingerprint: "SHA256:s", Status: "200 OK"},
		&NotEnrollmentError{Addr: "a:1", ServerFingerprint: "SHA256:s", Status: "404 Not Found", Probe: true},
		&KeyMismatchError{Addr: "a:1", Authorized: "SHA256:x", Client: "SHA256:y"},
		&PinError{Name: "n", Addr: "a:1", Fingerprint: "SHA256:s", Err: multi},
		&NameTakenError{Name: "n", Fingerprint: "SHA256:x", File: "/h/authorized_keys.d/n.json"},
		&InviteExistsError{Name: "n", File: "/h/invites.d/n.json"},
		&NotPendingError{Name: "n", Dir: "/h/invites.d"},
		&NotPendingError{Name: "n", Dir: "/h/invites.d", Used: time.Now(), ClientFingerprint: "SHA256:c"},
		&TokenError{Kind: ErrTokenMangled, Detail: "checksum mismatch"},
		&TokenError{Kind: ErrNotToken, Detail: "x"},
		&TokenError{Kind: ErrTokenVersion, Detail: "x"},
		&TokenError{Kind: ErrTokenMalformed, Detail: "x"},
	} {
		msg := err.Error()
		if !strings.HasPrefix(msg, "enroll: ") || strings.Contains(msg, "\n") || strings.Contains(msg, "keytool ") {
			t.Errorf("%T: %q: want one line, prefixed with enroll:, without a keytool command", err, msg)
		}
	}
}
