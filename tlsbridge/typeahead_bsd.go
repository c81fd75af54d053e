//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package tlsbridge

import "golang.org/x/sys/unix"

// The requests that read a terminal's settings and set them again once
// its output is written, discarding its pending input (tcsetattr(3)'s
// TCSAFLUSH).
const (
	getTermios      = unix.TIOCGETA
	setTermiosFlush = unix.TIOCSETAF
)
