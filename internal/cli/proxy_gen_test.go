package cli

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProxyGenRace: two keytool proxy --gen processes started at once on
// one new, empty home end with one key: exactly one of them says it
// generated it, both present it (the same fingerprint in their identity
// lines, the one keytool show reads from the home), and the home holds one
// private key. Then both stop on SIGTERM.
//
// seed 003: "Every instance of Docker will have its own public key which
// it either generates and saves on first run or loads from a file on
// subsequent runs"; seed 000: "Both the client and the server will
// generate a keypair the first time they're launched".
func TestProxyGenRace(t *testing.T) {
	fastExit(t)
	home := filepath.Join(t.TempDir(), "new", "home")
	args := []string{"-H", home, "proxy", "--gen", "--type", "ec384", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1"}
	a, b := pxStart(t, "keytool", args...), pxStart(t, "keytool", args...)
	var fps []string
	generated := 0
	for _, p := range []*pxProc{a, b} {
		p.waitFor(t, `msg=listening addr=127\.0\.0\.1:\d+`, 15*time.Second)
		fps = append(fps, p.waitFor(t, `msg=identity fingerprint=(\S+)`, time.Second)[1])
		generated += strings.Count(p.stderr.String(), `msg="generated a new identity"`)
	}
	if fps[0] != fps[1] {
		t.Fatalf("the two proxies present different keys: %s and %s", fps[0], fps[1])
	}
	if generated != 1 {
		t.Fatalf("%d proxies say they generated the identity, want 1", generated)
	}
	gen := a.stderr.String() + b.stderr.String()
	if !strings.Contains(gen, "file="+filepath.Join(home, "key.json")+" type=ec384 fingerprint="+fps[0]) {
		t.Errorf("the generated line lacks the file, type and fingerprint:\n%s", gen)
	}
	if got := pxFingerprint(t, home); got != fps[0] {
		t.Errorf("the home's identity is %s, the proxies present %s", got, fps[0])
	}
	entries, err := os.ReadDir(home)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != ".keytool.lock" { // the lock of the identity's writers, made by the first
			names = append(names, e.Name())
		}
	}
	if strings.Join(names, " ") != "key.json pub_key.json" {
		t.Errorf("the home holds %v, want key.json and pub_key.json", names)
	}
	fi, err := os.Stat(filepath.Join(home, "key.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key.json: %v, %v; want mode 0600", fi, err)
	}
	for _, p := range []*pxProc{a, b} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Errorf("proxy exited %d after SIGTERM", code)
		}
	}
}

// TestProxyWithoutGen: without --gen, a home without an identity stops the
// proxy with the usual error, and nothing is created; with --gen an
// existing identity is used as it is.
func TestProxyWithoutGen(t *testing.T) {
	fastExit(t)
	home := filepath.Join(t.TempDir(), "home")
	_, e, code := keytoolIn(t, home, "proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1")
	if code != 1 || !strings.Contains(e, "no identity in "+home) {
		t.Fatalf("proxy without an identity: exit %d\n%s", code, e)
	}
	if _, err := os.Stat(home); !os.IsNotExist(err) {
		t.Errorf("the home was created without --gen: %v", err)
	}

	home = joinHome(t)
	before := homeFiles(t, home)
	p, _ := pxProxy(t, home, "--gen", "--target", "127.0.0.1:1")
	if fp := p.waitFor(t, `msg=identity fingerprint=(\S+)`, time.Second)[1]; fp != homeKey(t, home).Fingerprint() {
		t.Errorf("--gen with an identity presents %s, want the home's %s", fp, homeKey(t, home).Fingerprint())
	}
	if strings.Contains(p.stderr.String(), "generated") {
		t.Errorf("--gen generated a key in a home that has one:\n%s", p.stderr.String())
	}
	sameFiles(t, home, before)
}
