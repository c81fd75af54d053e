package tlsbridge

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/keytool/keytool/jwk"
)

// openPty returns the two ends of a new pseudo-terminal: master, where
// the test types as a user would, and the terminal the question reads.
func openPty(t *testing.T) (master, term *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("the pseudo-terminal's number: %v", err)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	return master, term
}

// inputQueued returns how many bytes term's input holds. Not through
// term.Fd, which would set the terminal blocking and its read deadline
// aside.
func inputQueued(term *os.File) (n int, err error) {
	rc, err := term.SyscallConn()
	if err != nil {
		return 0, err
	}
	if cerr := rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// typesOnPrompt is a terminal's screen with a user in front of it who
// types reply the moment the choices appear — before Write returns, the
// fastest a user (or a loaded machine's scheduler) can be.
type typesOnPrompt struct {
	master, term *os.File
	reply        string
	screen       bytes.Buffer
	typed        bool
}

func (w *typesOnPrompt) Write(p []byte) (int, error) {
	w.screen.Write(p)
	if !w.typed && strings.HasSuffix(w.screen.String(), "? ") {
		w.typed = true
		if err := typeOn(w.master, w.term, w.reply); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// typeOn types line on master and returns once term's input holds it: a
// pseudo-terminal passes what its master is written to the terminal's
// input a moment later, on another kernel thread.
func typeOn(master, term *os.File, line string) error {
	if _, err := master.WriteString(line); err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		n, err := inputQueued(term)
		if err != nil {
			return err
		}
		if n >= len(line) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the terminal's input holds %d bytes 5 s after %q was typed", n, line)
		}
	}
}

// A reply typed as soon as the question is on the screen answers it: the
// terminal's pending input is discarded before any of the question is
// written, not after (readpassphrase(3) flushes, then writes its
// prompt). Discarded after, a "yes" typed at once was lost and the
// question waited for another, with the user's answer gone — in the CLI's
// tmux test, a "no" sent when the prompt showed hung it on a loaded
// machine. What was typed before the question still answers nothing
// (TestPromptDiscardsTypeahead, internal/cli).
func TestTerminalReplyTypedAtOnceIsRead(t *testing.T) {
	k := mustGenerate(t, jwk.EC256).PublicKey()
	for _, tc := range []struct {
		name string
		ask  func(Terminal) (Answer, error)
	}{
		{"unknown host", func(term Terminal) (Answer, error) {
			return term.AskUnknownHost(UnknownHost{Addr: "db.example:443", Key: k})
		}},
		{"announced key", func(term Terminal) (Answer, error) {
			return term.AskAnnouncedKey(AnnouncedKey{Addr: "db.example:443", Current: mustGenerate(t, jwk.EC256).PublicKey(), Next: k})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			master, in := openPty(t)
			// Typed before the question: discarded, as before.
			if err := typeOn(master, in, "no\n"); err != nil {
				t.Fatal(err)
			}
			// A reply lost would leave the read waiting: the deadline ends
			// it, and the end of input is no.
			if err := in.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
				t.Fatal(err)
			}
			out := &typesOnPrompt{master: master, term: in, reply: "yes\n"}
			a, err := tc.ask(Terminal{In: in, Out: out})
			if err != nil {
				t.Fatal(err)
			}
			if a != Yes {
				t.Fatalf("answer %v, want yes (the yes typed at once after the question lost, or the no typed before it taken):\n%s", a, out.screen.String())
			}
		})
	}
}
