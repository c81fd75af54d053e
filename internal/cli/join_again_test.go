package cli

import (
	"strings"
	"testing"
	"time"
)

// TestJoinAgain: join run again after it succeeded, against keytool proxy
// --enroll in front of an HTTP server (Python's http.server). The proxy
// now passes this client's requests to its target, which answers join's
// probe (a GET that carries nothing) with an HTTP 404, so the token's
// secret is not sent to it (enroll.TestSecretNotSentToTheService); join
// says the client is already enrolled (the token's server key is pinned
// here, and the server let the key through), exits 1 and writes nothing —
// with the same token, and with a new one.
func TestJoinAgain(t *testing.T) {
	pxNeed(t, "python3")
	web := pxPython(t, t.TempDir())
	srvHome, cliHome := joinHome(t), joinHome(t)
	proxy, addr := pxProxy(t, srvHome, "--enroll", "--target", web)
	tok := inviteToken(t, srvHome, "--name", "laptop", "--address", addr)
	if out, e, code := keytoolIn(t, cliHome, "join", tok); code != 0 || !strings.Contains(out, `as "laptop"`) {
		t.Fatalf("join: exit %d\n%s%s", code, out, e)
	}
	want := "keytool join: this client is already enrolled with " + addr + ": it presents key " + pxFingerprint(t, srvHome) +
		", pinned here, and lets this client's key " + pxFingerprint(t, cliHome) +
		" through to its service, which answered 404 File not found where keytool answers a client it does not know; "
	check := "the token's secret was not sent and nothing was written\nCheck with: keytool -H " + cliHome + " connect " + addr + "\n"

	tok2 := inviteToken(t, srvHome, "--name", "laptop-again", "--address", addr)
	for _, token := range []string{tok, tok2} {
		cli, srv := homeFiles(t, cliHome), homeFiles(t, srvHome)
		out, e, code := keytoolIn(t, cliHome, "join", token)
		if code != 1 || out != "" {
			t.Fatalf("join again: exit %d, want 1; stdout %q\n%s", code, out, e)
		}
		if !strings.Contains(e, want) || !strings.HasSuffix(e, check) {
			t.Errorf("join again: stderr:\n%s\nwant:\n%s…\n…%s", e, want, check)
		}
		if strings.Contains(e, "may be authorized there already") || strings.Contains(e, "is not an enrollment answer") {
			t.Errorf("join again still guesses:\n%s", e)
		}
		sameFiles(t, cliHome, cli)
		sameFiles(t, srvHome, srv)
	}
	proxy.waitFor(t, `msg=accepted .*name=laptop`, 5*time.Second)

	// Without the pin (removed by hand), join cannot tell: it reports what
	// the server answered, as before.
	if _, e, code := keytoolIn(t, cliHome, "trust-host", "--remove", addr); code != 0 {
		t.Fatalf("trust-host --remove: %s", e)
	}
	_, e, code := keytoolIn(t, cliHome, "join", tok2)
	if code != 1 || strings.Contains(e, "already enrolled") || !strings.Contains(e, "answered 404 File not found for /.well-known/keytool/probe") ||
		!strings.Contains(e, "the secret was not sent") {
		t.Errorf("join without the pin: exit %d\n%s", code, e)
	}
}
