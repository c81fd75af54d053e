package enroll

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
)

// An invitation's expiry is checked against the time of the claim, not
// the time the request began: a token holder who starts a request before
// the invitation expires and sends its body after — slowly, or hours
// later on a server without a read timeout — is told it expired, and
// nothing is enrolled (found by review: the request's start time was the
// one checked, so an invitation listed as expired could still be used).
func TestExpiryCheckedWhenClaimed(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	clock := newFakeClock()
	srv := startServer(t, srvHome, serverConfig{now: clock.now})
	tok := srvHome.invite(t, "laptop", srv.addr)
	started, release := make(chan struct{}), make(chan struct{})
	code := make(chan int, 1)
	go func() {
		code <- attemptAs(srv, cli, "192.0.2.1:40000", &gatedBody{r: strings.NewReader(requestBody(t, tok)), started: started, release: release})
	}()
	<-started // the request has begun, its body not yet sent
	clock.advance(DefaultTTL + time.Minute)
	close(release)
	if c := <-code; c != http.StatusGone {
		t.Errorf("a body sent after the invitation expired: %d, want 410 (expired)", c)
	}
	if d := srvHome.clients(t).Decide(cli.key().SPKIHash(), netip.Addr{}); d.Verdict != authkeys.Unknown {
		t.Errorf("the client's key is %v, want unknown", d.Verdict)
	}
}
