package cli

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/enroll"
)

// TestProxyEnrollLogsPendingCountsAtExit: refusals by enrollment's rate
// limits that keytool proxy --enroll has counted and not logged yet when
// it stops are logged before it exits (enroll.Handler.Close) — the count
// line came only at the end of its 10 s interval, from a timer the exit
// killed.
func TestProxyEnrollLogsPendingCountsAtExit(t *testing.T) {
	fastExit(t)
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	srvHome, cliHome := joinHome(t), joinHome(t)
	proxy, addr := pxProxy(t, srvHome, "--enroll", "--target", target.Addr().String())
	tok, err := enroll.DecodeToken(inviteToken(t, srvHome, "--name", "laptop", "--address", addr))
	if err != nil {
		t.Fatal(err)
	}
	tok.Secret[0] ^= 0xff
	wrong, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// 5 wrong secrets (the default burst of an address), then 3 refused
	// by the limit: the first logged in full, 2 counted.
	for i := range 8 {
		_, e, code := keytoolIn(t, cliHome, "join", wrong)
		want := "unknown_invitation" // a wrong secret is told what a name never made is
		if i >= 5 {
			want = "rate_limited"
		}
		if code != 1 || !strings.Contains(e, want) {
			t.Fatalf("join %d with a wrong secret: exit %d, want 1 and %s:\n%s", i+1, code, want, e)
		}
	}
	proxy.waitFor(t, `msg="enrollment refused" .*reason=rate_limited retry_after=`, 10*time.Second)
	if err := proxy.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := proxy.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("the proxy exited with status %d after SIGTERM, want 0", code)
	}
	proxy.waitFor(t, `msg="enrollment refused" remote=127\.0\.0\.1 reason=rate_limited repeated=2 in=`, time.Second)
}
