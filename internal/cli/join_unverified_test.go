package cli

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/testnet"
)

// TestJoinUnverifiedAddresses: a token lists, besides the address of the
// keytool proxy --enroll that made it, an address that is down and the
// address of another server (another home, another key — a host the
// inviter does not run). join enrolls through the proxy and pins its key
// for that address only; each of the others gets a "Not verified" line
// with the trust-host command spelled with this -H, and no pin file.
func TestJoinUnverifiedAddresses(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	srvHome, dbHome, cliHome := joinHome(t), joinHome(t), joinHome(t)
	_, addr := pxProxy(t, srvHome, "--enroll", "--target", target.Addr().String())
	_, db := pxProxy(t, dbHome, "--enroll", "--target", target.Addr().String())
	down := testnet.RefusedAddr(t)
	tok := inviteToken(t, srvHome, "--name", "laptop", "--address", down, "--address", addr, "--address", db)
	fp := pxFingerprint(t, srvHome)

	out, e, code := keytoolIn(t, cliHome, "join", tok)
	if code != 0 {
		t.Fatalf("join: exit %d\n%s%s", code, out, e)
	}
	for _, want := range []string{
		"Pinned ECDSA P-256 key " + fp + " for " + addr + " in " + pinFile(cliHome, addr),
		"Not verified: " + down + ", which the token also lists, did not show key " + fp,
		"connection refused",
		"then pin it with: keytool -H " + cliHome + " trust-host " + down + " --fingerprint " + fp + "\n",
		"Not verified: " + db + ", which the token also lists, did not show key " + fp,
		"(another key, " + pxFingerprint(t, dbHome) + ", answered there); not pinned.",
		"then pin it with: keytool -H " + cliHome + " trust-host " + db + " --fingerprint " + fp + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("join's output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "Pinned ") != 1 || strings.Count(out, "Not verified: ") != 2 {
		t.Errorf("want one pin and two unverified addresses:\n%s", out)
	}
	if k := pinnedKey(t, cliHome, addr); k == nil || k.Fingerprint() != fp {
		t.Errorf("%s is not pinned to %s", addr, fp)
	}
	for _, a := range []string{down, db} {
		if _, err := os.Stat(pinFile(cliHome, a)); !os.IsNotExist(err) {
			t.Errorf("a pin file exists for the unverified %s: %v", a, err)
		}
	}
	entries, _ := keyDirEntries(filepath.Dir(pinFile(cliHome, addr)))
	if len(entries) != 1 {
		t.Errorf("trusted_hosts.d holds %d files, want 1", len(entries))
	}
}
