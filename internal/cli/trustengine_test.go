package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// A FIFO where authorize looks for the name's file used to hang
// `keytool authorize --name NAME` forever (the loader was FIFO-safe, the
// command's own read was not): every read of a trust file now goes
// through the one bounded, non-blocking reader.
func TestAuthorizeNameHeldByFIFO(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	dir := filepath.Join(home, "authorized_keys.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keydirtest.Mkfifo(t, filepath.Join(dir, "alice.json"), 0o644)
	pub := filepath.Join(t.TempDir(), "alice-pub.json")
	writePublicKey(t, pub, nil)
	done := make(chan struct{})
	var (
		stderr string
		code   int
	)
	go func() {
		defer close(done)
		_, stderr, code = keytoolIn(t, home, "authorize", "--name", "alice", pub)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("keytool authorize --name alice hangs on a FIFO at authorized_keys.d/alice.json")
	}
	if code != 1 || !strings.Contains(stderr, "alice.json") {
		t.Errorf("exit %d, stderr %q: want exit 1 naming the file", code, stderr)
	}
}

// trust-host --remove takes every fingerprint form that authorize
// --remove takes, the RFC 7638 thumbprint included (three matchers used to
// behave three ways; now there is one, keydir.Find).
func TestTrustHostRemoveByThumbprint(t *testing.T) {
	home := newClientHome(t)
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "host.json")
	if err := jwk.WritePublicKeyFile(file, k.PublicKey(), jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	for _, fp := range []string{k.Thumbprint(), k.KeyID(), k.Fingerprint()} {
		if _, e, code := keytoolIn(t, home, "trust-host", "db.example:5432", "--key", file); code != 0 {
			t.Fatalf("trust-host --key: %s", e)
		}
		o, e, code := keytoolIn(t, home, "trust-host", "--remove", fp)
		if code != 0 || !strings.Contains(o, "Removed "+k.Fingerprint()) {
			t.Fatalf("trust-host --remove %s: exit %d\n%s%s", fp, code, o, e)
		}
		if pinnedKey(t, home, "db.example:5432") != nil {
			t.Fatalf("trust-host --remove %s left the pin", fp)
		}
	}
}

// A pin file skipped for its modes does not turn the pinned host back
// into an unknown one: with --strict-host-keys accept-new, another key at
// the address used to be accepted and pinned into the very directory that
// was refused (and, once the mode was fixed, both keys were pinned).
func TestSkippedPinIsNoUnknownHost(t *testing.T) {
	addr, serverKey := keytoolServer(t)
	home := newClientHome(t)
	// The pin for addr holds another key; the file is then made writable
	// by group, so the store skips it.
	other, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "other.json")
	if err := jwk.WritePublicKeyFile(file, other.PublicKey(), jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if _, e, code := keytoolIn(t, home, "trust-host", addr, "--key", file); code != 0 {
		t.Fatalf("trust-host --key: %s", e)
	}
	pin := pinFile(home, addr)
	if err := os.Chmod(pin, 0o664); err != nil {
		t.Fatal(err)
	}
	before := filesUnder(t, home)
	for _, policy := range []string{"accept-new", "ask", "yes"} {
		_, e, code := keytoolIn(t, home, "--strict-host-keys", policy, "connect", addr)
		if code != 1 || !strings.Contains(e, "trusted-hosts files were skipped") || !strings.Contains(e, pin) || !strings.Contains(e, "chmod go-w "+pin) {
			t.Errorf("connect under %s: exit %d, stderr:\n%s\nwant a refusal naming the skipped %s and its fix", policy, code, e, pin)
		}
		if strings.Contains(e, "authenticity") {
			t.Errorf("connect under %s asked about the host", policy)
		}
	}
	if after := filesUnder(t, home); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("files changed while the pin was skipped:\nbefore %v\nafter  %v", before, after)
	}
	// Fixed: the server's key is a changed key, not a new one.
	if err := os.Chmod(pin, 0o644); err != nil {
		t.Fatal(err)
	}
	_, e, code := keytoolIn(t, home, "--strict-host-keys", "accept-new", "connect", addr)
	if code != 1 || !strings.Contains(e, "has changed") || !strings.Contains(e, serverKey.Fingerprint()) {
		t.Errorf("connect after the fix: exit %d\n%s\nwant the changed-key refusal", code, e)
	}
}
