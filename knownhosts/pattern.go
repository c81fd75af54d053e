package knownhosts

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/keytool/keytool/internal/dnsname"
)

// pattern is one parsed element of a key's address list.
type pattern struct {
	neg  bool
	wild bool       // host holds * or ?
	ip   netip.Addr // an exact IP literal (valid), else the zero Addr
	host string     // lower-case name, or the glob for wild patterns
	port uint16     // 0: every port
}

// hostKey indexes exact patterns: an IP literal or a lower-case name, and a
// port (0: every port).
type hostKey struct {
	ip   netip.Addr
	name string
	port uint16
}

func (p pattern) key() hostKey { return hostKey{ip: p.ip, name: p.host, port: p.port} }

// String formats the pattern in its normal form: host, host:port,
// [v6]:port, a bare v6 address when there is no port.
func (p pattern) String() string {
	s := formatAddr(p.hostString(), p.port)
	if p.neg {
		return "!" + s
	}
	return s
}

func (p pattern) hostString() string {
	if p.ip.IsValid() {
		return p.ip.String()
	}
	return p.host
}

func formatAddr(host string, port uint16) string {
	if port == 0 {
		if strings.Count(host, ":") == 1 {
			// A wildcard like "a:*" would read back as host "a", every
			// port: keep the brackets it came in.
			return "[" + host + "]"
		}
		return host
	}
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(int(port))
	}
	return host + ":" + strconv.Itoa(int(port))
}

// ParsePattern checks an address pattern and returns its normal form: a
// host name (lower case, a final dot kept: see setHost), an IP literal
// (as netip prints it), with or without a port, "*" and "?" wildcards in
// the host, and a leading "!" for negation.
func ParsePattern(s string) (string, error) {
	p, err := parsePattern(s)
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

// parsePattern reads one address pattern:
//
//	host  host:port  1.2.3.4  1.2.3.4:port  ::1  [::1]  [::1]:port
//	*.example.com  10.0.0.?:22  [fe80::*]:443  !bad.example.com  host:*
func parsePattern(s string) (pattern, error) {
	var p pattern
	orig := s
	bad := func(err error) (pattern, error) {
		return pattern{}, fmt.Errorf("address pattern %q: %s", orig, err.Error())
	}
	if strings.HasPrefix(s, "!") {
		p.neg = true
		s = s[1:]
	}
	host, portStr, err := splitAddr(s)
	if err != nil {
		return bad(err)
	}
	if p.port, err = parsePatternPort(portStr); err != nil {
		return bad(err)
	}
	if err := p.setHost(host); err != nil {
		return bad(err)
	}
	return p, nil
}

// parsePatternPort reads a pattern's port. No port and "*" both mean
// every port (0), which is why port 0 itself cannot be written.
func parsePatternPort(s string) (uint16, error) {
	if s == "" || s == "*" {
		return 0, nil
	}
	port, err := strconv.ParseUint(s, 10, 16)
	if err != nil || port == 0 {
		return 0, errors.New("the port must be a number from 1 to 65535, or *")
	}
	return uint16(port), nil
}

// errLabelLength refuses an empty or over-long label in a host name.
var errLabelLength = errors.New("a host name's labels must hold 1 to 63 characters")

// setHost normalises host (lower case, one final dot kept) and stores it
// as a wildcard, an IP literal or a name. A name written with its final
// dot (rooted) and without (relative) are two names, as in OpenSSH's
// known_hosts: the system may resolve a relative name through its search
// list, so that the host dialled is another one (docs/design.md, "Rooted
// and relative names"). Wildcards are told apart first, because
// "10.0.0.?" is neither an address nor a valid name yet must be accepted.
func (p *pattern) setHost(host string) error {
	host = dnsname.Lower(host)
	name, rooted := strings.CutSuffix(host, ".")
	if name == "" {
		return errors.New("empty host")
	}
	if strings.HasSuffix(name, ".") { // "*.." would be the rooted wildcard "*." with an empty label
		return errLabelLength
	}
	if err := checkHostChars(name); err != nil {
		return err
	}
	if strings.ContainsAny(name, "*?") {
		p.wild = true
		p.host = host
		return nil
	}
	// "10.0.0.7." is a name to the resolver (glibc and Go look it up in
	// DNS), not the address: a dial of it may go anywhere.
	if ip, err := netip.ParseAddr(name); err == nil && !rooted {
		p.ip = ip.Unmap()
		return nil
	}
	if err := checkHostName(name); err != nil {
		return err
	}
	p.host = host
	return nil
}

// checkHostChars refuses any character that no host name, IP literal or
// wildcard can hold, so that the message names the character at fault
// instead of a vaguer parse error later.
func checkHostChars(host string) error {
	for _, c := range host { // by rune, so that the refusal names the character typed
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':' || c == '%' || c == '*' || c == '?') {
			return fmt.Errorf("the host may hold only letters, digits, '.', '-', '_', ':' (IPv6), '%%' (IPv6 zone) and the wildcards '*' and '?', not %q", c)
		}
	}
	return nil
}

// checkHostName checks a host that is neither a wildcard nor an IP
// literal: ':' and '%' then mean a mistyped IPv6 address, and each label
// must be one DNS can hold.
func checkHostName(host string) error {
	if strings.Contains(host, ":") {
		return errors.New("a host with ':' must be an IPv6 address")
	}
	if strings.Contains(host, "%") {
		return errors.New("'%' may appear only in an IPv6 zone")
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 {
			return errLabelLength
		}
	}
	return nil
}

// splitAddr separates host and port: "[v6]:port", "[v6]", "host:port",
// "host", or a bare IPv6 address (more than one colon, no brackets).
func splitAddr(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", errors.New("missing ']'")
		}
		host, rest := s[1:end], s[end+1:]
		switch {
		case rest == "":
			return host, "", nil
		case rest[0] == ':' && len(rest) > 1:
			return host, rest[1:], nil
		}
		return "", "", errors.New("after ']' only ':port' may follow")
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, "", nil
	case 1:
		i := strings.IndexByte(s, ':')
		if i == len(s)-1 {
			return "", "", errors.New("empty port")
		}
		return s[:i], s[i+1:], nil
	}
	return s, "", nil // a bare IPv6 address
}

// match reports whether p matches host (lower case, already normalised),
// whose IP form is ip (valid only for IP literals), on port.
func (p *pattern) match(ip netip.Addr, host string, port uint16) bool {
	if p.port != 0 && p.port != port {
		return false
	}
	pat := p.host
	if p.neg {
		// A negation excludes the name written either way: a pin that
		// says "not secret.example" means that host, and a wider
		// exclusion never admits more (docs/design.md, "Rooted and
		// relative names").
		pat, host = strings.TrimSuffix(pat, "."), strings.TrimSuffix(host, ".")
	}
	if !p.wild {
		if p.ip.IsValid() {
			return p.ip == ip
		}
		return pat == host
	}
	if ip.IsValid() {
		var buf [64]byte
		return glob(pat, string(ip.AppendTo(buf[:0])))
	}
	return glob(pat, host)
}

// glob matches name against a pattern of '*' (any run, also empty) and
// '?' (any one byte), without backtracking blow-up.
func glob(pat, name string) bool {
	px, nx := 0, 0
	nextPx, nextNx := 0, 0
	for px < len(pat) || nx < len(name) {
		if px < len(pat) {
			switch c := pat[px]; c {
			case '*':
				nextPx, nextNx = px, nx+1
				px++
				continue
			case '?':
				if nx < len(name) {
					px++
					nx++
					continue
				}
			default:
				if nx < len(name) && name[nx] == c {
					px++
					nx++
					continue
				}
			}
		}
		if 0 < nextNx && nextNx <= len(name) {
			px, nx = nextPx, nextNx
			continue
		}
		return false
	}
	return true
}

// parseTarget reads the address being checked: host or host:port, with the
// host normalised as patterns are. It does not allocate for lower-case
// input.
func parseTarget(addr string) (ip netip.Addr, host string, port uint16, err error) {
	h, portStr, err := splitAddr(addr)
	if err != nil {
		return ip, "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	if portStr != "" {
		n, perr := strconv.ParseUint(portStr, 10, 16)
		if perr != nil || n == 0 {
			return ip, "", 0, fmt.Errorf("address %q: bad port", addr)
		}
		port = uint16(n)
	}
	// The final dot stays: a rooted name is not the relative one
	// (setHost).
	h = dnsname.Lower(h)
	switch name := strings.TrimSuffix(h, "."); {
	case name == "":
		return ip, "", 0, fmt.Errorf("address %q: empty host", addr)
	case strings.HasSuffix(name, "."):
		return ip, "", 0, fmt.Errorf("address %q: empty label", addr)
	}
	if looksLikeIP(h) { // ParseAddr's error would allocate
		if a, perr := netip.ParseAddr(h); perr == nil {
			ip = a.Unmap()
		}
	}
	return ip, h, port, nil
}

// looksLikeIP reports whether s could be an IP literal: IPv4 ends in a
// digit (no top-level domain is numeric), IPv6 holds a colon.
func looksLikeIP(s string) bool {
	c := s[len(s)-1]
	return c >= '0' && c <= '9' || strings.IndexByte(s, ':') >= 0
}
