//go:build !(linux || solaris || aix || darwin || dragonfly || freebsd || netbsd || openbsd)

package tlsbridge

import "io"

// discardTypeahead does nothing where keytool knows no way to discard a
// terminal's pending input. Windows has no /dev/tty, so the question is
// not asked there unless a program gives the Terminal its In.
func discardTypeahead(io.Reader) error { return nil }
