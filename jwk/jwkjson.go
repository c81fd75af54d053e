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

	jose "github.com/go-jose/go-jose/v4"
)

// keyMaterial are the JWK members that describe the key itself (RFC 7518
// section 6 and RFC 8037). Every other member is an attribute. The private
// ones are never written on a public path.
var keyMaterial = map[string]bool{
	"kty": true, "crv": true, "x": true, "y": true, "n": true, "e": true, "k": true, "pub": true,
	"d": true, "p": true, "q": true, "dp": true, "dq": true, "qi": true, "oth": true, "priv": true,
}

// libtrustKeyID matches a kid in libtrust form: 12 groups of 4 base32
// characters joined by colons.
var libtrustKeyID = regexp.MustCompile(`^[A-Z2-7]{4}(:[A-Z2-7]{4}){11}$`)

// parseJSON reads a JWK or a JWK Set.
func parseJSON(data []byte, file string) ([]*Key, error) {
	fail := func(member string, err error) error {
		return &ParseError{File: file, Line: jsonErrorLine(data, err), Member: member, Err: err}
	}
	s := jsonScanner{data: data}
	var (
		isSet, isKey bool
		keysRaw      []byte
	)
	err := s.members(0, func(name string, raw []byte) error {
		switch name {
		case "keys":
			isSet = true
			keysRaw = raw
		case "kty":
			isKey = true
		}
		return nil
	})
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return nil, fail("", err)
	}
	switch {
	case isKey:
		k, member, err := parseJWK(data)
		if err != nil {
			return nil, fail(member, err)
		}
		return []*Key{k}, nil
	case isSet:
		var keys []*Key
		sub := jsonScanner{data: data, pos: cap(data) - cap(keysRaw)}
		err := sub.elements(0, func(i int, raw []byte) error {
			k, member, err := parseJWK(raw)
			if err != nil {
				path := "keys[" + strconv.Itoa(i) + "]"
				if member != "" {
					path += "." + member
				}
				line := lineOf(data, cap(data)-cap(raw))
				return &ParseError{File: file, Line: line, Member: path, Err: err}
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
	var (
		attrs   Attributes
		kty     []byte
		present = map[string]bool{}
	)
	s := jsonScanner{data: raw}
	err := s.members(0, func(name string, v []byte) error {
		if !keyMaterial[name] {
			if attrs == nil {
				attrs = make(Attributes, 4)
			}
			attrs[name] = bytes.Clone(v)
			return nil
		}
		present[name] = true
		switch name {
		case "kty":
			kty = v
		case "crv":
		default:
			if !isBase64URLString(v) {
				return &memberError{name, errors.New("not a base64url string")}
			}
		}
		return nil
	})
	if err == nil {
		err = s.end()
	}
	var me *memberError
	if errors.As(err, &me) {
		return nil, me.member, me.err
	}
	if err != nil {
		return nil, "", err
	}
	switch _, known := requiredMembers[string(kty)]; {
	case kty == nil:
		return nil, "kty", errors.New("missing: every JWK needs a kty")
	case !known:
		return nil, "kty", fmt.Errorf("%w: kty %s (keytool reads EC, RSA and OKP Ed25519 keys)", ErrUnsupportedKey, kty)
	}
	for _, m := range requiredMembers[string(kty)] {
		if !present[m] {
			return nil, m, fmt.Errorf("missing (kty %s needs %s)", kty, strings.Join(requiredMembers[string(kty)], ", "))
		}
	}
	var jk jose.JSONWebKey
	if err := jk.UnmarshalJSON(raw); err != nil {
		return nil, joseMember(err), joseError(raw, err)
	}
	var k *Key
	switch key := jk.Key.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
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
		err = fmt.Errorf("%w: %T", ErrUnsupportedKey, jk.Key)
	}
	if err != nil {
		return nil, "", err
	}
	k.Attrs = attrs
	if member, err := checkAttrs(k); err != nil {
		return nil, member, err
	}
	return k, "", nil
}

// checkAttrs validates the attributes keytool interprets, including a kid
// in libtrust form, which must name the key it is attached to.
func checkAttrs(k *Key) (member string, err error) {
	if err := k.Attrs.validate(); err != nil {
		var ae *AttrError
		if errors.As(err, &ae) {
			return ae.Name, ae.Err
		}
		return "", err
	}
	kid, _ := k.Attrs.String(AttrKeyID)
	if libtrustKeyID.MatchString(kid) && kid != k.KeyID() {
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
var joseMessageMember = regexp.MustCompile(`(?:wrong length for|missing|bad) (x5c|kty|crv|dp|dq|qi|x|y|n|e|d|p|q)\b`)

// joseMember returns the member a go-jose error is about, when it says.
func joseMember(err error) string {
	if errors.Is(err, jose.ErrUnsupportedKeyType) {
		return "crv" // kty was checked before go-jose saw the key
	}
	if m := joseMessageMember.FindStringSubmatch(err.Error()); m != nil {
		return m[1]
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
	out = out[:len(out)-1] // reopen the object
	names := slices.Sorted(maps.Keys(k.Attrs))
	if _, ok := k.Attrs[AttrKeyID]; ok {
		names = slices.DeleteFunc(names, func(n string) bool { return n == AttrKeyID })
		names = append([]string{AttrKeyID}, names...)
	}
	for _, name := range names {
		if keyMaterial[name] {
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
