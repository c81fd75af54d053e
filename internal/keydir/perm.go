package keydir

// shellQuote quotes s for a POSIX shell when it holds anything but the
// characters that never need quoting, so that a message's command can be
// pasted as is.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '/' || r == '.' || r == '_' || r == '-' || r == '+' || r == ':' || r == '@' || r == '%' || r == ',' || r == '=') {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, `'\''`...)
		} else {
			out = append(out, s[i])
		}
	}
	return string(append(out, '\''))
}

// ShellQuote is shellQuote for the stores' messages.
func ShellQuote(s string) string { return shellQuote(s) }
