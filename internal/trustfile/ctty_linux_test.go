//go:build linux

package trustfile

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A terminal put where a trust file should be is refused as any device
// is, and does not become the reader's controlling terminal: a daemon is
// a session leader without one (systemd starts every service so), and
// open(2) without O_NOCTTY would give it the terminal — whose hangup, or
// a ^C typed on it, would then signal the daemon. The reader here is a
// child of the test in a session of its own; it reports whether /dev/tty
// opens after the read (it does only with a controlling terminal).
func TestReadTakesNoControllingTerminal(t *testing.T) {
	if pts := os.Getenv("TRUSTFILE_TEST_TTY"); pts != "" {
		if _, _, err := Read(pts); !errors.Is(err, ErrNotRegular) {
			fmt.Printf("reading the terminal %s: %v, want ErrNotRegular\n", pts, err)
			os.Exit(2)
		}
		if f, err := os.Open("/dev/tty"); err == nil {
			f.Close()
			fmt.Printf("reading the terminal %s made it the controlling terminal\n", pts)
			os.Exit(3)
		}
		os.Exit(0)
	}
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer ptmx.Close()
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("cannot unlock a pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("no pseudo-terminal number: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReadTakesNoControllingTerminal$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("TRUSTFILE_TEST_TTY=/dev/pts/%d", n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%v: %s", err, out)
	}
}
