package cli

import (
	"io"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// gatedRelay listens on 127.0.0.1 and relays each connection to target,
// but only once release is closed: until then the client waits in its
// handshake. accepted is closed when the first connection arrives.
func gatedRelay(t *testing.T, target string) (addr string, accepted <-chan struct{}, release chan<- struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	acc, rel := make(chan struct{}), make(chan struct{})
	go func() {
		first := true
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if first {
				close(acc)
				first = false
			}
			go func() {
				defer c.Close()
				<-rel
				s, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer s.Close()
				go func() { _, _ = io.Copy(s, c) }()
				_, _ = io.Copy(c, s)
			}()
		}
	}()
	return ln.Addr().String(), acc, rel
}

// TestPromptDiscardsTypeahead: what is typed (or pasted) on the terminal
// before the first-use question has shown the fingerprint is not an
// answer to it. A "yes" typed while keytool was still connecting — a
// pasted block of commands whose next line is "yes", or a habit — would
// otherwise pin a key nobody saw. The question discards the terminal's
// pending input before it reads, as OpenSSH's does (readpassphrase(3)
// sets the terminal with TCSAFLUSH); found by review. trust-host and
// connect ask through the same question.
func TestPromptDiscardsTypeahead(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
	server, key := keytoolServer(t)
	for _, tc := range []struct {
		name, prompt string
		args         []string
	}{
		{"trust-host", "(yes/no/[fingerprint])? ", []string{"trust-host"}},
		{"connect", "(yes/no/once/[fingerprint])? ", []string{"connect"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, accepted, release := gatedRelay(t, server)
			home := newClientHome(t)
			tmux := pxTmux(t)
			tmux("new-session", "-d", "-x", "220", "-y", "50",
				strings.Join([]string{"keytool", "-H", shellQuote(home), tc.args[0], addr}, " ")+"; echo EXIT=$?; sleep 60")
			screen := func() string { return tmux("capture-pane", "-p", "-J") }
			<-accepted // keytool is in its handshake, the question not yet asked
			tmux("send-keys", "-l", "yes")
			tmux("send-keys", "Enter")
			waitScreen(t, screen, "yes") // the terminal echoed it: it is pending input
			close(release)
			waitScreen(t, screen, tc.prompt)
			if got := screen(); strings.Contains(got, "EXIT=") || strings.Contains(got, "Pinned") {
				t.Fatalf("the typed-ahead yes answered the question:\n%s", got)
			}
			tmux("send-keys", "-l", "no")
			tmux("send-keys", "Enter")
			got := waitScreen(t, screen, "EXIT=")
			if !strings.Contains(got, tc.prompt+"no\n") || !strings.Contains(got, "Host key verification failed.\nEXIT=1") {
				t.Errorf("the question was not answered by the no typed after it:\n%s", got)
			}
			if pinnedKey(t, home, addr) != nil {
				t.Errorf("the key %s was pinned by an answer typed before the question", key.Fingerprint())
			}
		})
	}
}

// waitScreen waits until the screen shows what, and returns it.
func waitScreen(t *testing.T, screen func() string, what string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s := screen()
		if strings.Contains(s, what) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the screen never showed %q:\n%s", what, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
