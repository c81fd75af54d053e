package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/enroll"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// The advice for enroll's and tlsbridge's errors: the message's one line,
// then the commands, spelled with the -H and -i the user ran for those
// the user runs here.
func TestAdviseEnrollAndTLS(t *testing.T) {
	c := &cli{home: "/srv/my home", homeGiven: "/srv/my home", identity: "id.json"}
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	at := "keytool -H '/srv/my home' -i id.json "
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&tlsbridge.NotPinnedError{Addr: "db:443", Key: k}, "pin it with:\n  " + at + "trust-host db:443 --fingerprint " + k.Fingerprint()},
		{&enroll.PinError{Name: "n", Addr: "db:443", Fingerprint: "SHA256:s", Err: errors.New("disk full")}, at + "trust-host db:443 --fingerprint SHA256:s"},
		{&enroll.NotEnrollmentError{Addr: "db:443", ServerFingerprint: "SHA256:s", Status: "200 OK"}, at + "connect db:443\n"},
		{&enroll.InviteExistsError{Name: "lap top", File: "f"}, "remove it first: " + at + "invite --remove 'lap top'"},
		{&enroll.NameTakenError{Name: "laptop", File: "f"}, "remove it first: " + at + "authorize --remove laptop"},
		{&enroll.NotPendingError{Name: "laptop", Dir: "d"}, "List them with: " + at + "invite --list"},
		{&enroll.NotPendingError{Name: "laptop", Dir: "d", Used: time.Now()}, at + "authorize --remove laptop"},
		{&enroll.NotPendingError{Name: "lap top", Dir: "d", InUse: true}, at + "authorize --list\nTo undo it, remove the key: " + at + "authorize --remove 'lap top'"},
		{&enroll.InterceptionError{Addr: "db:443"}, "man-in-the-middle"},
		{&enroll.UnreachableError{}, "keytool proxy --enroll"},
		{&enroll.HandshakeRefusedError{Addr: "db:443", Err: errors.New("x")}, "keytool proxy --enroll"},
		{&enroll.TokenExpiredError{Name: "laptop", Addresses: []string{"db:443", "10.0.0.7:443"}}, "keytool invite --name laptop --address db:443 --address 10.0.0.7:443 (on the server)"},
		{&enroll.RefusedError{Addr: "db:443", Name: "laptop", Reason: enroll.ReasonExpired}, "A new token is made on the server with: keytool invite --name laptop --address db:443"},
		{&enroll.RefusedError{Addr: "db:443", Name: "laptop", Reason: enroll.ReasonNotEnrollable}, "keytool authorize --remove laptop"},
		{&enroll.RefusedError{Addr: "db:443", Name: "lap top", Reason: enroll.ReasonAlreadyUsed}, "removes it first: keytool invite --remove 'lap top', checks keytool authorize --list (whether a client was enrolled with it), then invites again."},
		{&enroll.KeyMismatchError{Addr: "db:443"}, "keytool authorize --list (on the server)"},
		{&enroll.TokenError{Kind: enroll.ErrTokenMangled}, "Copy it again, whole, from the output of keytool invite."},
		{&enroll.TokenError{Kind: enroll.ErrTokenName, Detail: "x"}, "ask the server's administrator for an invitation under another name: keytool invite --name NAME (on the server)."},
	} {
		got := c.advise(tc.err)
		first, advice, ok := strings.Cut(got, "\n")
		if !ok || first != tc.err.Error() || !strings.Contains(got, tc.want) {
			t.Errorf("%T: advice\n%s\nwant the message, then %q", tc.err, got, tc.want)
		}
		if strings.Contains(advice, "keytool trust-host") || strings.Contains(advice, "keytool connect") {
			t.Errorf("%T: a command for this machine without the user's -H and -i:\n%s", tc.err, advice)
		}
	}
}
