package main

import (
	"crypto/tls"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// keytoolServer runs a keytool TLS server (no client authorized) on
// 127.0.0.1 and returns its address and key.
func keytoolServer(t *testing.T) (string, *jwk.Key) {
	t.Helper()
	home := t.TempDir()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tlsbridge.NewIdentity(k, tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clients, err := authkeys.Load(authkeys.HomeOptions(home))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String(), k
}

// keytoolIn runs keytool with the home, without a controlling terminal.
func keytoolIn(t *testing.T, home string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return pxRun(t, "", "keytool", append([]string{"-H", home}, args...)...)
}

func newClientHome(t *testing.T) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "client")
	if _, e, code := keytoolIn(t, home, "gen"); code != 0 {
		t.Fatalf("gen: %s", e)
	}
	return home
}

func pinFile(home, addr string) string {
	return filepath.Join(home, "trusted_hosts.d", strings.ReplaceAll(addr, ":", "_")+".json")
}

func pinnedKey(t *testing.T, home, addr string) *jwk.Key {
	t.Helper()
	keys, err := jwk.ReadFile(pinFile(home, addr))
	if err != nil {
		return nil
	}
	return keys[0]
}

func TestTrustHostFingerprint(t *testing.T) {
	addr, key := keytoolServer(t)
	sum := key.SPKIHash()
	for _, form := range []string{key.Fingerprint(), key.KeyID(), "sha256//" + strings.TrimPrefix(key.Fingerprint(), "SHA256:") + "=", strings.ToUpper(hexOf(sum[:]))} {
		home := newClientHome(t)
		out, e, code := keytoolIn(t, home, "trust-host", addr, "--fingerprint", form)
		if code != 0 || !strings.Contains(out, "Pinned "+key.Fingerprint()+" for "+addr) {
			t.Fatalf("--fingerprint %s: exit %d\n%s%s", form, code, out, e)
		}
		// The server does not authorize this client; pinning works all the same.
		if k := pinnedKey(t, home, addr); k == nil || !k.Equal(key) {
			t.Fatalf("--fingerprint %s: pin file does not hold the server's key", form)
		}
	}

	t.Run("mismatch", func(t *testing.T) {
		home := newClientHome(t)
		other, _ := jwk.Generate(jwk.EC256)
		_, e, code := keytoolIn(t, home, "trust-host", addr, "--fingerprint", other.Fingerprint())
		if code != 1 || !strings.Contains(e, "the key of "+addr+" is "+key.Fingerprint()) || !strings.Contains(e, "nothing saved") {
			t.Fatalf("exit %d:\n%s", code, e)
		}
		if _, err := os.Stat(pinFile(home, addr)); !os.IsNotExist(err) {
			t.Error("a mismatched key was saved")
		}
	})
	t.Run("yes", func(t *testing.T) {
		home := newClientHome(t)
		out, e, code := keytoolIn(t, home, "trust-host", addr, "--yes")
		if code != 0 || !strings.Contains(e, "on first use") || pinnedKey(t, home, addr) == nil {
			t.Fatalf("exit %d:\n%s%s", code, out, e)
		}
	})
	t.Run("no terminal", func(t *testing.T) {
		home := newClientHome(t)
		_, e, code := keytoolIn(t, home, "trust-host", addr)
		if code != 1 || !strings.Contains(e, "keytool trust-host "+addr+" --fingerprint "+key.Fingerprint()) {
			t.Fatalf("exit %d:\n%s", code, e)
		}
	})
	t.Run("changed key", func(t *testing.T) {
		home := newClientHome(t)
		other, _ := jwk.Generate(jwk.EC256)
		otherFile := filepath.Join(t.TempDir(), "other.json")
		if err := jwk.WritePublicFile(otherFile, other, jwk.JWK, false); err != nil {
			t.Fatal(err)
		}
		if _, e, code := keytoolIn(t, home, "trust-host", addr, "--key", otherFile); code != 0 {
			t.Fatal(e)
		}
		before, _ := os.ReadFile(pinFile(home, addr))
		_, e, code := keytoolIn(t, home, "trust-host", addr, "--yes")
		if code != 1 || !strings.Contains(e, "has changed") || !strings.Contains(e, key.Fingerprint()) || !strings.Contains(e, other.Fingerprint()) {
			t.Fatalf("exit %d:\n%s", code, e)
		}
		if after, _ := os.ReadFile(pinFile(home, addr)); string(after) != string(before) {
			t.Error("the pin was overwritten")
		}
	})
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestTrustHostPromptInTerminal drives the interactive question through a
// real terminal: tmux runs keytool in a pane, the test reads the screen
// and types the answers.
func TestTrustHostPromptInTerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
	addr, key := keytoolServer(t)
	other, _ := jwk.Generate(jwk.EC256)
	for _, tc := range []struct {
		name    string
		answers []string
		pinned  bool
		screen  string
	}{
		{"yes", []string{"yes"}, true, "Pinned " + key.Fingerprint()},
		{"no", []string{"no"}, false, "EXIT=1"},
		{"typed fingerprint", []string{key.Fingerprint()}, true, "Pinned " + key.Fingerprint()},
		{"wrong fingerprint", []string{other.Fingerprint()}, false, "does not match"},
		{"nonsense, then yes", []string{"maybe", "yes"}, true, "Please type 'yes', 'no' or the fingerprint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := newClientHome(t)
			screen := runInTmux(t, []string{"keytool", "-H", home, "trust-host", addr}, "Are you sure you want to continue connecting (yes/no/[fingerprint])? ", tc.answers)
			for _, want := range []string{
				"The authenticity of host '" + addr + "' can't be established.",
				"ECDSA P-256 key fingerprint is " + key.Fingerprint() + ".",
				"Key ID: " + key.KeyID(),
				tc.screen,
			} {
				if !strings.Contains(screen, want) {
					t.Errorf("screen lacks %q:\n%s", want, screen)
				}
			}
			if got := pinnedKey(t, home, addr) != nil; got != tc.pinned {
				t.Errorf("pinned = %v, want %v\n%s", got, tc.pinned, screen)
			}
		})
	}
}

// runInTmux runs argv in a detached tmux session on a private socket,
// waits for prompt, types each answer followed by Enter, and returns the
// screen once the command has exited.
func runInTmux(t *testing.T, argv []string, prompt string, answers []string) string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "tmux.sock")
	tmux := func(args ...string) string {
		cmd := exec.Command("tmux", append([]string{"-S", sock}, args...)...)
		cmd.Env = append(os.Environ(), "TERM=xterm")
		out, err := cmd.CombinedOutput()
		if err != nil && args[0] != "kill-server" {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	var quoted []string
	for _, a := range argv {
		quoted = append(quoted, shellQuote(a))
	}
	tmux("new-session", "-d", "-x", "220", "-y", "50", strings.Join(quoted, " ")+"; echo EXIT=$?; sleep 60")
	t.Cleanup(func() { tmux("kill-server") })
	capture := func() string { return tmux("capture-pane", "-p", "-J") }
	waitFor := func(what string) string {
		deadline := time.Now().Add(15 * time.Second)
		for {
			s := capture()
			if strings.Contains(s, what) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("the screen never showed %q:\n%s", what, s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(strings.TrimSpace(prompt))
	for _, a := range answers {
		tmux("send-keys", "-l", a)
		tmux("send-keys", "Enter")
		time.Sleep(200 * time.Millisecond)
	}
	return waitFor("EXIT=")
}
