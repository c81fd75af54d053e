//go:build linux || solaris || aix || darwin || dragonfly || freebsd || netbsd || openbsd

package tlsbridge

import (
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// discardTypeahead discards what was typed on the terminal in before the
// question was shown, as OpenSSH's readpassphrase(3) does (it sets the
// terminal with TCSAFLUSH): a "yes" typed or pasted while the client was
// still connecting would otherwise answer a question about a key nobody
// had seen (docs/security.md, "Trust on first use"). An in that is not
// a terminal (a Prompt's In given by a program) is read as it is; a
// terminal whose input cannot be discarded is an error, and the question
// is not asked.
func discardTypeahead(in io.Reader) error {
	f, ok := in.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), getTermios)
		if err != nil {
			return // not a terminal
		}
		ferr = unix.IoctlSetTermios(int(fd), setTermiosFlush, t)
	}); err != nil {
		return nil
	}
	if ferr != nil {
		return fmt.Errorf("tlsbridge: discarding what was typed before the question: %w", ferr)
	}
	return nil
}
