package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/tlsbridge"
)

// TestGenForceKeepsTheHomeLoadable: gen --force (or gen in a home whose
// key.* was removed by hand) makes an identity beside the next key that
// gen --next made for the one it replaces. The next key stays, and the new
// identity announces it; one weaker than the new identity (an ECDSA P-256
// next key, a new P-384 identity) is refused at load (CheckNextKey), so
// the home would not load: a running proxy refuses the reload and goes on
// presenting the replaced key — the one a compromise had gen --force
// replace — and a restart fails. gen refuses it, writing nothing, and
// names the next key; a next key the new identity can announce stays, and
// gen says so, since it may have been taken with the identity it
// replaces. Before (found by review, 2026-12-05): exit 0, "Generated
// ECDSA P-384 key", and a home no command could load.
func TestGenForceKeepsTheHomeLoadable(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	keytoolOK(t, "-H", home, "gen")
	keytoolOK(t, "-H", home, "gen", "--next")
	keyFile := filepath.Join(home, "key.json")
	before, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}

	cmd := keytoolCmd("-H", home, "gen", "--force", "-t", "ec384")
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), filepath.Join(home, "key.next.json")) {
		t.Errorf("gen --force -t ec384 beside a P-256 next key: exit %d, want 1 naming the next key:\n%s", code, out)
	}
	if now, _ := os.ReadFile(keyFile); !bytes.Equal(now, before) {
		t.Errorf("the refused gen --force wrote %s", keyFile)
	}
	if _, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{}); err != nil {
		t.Errorf("the home no longer loads: %v", err)
	}

	// A key removed by hand, then gen: the same rule.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	cmd = keytoolCmd("-H", home, "gen", "-t", "ec384", "--force")
	out, _ = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("gen -t ec384 beside a P-256 next key, no identity: exit %d, want 1:\n%s", code, out)
	}
	if _, err := os.Lstat(keyFile); err == nil {
		t.Errorf("the refused gen wrote %s", keyFile)
	}

	// A next key the new identity can announce: it stays, and gen says so.
	// With no identity beside it, plain gen refuses to make one
	// (tlsbridge.NextKeyWithoutIdentityError, gen-next-only.txt): --force.
	stdout := keytoolOK(t, "-H", home, "gen", "-t", "ed25519", "--force")
	if !strings.Contains(stdout, "key.next.json") {
		t.Errorf("gen beside a next key did not say that it stays announced:\n%s", stdout)
	}
	if _, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{}); err != nil {
		t.Errorf("the home does not load: %v", err)
	}
}

// TestListShowsANextKeyTheIdentityCannotAnnounce: a home whose next key
// is weaker than its identity (made by hand, or by a gen --force before
// gen refused it) does not load — no server starts on it, a running one
// refuses every reload — though each of its keys reads: keytool list
// names it among the problems. Before (found by review, 2026-12-05): the
// overview read each key alone and said "Problems: none".
func TestListShowsANextKeyTheIdentityCannotAnnounce(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	keytoolOK(t, "-H", home, "gen")
	keytoolOK(t, "-H", home, "gen", "--next")
	next, aside := filepath.Join(home, "key.next.json"), filepath.Join(home, "next.aside")
	if err := os.Rename(next, aside); err != nil {
		t.Fatal(err)
	}
	keytoolOK(t, "-H", home, "gen", "--force", "-t", "ec384")
	if err := os.Rename(aside, next); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{}); err == nil {
		t.Fatal("the home loads: the test made no weaker next key")
	}
	cmd := keytoolCmd("-H", home, "list")
	out, _ := cmd.CombinedOutput()
	if strings.Contains(string(out), "Problems: none") || !strings.Contains(string(out), "weaker") {
		t.Errorf("list of a home whose next key is weaker than its identity (exit %d):\n%s", cmd.ProcessState.ExitCode(), out)
	}
}
