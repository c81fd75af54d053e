package jwk

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keytool/keytool/internal/termtext"
)

// memberKind says what a JWK member is to keytool.
type memberKind uint8

const (
	attribute     memberKind = iota // kept by keytool alone
	material                        // key material, read by go-jose
	joseAttribute                   // an attribute go-jose reads and checks too
)

// classify says what a member is: key material (RFC 7518 section 6, RFC
// 8037), which public paths never write in its private forms; an attribute
// go-jose reads and checks as well (types, certificate chains against the
// key); or an attribute only keytool keeps. Parsing asks it of every
// member, and a switch on the bytes neither hashes nor allocates.
//
// "kid" is keytool's alone: go-jose would only copy it into a string, and
// keytool checks it more closely (a string; the key's own ID when it has
// libtrust's form).
func classify(name []byte) memberKind {
	switch string(name) {
	case "kty", "crv", "x", "y", "n", "e", "k", "pub", "d", "p", "q", "dp", "dq", "qi", "oth", "priv":
		return material
	case "use", "alg", "key_ops", "x5c", "x5u", "x5t", "x5t#S256":
		return joseAttribute
	}
	return attribute
}

// isMaterial reports whether the member name is key material.
func isMaterial(name string) bool { return classify([]byte(name)) == material }

// isLibtrustKeyID reports whether s is a key ID in libtrust form: 12 groups
// of 4 base32 characters joined by colons.
func isLibtrustKeyID(s string) bool {
	if len(s) != 59 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i%5 == 4 {
			if c != ':' {
				return false
			}
		} else if !('A' <= c && c <= 'Z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// parseJSON reads a JWK or a JWK Set.
func parseJSON(data []byte, file string) ([]*Key, error) {
	fail := func(member string, err error) error {
		return &ParseError{File: file, Line: jsonErrorLine(data, err), Member: member, Err: err}
	}
	if !utf8.Valid(data) {
		// JSON is UTF-8 (RFC 8259); a name with invalid bytes would be
		// written back as U+FFFD, another name.
		return nil, fail("", errors.New("invalid JSON: not valid UTF-8"))
	}
	var buf [16]member // most keys have fewer members: no allocation
	s := jsonScanner{data: data}
	ms, err := s.members(0, buf[:0])
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, fail(duplicateMember(err), err)
	}
	var kty, keysRaw []byte
	for _, m := range ms {
		switch string(m.name) {
		case "kty":
			kty = m.raw
		case "keys":
			keysRaw = m.raw
		}
	}
	switch {
	case kty != nil:
		k, member, err := keyFromMembers(data, ms)
		if err != nil {
			return nil, fail(member, err)
		}
		return []*Key{k}, nil
	case keysRaw != nil:
		var keys []*Key
		sub := jsonScanner{data: data, pos: cap(data) - cap(keysRaw)}
		err := sub.elements(0, func(i int, raw []byte) error {
			k, member, err := parseJWK(raw)
			if err != nil {
				path := "keys[" + strconv.Itoa(i) + "]"
				if member != "" {
					path += "." + member
				}
				start := cap(data) - cap(raw)
				off, _ := jsonErrorOffset(err)
				return &ParseError{File: file, Line: lineOf(data, start+off), Member: path, Err: err}
			}
			keys = append(keys, k)
			return nil
		})
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				return nil, pe
			}
			return nil, fail("keys", err)
		}
		if len(keys) == 0 {
			return nil, fail("keys", ErrNoKey)
		}
		return keys, nil
	default:
		return nil, fail("kty", errors.New(`a JWK needs a "kty" member, a JWK Set a "keys" member`))
	}
}

// parseJWK reads one JWK object. On error it returns the member at fault
// when it is known.
func parseJWK(raw []byte) (*Key, string, error) {
	var buf [16]member
	s := jsonScanner{data: raw}
	ms, err := s.members(0, buf[:0])
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, duplicateMember(err), err
	}
	return keyFromMembers(raw, ms)
}

// keyFromMembers makes a key of the JWK object raw, whose members are ms:
// go-jose reads the key material, the other members become attributes.
func keyFromMembers(raw []byte, ms []member) (*Key, string, error) {
	var (
		kty    []byte
		nattrs int
		kinds  [16]memberKind // the kind of ms[i], for the first 16 members
	)
	kindOf := func(i int) memberKind {
		if i < len(kinds) {
			return kinds[i]
		}
		return classify(ms[i].name)
	}
	for i, m := range ms {
		kind := classify(m.name)
		if i < len(kinds) {
			kinds[i] = kind
		}
		switch {
		case kind == attribute:
			if known, ok := attrCaseVariant(m.name); ok {
				return nil, string(m.name), caseVariantError(known)
			}
			nattrs++
		case string(m.name) == "kty":
			kty = m.raw
		case kind == material && string(m.name) != "crv" && !isBase64URLString(m.raw):
			return nil, string(m.name), errors.New("not a base64url string")
		}
		if kind == joseAttribute {
			nattrs++
		}
	}
	required, known := requiredMembers[string(kty)]
	switch {
	case kty == nil:
		return nil, "kty", errors.New("missing: every JWK needs a kty")
	case !known:
		return nil, "kty", fmt.Errorf("%w: kty %s (keytool reads EC, RSA and OKP Ed25519 keys)", ErrUnsupportedKey, termtext.Safe(string(kty)))
	}
	for _, name := range required {
		if !slices.ContainsFunc(ms, func(m member) bool { return string(m.name) == name }) {
			return nil, name, fmt.Errorf("missing (kty %s needs %s)", kty, strings.Join(required, ", "))
		}
	}

	// An RSA key larger than go-jose reads, keytool reads itself
	// (rsajwk.go).
	key, member, err := bigRSAKey(kty, ms)
	if err != nil {
		return nil, member, err
	}
	if key == nil {
		// go-jose gets the members it understands; the others it would
		// skip, after decoding them, at a cost that dominated parsing
		// entries with several attributes. Duplicates, and names that
		// differ only in case, were refused above, so the subset means to
		// go-jose (which matches names regardless of case) exactly what
		// the whole object means.
		joseRaw := raw
		if nattrs > 0 {
			joseRaw = make([]byte, 0, len(raw))
			joseRaw = append(joseRaw, '{')
			for i, m := range ms {
				if kindOf(i) != attribute {
					if len(joseRaw) > 1 {
						joseRaw = append(joseRaw, ',')
					}
					joseRaw = append(joseRaw, '"')
					joseRaw = append(joseRaw, m.name...) // a name from the tables: plain ASCII
					joseRaw = append(joseRaw, '"', ':')
					joseRaw = append(joseRaw, m.raw...)
				}
			}
			joseRaw = append(joseRaw, '}')
		}
		var jk jose.JSONWebKey
		if err := jk.UnmarshalJSON(joseRaw); err != nil {
			return nil, joseMember(err), joseError(joseRaw, err)
		}
		key = jk.Key
	}
	var k *Key
	switch key := key.(type) {
	case *ecdsa.PublicKey:
		k, err = newPublicKey(key, false) // go-jose checked that the point is on the curve
	case *rsa.PublicKey, ed25519.PublicKey:
		k, err = NewPublicKey(key)
	case *ecdsa.PrivateKey:
		if err = checkECPrivate(key); err == nil {
			k, err = NewPrivateKey(key)
		}
	case *rsa.PrivateKey:
		k, err = NewPrivateKey(key)
	case ed25519.PrivateKey:
		k, err = NewPrivateKey(key)
	default:
		err = fmt.Errorf("%w: %T", ErrUnsupportedKey, key)
	}
	if err != nil {
		return nil, "", err
	}
	if nattrs > 0 {
		// The attribute values share one copy of the object: one
		// allocation rather than one per value.
		copied := bytes.Clone(raw)
		k.Attrs = make(Attributes, nattrs)
		for i, m := range ms {
			if kindOf(i) != material {
				name := string(m.name)
				off := cap(raw) - cap(m.raw)
				v := copied[off : off+len(m.raw) : off+len(m.raw)]
				if err := checkAttr(name, v); err != nil {
					member, err := attrMember(err)
					return nil, member, err
				}
				k.Attrs[name] = v
			}
		}
	}
	if member, err := checkKeyID(k); err != nil {
		return nil, member, err
	}
	return k, "", nil
}

// checkAttrs validates the attributes keytool interprets, including a kid
// in libtrust form, which must name the key it is attached to.
func checkAttrs(k *Key) (member string, err error) {
	if err := k.Attrs.validate(); err != nil {
		return attrMember(err)
	}
	return checkKeyID(k)
}

// attrMember splits an *AttrError into the member it names and the reason.
func attrMember(err error) (string, error) {
	var ae *AttrError
	if errors.As(err, &ae) {
		return ae.Name, ae.Err
	}
	return "", err
}

// checkKeyID refuses a kid in libtrust form that is not the key's own ID.
func checkKeyID(k *Key) (member string, err error) {
	if raw, ok := k.Attrs[AttrKeyID]; ok && len(raw) == 61 && isPlainString(raw) {
		// The common case, compared without allocating: a kid of libtrust
		// form must be the key's own ID.
		var id [59]byte
		appendKeyID(id[:0], k.sum)
		if kid := raw[1:60]; isLibtrustKeyID(string(kid)) && string(kid) != string(id[:]) {
			return AttrKeyID, &KeyIDMismatchError{Stated: string(kid), Computed: string(id[:])}
		}
	} else if kid, _ := k.Attrs.String(AttrKeyID); isLibtrustKeyID(kid) && kid != k.KeyID() {
		return AttrKeyID, &KeyIDMismatchError{Stated: kid, Computed: k.KeyID()}
	}
	return "", nil
}

// checkECPrivate makes sure the public point in the JWK is the one the
// private scalar yields, so that a file cannot pair one key's identity with
// another key's secret.
func checkECPrivate(k *ecdsa.PrivateKey) error {
	ek, err := k.ECDH()
	if err != nil {
		return fmt.Errorf("invalid EC private key: %v", err)
	}
	pub, err := k.PublicKey.ECDH()
	if err != nil || !ek.PublicKey().Equal(pub) {
		return errors.New(`invalid EC private key: "x" and "y" are not the public key of "d"`)
	}
	return nil
}

// joseError turns go-jose's messages into keytool's: without the library
// prefix, and with the unsupported kty named.
func joseError(raw []byte, err error) error {
	if errors.Is(err, jose.ErrUnsupportedKeyType) {
		var head struct {
			Kty string `json:"kty"`
			Crv string `json:"crv"`
		}
		_ = json.Unmarshal(raw, &head)
		return fmt.Errorf("%w: kty %q with crv %q (keytool reads EC P-256/P-384/P-521, RSA and OKP Ed25519)", ErrUnsupportedKey, head.Kty, head.Crv)
	}
	msg := strings.TrimPrefix(err.Error(), "go-jose/go-jose: ")
	return errors.New(msg)
}

// memberError is a scanner callback's way to name the member at fault.
type memberError struct {
	member string
	err    error
}

func (e *memberError) Error() string { return e.err.Error() }

// requiredMembers are the public members each kty needs; checking them here
// lets the error name the member, which go-jose's messages do not always do.
var requiredMembers = map[string][]string{
	`"EC"`:  {"crv", "x", "y"},
	`"RSA"`: {"n", "e"},
	`"OKP"`: {"crv", "x"},
}

// isBase64URLString reports whether raw is a JSON string of base64url
// characters of a length that can be decoded (padding tolerated, as go-jose
// does).
func isBase64URLString(raw []byte) bool {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return false
	}
	b := bytes.TrimRight(raw[1:len(raw)-1], "=")
	for _, c := range b {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return len(b)%4 != 1
}

// joseMessageMember finds the member named in go-jose's messages such as
// "wrong length for x" or "missing d value(s)".
var joseMessageMember = regexp.MustCompile(`(?i)(?:wrong length for|missing|bad) (x5c|kty|crv|dp|dq|qi|x|y|n|e|d|p|q)\b`)

// joseMember returns the member a go-jose error is about, when it says.
func joseMember(err error) string {
	if errors.Is(err, jose.ErrUnsupportedKeyType) {
		return "crv" // kty was checked before go-jose saw the key
	}
	if m := joseMessageMember.FindStringSubmatch(err.Error()); m != nil {
		return strings.ToLower(m[1])
	}
	return ""
}

// marshalJWK writes one key as a JWK object: the key material (private
// members only if private is true), then kid, then the other attributes in
// name order. Attributes named like key material are never written, so no
// private member can reach a public file through them.
func (k *Key) marshalJWK(private bool) ([]byte, error) {
	var material any = k.public
	if private {
		if k.private == nil {
			return nil, errors.New("not a private key")
		}
		material = k.private
	}
	out, err := (&jose.JSONWebKey{Key: material}).MarshalJSON()
	if err != nil {
		return nil, err
	}
	if err := checkAttrNames(k.Attrs); err != nil {
		return nil, err
	}
	out = out[:len(out)-1] // reopen the object
	names := slices.Sorted(maps.Keys(k.Attrs))
	if _, ok := k.Attrs[AttrKeyID]; ok {
		names = slices.DeleteFunc(names, func(n string) bool { return n == AttrKeyID })
		names = append([]string{AttrKeyID}, names...)
	}
	for _, name := range names {
		if isMaterial(name) {
			continue
		}
		qname, _ := json.Marshal(name) // a string always marshals
		var v bytes.Buffer
		if err := json.Compact(&v, k.Attrs[name]); err != nil {
			return nil, fmt.Errorf("attribute %q: %w", name, err)
		}
		out = append(out, ',')
		out = append(out, qname...)
		out = append(out, ':')
		out = append(out, v.Bytes()...)
	}
	return append(out, '}'), nil
}
