package enroll

import "bytes"

// lineState is how far the bytes a client sent first go as an HTTP/1
// request line.
type lineState int

const (
	linePartial  lineState = iota // the beginning of a request line, or nothing yet
	lineComplete                  // a whole request line
	lineInvalid                   // not a request line, whatever follows
)

// requestLine says whether b begins with an HTTP/1 request line as
// net/http reads one — a method (a token), a space, a target without
// spaces or control characters, a space, "HTTP/" digit "." digit, and
// "\r\n" or "\n" — or with the beginning of one, or with neither. A
// well-formed request is never taken for anything else, so that HTTP
// clients get the HTTP server's answers as before.
func requestLine(b []byte) lineState {
	method, rest, ok := bytes.Cut(b, []byte(" "))
	if (ok && len(method) == 0) || bytes.IndexFunc(method, func(r rune) bool { return !isTokenByte(r) }) >= 0 {
		return lineInvalid
	}
	if !ok {
		return linePartial
	}
	target, rest, ok := bytes.Cut(rest, []byte(" "))
	if (ok && len(target) == 0) || bytes.ContainsFunc(target, isControl) {
		return lineInvalid
	}
	if !ok {
		return linePartial
	}
	return versionLine(rest)
}

// versionLine is requestLine for what follows the target's space.
func versionLine(b []byte) lineState {
	const pattern = "HTTP/9.9\r\n" // 9: any digit
	for i, c := range b {
		switch {
		case i == len("HTTP/9.9") && c == '\n':
			return lineComplete
		case pattern[i] == '9' && '0' <= c && c <= '9', pattern[i] == c:
			if i == len(pattern)-1 {
				return lineComplete
			}
		default:
			return lineInvalid
		}
	}
	return linePartial
}

// isTokenByte: r may be in a token (RFC 9110, section 5.6.2), such as an
// HTTP method. bytes.IndexFunc decodes UTF-8: a byte above 0x7f is a rune
// that is not ASCII, or utf8.RuneError, and neither is a token's.
func isTokenByte(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return r < 0x80 && bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), byte(r)) >= 0
}

// isControl: r is an ASCII control character, which net/http refuses in
// a request's target.
func isControl(r rune) bool { return r < ' ' || r == 0x7f }
