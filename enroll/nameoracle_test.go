package enroll

import (
	"crypto/rand"
	"strings"
	"testing"
)

// A peer holding no token learns nothing from the answer about which
// names the server holds: a name with a pending invitation, one with the
// record of a used invitation (an enrolled client's entry name), and one
// never made are answered the same, status and body, but for the name
// the peer sent. Before: the first two were answered 403 wrong_secret,
// the last 404 unknown_invitation, so a peer with no key could list the
// server's clients and pending invitations by name, five guesses an
// address and one a second in all (found by review). The log still says
// which it was, for the administrator.
func TestRefusalHidesWhichNamesExist(t *testing.T) {
	srvHome := newHome(t)
	srvKey := srvHome.key().PublicKey()
	srv := startServer(t, srvHome, serverConfig{})
	srvHome.invite(t, "pending-one", srv.addr)
	used := srvHome.invite(t, "used-one", srv.addr)
	if _, err := newHome(t).join(t, used); err != nil {
		t.Fatal(err)
	}

	stranger := newHome(t)
	guess := func(name string) (int, string) {
		t.Helper()
		tok := Token{Name: name, Addresses: []string{srv.addr}, Server: srvKey.SPKIHash()}
		if _, err := rand.Read(tok.Secret[:]); err != nil {
			t.Fatal(err)
		}
		status, body := stranger.post(t, srv.addr, Path, tok, srvKey)
		return status, strings.ReplaceAll(string(body), `\"`+name+`\"`, `\"NAME\"`)
	}
	wantStatus, wantBody := guess("never-made")
	if wantStatus != reasonStatus[ReasonUnknown] || !strings.Contains(wantBody, string(ReasonUnknown)) {
		t.Fatalf("a name never made: %d %s", wantStatus, wantBody)
	}
	for _, name := range []string{"pending-one", "used-one"} {
		if status, body := guess(name); status != wantStatus || body != wantBody {
			t.Errorf("a stranger guessing %q is answered\n  %d %s\nwhere a name never made is answered\n  %d %s", name, status, body, wantStatus, wantBody)
		}
	}
	// The administrator is told which it was.
	log := srv.log.String()
	for _, want := range []string{"invitation=pending-one reason=wrong_secret", "invitation=used-one reason=wrong_secret", "invitation=never-made reason=unknown_invitation"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
}
