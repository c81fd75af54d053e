package jwk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keytool/keytool/internal/termtext"
)

// Attributes are the members of a key beyond its key material, as raw JSON
// values: the ones keytool understands (kid, address or hosts, comment,
// expires, from) and any other, which are kept so that a rewrite loses
// nothing. In PEM they are the block's headers.
type Attributes map[string]json.RawMessage

// Well-known attribute names.
const (
	AttrKeyID   = "kid"
	AttrAddress = "address" // where a host key may be seen: string or list
	AttrHosts   = "hosts"   // libtrust's name for address
	AttrComment = "comment"
	AttrExpires = "expires" // RFC 3339
	AttrFrom    = "from"    // CIDR list: where a client key may connect from
	AttrName    = "name"    // the entry name given by `keytool authorize --name`
	// AttrAcceptRotation, true on an authorized client key: the server
	// authorizes the next key the client's certificate announces, under
	// the same name and attributes (docs/rotation.md).
	AttrAcceptRotation = "accept_rotation"
	// AttrNames, on an identity's private key: the DNS names and IP
	// addresses its self-signed certificate names. Not part of the public
	// half handed out (see PublicHalf).
	AttrNames = "names"
	// AttrPurpose, on a pinned host key: the purposes of the connections
	// it is pinned for (string or list; absent: every purpose).
	AttrPurpose = "purpose"
)

// listAttrs are the attributes whose PEM header form is a comma-separated
// list (libtrust writes hosts this way).
var listAttrs = map[string]bool{AttrAddress: true, AttrHosts: true, AttrFrom: true, AttrNames: true, AttrPurpose: true}

// Clone returns a copy of a (nil for nil).
func (a Attributes) Clone() Attributes {
	if a == nil {
		return nil
	}
	return maps.Clone(a)
}

// String returns the attribute name as a string, "" if it is absent, and an
// error if it is present but not a JSON string.
func (a Attributes) String(name string) (string, error) {
	raw, ok := a[name]
	if !ok {
		return "", nil
	}
	return stringValue(name, raw)
}

func stringValue(name string, raw []byte) (string, error) {
	if s, ok := plainString(raw); ok {
		return s, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", &AttrError{name, fmt.Errorf("want a string, got %s", termtext.Safe(string(raw)))}
	}
	return s, nil
}

// List returns a string-or-list attribute as a list; a string is split at
// commas (the PEM header form).
func (a Attributes) List(name string) ([]string, error) {
	raw, ok := a[name]
	if !ok {
		return nil, nil
	}
	return listValue(name, raw)
}

func listValue(name string, raw []byte) ([]string, error) {
	if list, ok := plainList(raw); ok {
		return list, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, &AttrError{name, fmt.Errorf("want a string or a list of strings, got %s", termtext.Safe(string(raw)))}
	}
	return splitList(s), nil
}

// plainList decodes a JSON list of plain strings (see plainString)
// without encoding/json, the common case of address and from lists.
func plainList(raw []byte) ([]string, bool) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, false
	}
	var out []string
	s := jsonScanner{data: raw}
	err := s.elements(0, func(_ int, v []byte) error {
		str, ok := plainString(v)
		if !ok {
			return errNotPlain
		}
		out = append(out, str)
		return nil
	})
	if err != nil || s.end() != nil {
		return nil, false
	}
	if out == nil {
		out = []string{}
	}
	return out, true
}

var errNotPlain = errors.New("not a plain string")

func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// SetString sets name to the JSON string s.
func (a Attributes) SetString(name, s string) {
	raw, _ := json.Marshal(s) // a string always marshals
	a[name] = raw
}

// SetList sets name to a JSON list of strings.
func (a Attributes) SetList(name string, list []string) {
	if list == nil {
		list = []string{}
	}
	raw, _ := json.Marshal(list) // a []string always marshals
	a[name] = raw
}

// Addresses returns the addresses a host key is bound to: the union of
// "address" and libtrust's "hosts".
func (a Attributes) Addresses() ([]string, error) {
	addr, err := a.List(AttrAddress)
	if err != nil {
		return nil, err
	}
	hosts, err := a.List(AttrHosts)
	if err != nil {
		return nil, err
	}
	return append(addr, hosts...), nil
}

// Comment returns the "comment" attribute.
func (a Attributes) Comment() string {
	s, _ := a.String(AttrComment)
	return s
}

// Expires returns the "expires" attribute (zero if absent).
func (a Attributes) Expires() (time.Time, error) {
	raw, ok := a[AttrExpires]
	if !ok {
		return time.Time{}, nil
	}
	return expiresValue(raw)
}

func expiresValue(raw []byte) (time.Time, error) {
	s, err := stringValue(AttrExpires, raw)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, &AttrError{AttrExpires, fmt.Errorf("%q is not an RFC 3339 time such as 2030-01-31T00:00:00Z", s)}
	}
	return t, nil
}

// From returns the "from" attribute: the networks a client key may connect
// from. A bare IP address is a one-address network. Nil (no member, or
// null) means anywhere; a member that names no network ("", []) is an
// empty, non-nil list: from no address.
func (a Attributes) From() ([]netip.Prefix, error) {
	raw, ok := a[AttrFrom]
	if !ok {
		return nil, nil
	}
	return fromValue(raw)
}

func fromValue(raw []byte) ([]netip.Prefix, error) {
	list, err := listValue(AttrFrom, raw)
	if err != nil || list == nil && string(bytes.TrimSpace(raw)) == "null" {
		return nil, err // null is no member, as authorize --list --json writes it
	}
	// A member that names no network ("", " , ", []) allows no address:
	// nil here would widen an empty list (a script's empty variable) to
	// every address.
	return ParsePrefixes(list)
}

// ParsePrefixes parses CIDR networks and bare IP addresses. A network
// with host bits set ("127.0.0.1/0") is refused, since keeping only its
// network part would widen it silently (127.0.0.1/0 is every address), and
// so is an IPv4-mapped IPv6 network ("::ffff:127.0.0.0/104"), which would
// never match: remote addresses are compared in their IPv4 form. A bare
// IPv4-mapped address is read as the IPv4 address it maps.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			if err := checkPrefix(s, p); err != nil {
				return nil, &AttrError{AttrFrom, err}
			}
			out = append(out, p)
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, &AttrError{AttrFrom, fmt.Errorf("%q is neither a CIDR network (10.0.0.0/8) nor an IP address", s)}
		}
		ip = ip.Unmap()
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}

// checkPrefix refuses the networks ParsePrefixes explains.
func checkPrefix(s string, p netip.Prefix) error {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		v4 := netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
		return &prefixError{fmt.Sprintf("%q is an IPv4-mapped IPv6 network, which never matches (addresses are compared in their IPv4 form): use the IPv4 form %s", s, v4)}
	}
	if p.Masked() != p {
		return &prefixError{fmt.Sprintf("%q has host bits set: did you mean %s, or %s/%d?", s, p.Masked(), p.Addr(), p.Addr().BitLen())}
	}
	return nil
}

// prefixError is a network that parses but that ParsePrefixes refuses.
type prefixError struct{ msg string }

func (e *prefixError) Error() string { return e.msg }

// AttrError reports an attribute whose value keytool cannot interpret.
type AttrError struct {
	Name string
	Err  error
}

func (e *AttrError) Error() string { return fmt.Sprintf("member %q: %v", e.Name, e.Err) }
func (e *AttrError) Unwrap() error { return e.Err }

// validate checks the attributes keytool interprets (see checkAttr), in a
// fixed order, so that the first error is always the same one. (Parsing
// JSON checks each member as it copies it, and so reports the first bad
// one in file order.)
func (a Attributes) validate() error {
	for _, name := range [...]string{AttrExpires, AttrFrom, AttrAddress, AttrHosts, AttrNames, AttrPurpose, AttrComment, AttrKeyID} {
		if raw, ok := a[name]; ok {
			if err := checkAttr(name, raw); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkAttr checks one attribute's value if keytool interprets it, so that
// a typo in an expiry or a network is an error when the file is read
// rather than a surprise when a client connects. It runs on every
// attribute parsed, so the plain cases are checked without decoding.
func checkAttr(name string, raw []byte) error {
	var err error
	switch name {
	case AttrExpires:
		_, err = expiresValue(raw)
	case AttrFrom:
		_, err = fromValue(raw)
	case AttrAddress, AttrHosts, AttrNames, AttrPurpose:
		if !isPlainList(raw) {
			_, err = listValue(name, raw)
		}
	case AttrComment, AttrKeyID:
		if !isPlainString(raw) {
			_, err = stringValue(name, raw)
		}
	}
	return err
}

// isPlainList reports whether raw is a JSON list of plain strings.
func isPlainList(raw []byte) bool {
	if len(raw) == 0 || raw[0] != '[' {
		return false
	}
	s := jsonScanner{data: raw}
	err := s.elements(0, func(_ int, v []byte) error {
		if !isPlainString(v) {
			return errNotPlain
		}
		return nil
	})
	return err == nil && s.end() == nil
}

// pemHeaders renders the attributes as PEM headers: strings as they are,
// lists of strings joined by commas, other values as compact JSON.
func (a Attributes) pemHeaders() (map[string]string, error) {
	if len(a) == 0 {
		return nil, nil
	}
	if err := checkAttrNames(a); err != nil {
		return nil, fmt.Errorf("%w; write the key as JWK instead", err)
	}
	h := make(map[string]string, len(a))
	for _, name := range slices.Sorted(maps.Keys(a)) {
		if isMaterial(name) {
			continue // never written, as in a JWK: key material comes from the key alone
		}
		if pemHeadersIgnored[name] {
			// Written, it would say the block is encrypted, and no reader
			// (keytool included) would read the key back.
			return nil, fmt.Errorf("attribute %q cannot be written as a PEM header: PEM gives it a meaning of its own (encryption); write the key as JWK instead", name)
		}
		v, err := pemHeaderValue(name, a[name])
		if err == nil {
			err = checkPEMHeader(name, v)
		}
		if err != nil {
			return nil, fmt.Errorf("%w; write the key as JWK instead", err)
		}
		h[name] = v
	}
	return h, nil
}

// pemHeaderValue renders one attribute as a header's text: a string as it
// is, a list of strings joined by commas, anything else as compact JSON. A
// value that would read back as something else is refused: a list element
// holding a comma or spaces at either end (commas separate the elements,
// and the spaces are dropped), an empty list or null for a list attribute
// (from "" means anywhere in a JWK, but "from:" would read back as an
// empty list, which means nowhere).
func pemHeaderValue(name string, raw json.RawMessage) (string, error) {
	var list []string
	switch {
	case len(raw) > 0 && raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("attribute %q: %w", name, err)
		}
		if listAttrs[name] && len(splitList(s)) == 0 {
			return "", fmt.Errorf("attribute %q: an empty list cannot be a PEM header", name)
		}
		return s, nil
	case len(raw) > 0 && raw[0] == '[' && json.Unmarshal(raw, &list) == nil:
		if listAttrs[name] && len(list) == 0 {
			return "", fmt.Errorf("attribute %q: an empty list cannot be a PEM header", name)
		}
		for _, e := range list {
			if e == "" || strings.Contains(e, ",") || strings.TrimSpace(e) != e {
				return "", fmt.Errorf("attribute %q: list element %q cannot be written in a PEM header, where commas separate the elements and spaces around them are dropped", name, e)
			}
		}
		return strings.Join(list, ","), nil
	case listAttrs[name]:
		return "", fmt.Errorf("attribute %q: a PEM header holds a list of strings or a string, not %s", name, termtext.Safe(string(raw)))
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return "", fmt.Errorf("attribute %q: %w", name, err)
	}
	return buf.String(), nil
}

// checkPEMHeader applies, on reading and on writing alike, the rules that
// make a header read back as it was written (so PEM -> PEM is exact):
//   - a name that is not empty, without a colon, control characters or
//     spaces at either end (a PEM reader trims them: " kid" would come
//     back as kid, a key ID keytool checks, out of a label it kept; found
//     by FuzzParse), and not a name JWK gives a meaning of its own;
//   - a value without control characters or newlines, spaces at either
//     end, or U+FFFD (what JSON makes of a lone surrogate, which would
//     then no longer be the value);
//   - neither holding "-----", which a PEM reader takes for the start of
//     the next block.
func checkPEMHeader(name, v string) error {
	switch {
	case name == "" || strings.ContainsAny(name, ":") || hasControl(name) || strings.TrimSpace(name) != name || strings.Contains(name, "-----"):
		return fmt.Errorf("attribute name %q cannot be a PEM header", name)
	case hasControl(v):
		return fmt.Errorf("attribute %q: a PEM header cannot hold control characters or newlines", name)
	case strings.TrimSpace(v) != v:
		return fmt.Errorf("attribute %q: a PEM header drops spaces at either end of its value", name)
	case strings.ContainsRune(v, utf8.RuneError):
		return fmt.Errorf("attribute %q: the value holds U+FFFD, which a PEM header cannot tell from an invalid character", name)
	case strings.Contains(v, "-----"):
		return fmt.Errorf(`attribute %q: a PEM header cannot hold "-----", which starts a PEM block`, name)
	}
	return pemHeaderName(name)
}

// pemHeaderName refuses, as a PEM header, a name that JWK gives a meaning
// of its own beyond a string: key material ("x", "d"…), which a JWK would
// not hold as an attribute, and the JOSE parameters that are lists or
// checked encodings (key_ops, x5c, x5u, x5t, x5t#S256), which a header's
// text would not read back as. "use" and "alg" are plain strings and may
// be headers. Nor may a header be a case variant of one of these names or
// of keytool's attributes ("From", "KID"), which Go's encoding/json would
// read as that name once the attributes are written as a JWK (names.go).
func pemHeaderName(name string) error {
	kind := classify([]byte(name))
	switch {
	case kind == material:
		return fmt.Errorf("PEM header %q is a JWK key member, not an attribute", name)
	case kind == joseAttribute && name != "use" && name != "alg":
		return fmt.Errorf("PEM header %q is a JOSE parameter that a header cannot carry", name)
	}
	if known, ok := caseVariant([]byte(name)); ok {
		return fmt.Errorf("PEM header %q: %w", name, caseVariantError(known))
	}
	return nil
}

// attrsFromPEMHeaders is the inverse of pemHeaders: list attributes become
// JSON lists, everything else a JSON string.
func attrsFromPEMHeaders(h map[string]string) Attributes {
	if len(h) == 0 {
		return nil
	}
	a := make(Attributes, len(h))
	for name, v := range h {
		if listAttrs[name] {
			a.SetList(name, splitList(v))
		} else {
			a.SetString(name, v)
		}
	}
	return a
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}
