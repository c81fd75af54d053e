// Package dnsname holds the one rule by which keytool compares host and
// domain names: as DNS does (RFC 4343) and OpenSSH does, ASCII letters
// without case and every other byte as it is. strings.ToLower and
// strings.EqualFold fold Unicode too, so that "ſ" (U+017F) or the Kelvin
// sign (U+212A) would stand for "s" or "k", and a name no one pinned or
// published would be taken for one that was. knownhosts normalises the
// names of pins and targets with Lower; dane matches answer owners with
// Equal.
package dnsname

// Lower returns s with its ASCII upper-case letters lowered, and nothing
// else changed. It allocates only when s has one.
func Lower(s string) string {
	i := 0
	for i < len(s) && !isUpper(s[i]) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		b[i] = lower(b[i])
	}
	return string(b)
}

// Valid reports whether name can be a host's DNS name: labels of ASCII
// letters, digits, '-' and '_' (service labels, names in the wild), of 1
// to 63 bytes, joined by dots, one trailing dot allowed, 253 bytes at
// most. It refuses what a typing slip puts in a name — a port, a URL, a
// blank — for names written into certificates and DNS records, where a
// client could never match them.
func Valid(name string) bool {
	n := len(name)
	if n > 0 && name[n-1] == '.' {
		n--
	}
	if n == 0 || n > 253 {
		return false
	}
	label := 0
	for i := 0; i < n; i++ {
		switch c := name[i]; {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case 'a' <= lower(c) && lower(c) <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			if label++; label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}

// Equal reports whether a and b are the same name under Lower.
func Equal(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

func lower(c byte) byte {
	if isUpper(c) {
		return c + 'a' - 'A'
	}
	return c
}
