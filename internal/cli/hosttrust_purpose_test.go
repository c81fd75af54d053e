package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestConnectVerboseSaysPinnedOnlyForThePurpose: connect -v --purpose
// says "pinned" only where a pin for that purpose (or for every purpose)
// admitted the key. A key pinned for another purpose only is not pinned
// for this connection (it was accepted by --insecure here): -v said
// "pinned", and keytool proxy --client logged trust=pinned, since the
// words were decided with every pin (found by review, 2026-12-05).
func TestConnectVerboseSaysPinnedOnlyForThePurpose(t *testing.T) {
	client, server := pxGen(t), pxGen(t)
	pxMust(t, "", "keytool", "-H", server, "authorize", "--name", "c", filepath.Join(client, "pub_key.json"))
	_, addr := pxProxy(t, server, "--target", echoServer(t))
	pxMust(t, "", "keytool", "-H", client, "trust-host", addr, "--key", filepath.Join(server, "pub_key.json"), "--purpose", "web")
	fp := pxFingerprint(t, server)

	o, e, code := pxRun(t, "hello\n", "keytool", "-H", client, "--insecure", "connect", "-v", "--purpose", "ldap", addr)
	if code != 0 || o != "hello\n" {
		t.Fatalf("connect --insecure --purpose ldap: exit %d\nstdout:\n%s\nstderr:\n%s", code, o, e)
	}
	if want := fp + ", NOT verified (insecure)"; !strings.Contains(e, want) {
		t.Errorf("-v for a key pinned for another purpose only: does not say %q:\n%s", want, e)
	}
	o, e, code = pxRun(t, "hello\n", "keytool", "-H", client, "connect", "-v", "--purpose", "web", addr)
	if code != 0 || o != "hello\n" || !strings.Contains(e, fp+", pinned") {
		t.Errorf("connect --purpose web: exit %d, want %q\nstdout:\n%s\nstderr:\n%s", code, fp+", pinned", o, e)
	}
}
