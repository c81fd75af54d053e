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
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// IsPrivateMember reports whether a JWK member of this name holds private
// key material: "d" (RFC 7518 section 6.2.2.1 and 6.3.2.1, RFC 8037
// section 2), RSA's "p", "q", "dp", "dq", "qi" and "oth" (RFC 7518 section
// 6.3.2), a symmetric key's "k" (RFC 7518 section 6.4.1), and "priv", an
// AKP key's private key (RFC 9964, ML-DSA). A public key holds none of
// them, and keytool never writes them in one; a JWK read as public that
// holds one is refused (go-jose reads a key as private by "d" alone, and
// passes over the others, some of which give the private key away).
//
// Names are compared exactly, as JSON compares them (RFC 8259). A reader
// that, like Go's encoding/json, takes a member for another by its name in
// any case compares PrivateMembers with strings.EqualFold.
func IsPrivateMember(name string) bool { return isPrivateMember(name) }

// PrivateMembers returns the names of the members IsPrivateMember reports.
// The slice is the caller's own.
func PrivateMembers() []string { return slices.Clone(privateMemberNames[:]) }

// privateMemberNames are the names isPrivateMember's switch holds, for
// PrivateMembers and knownNames (TestPrivateMembersOneRule reads the
// switch and checks that the two are the same names).
var privateMemberNames = [...]string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// isPrivateMember is IsPrivateMember, the one rule, for the bytes of a
// member's name as well: classify and checkNoSecret ask it of every member
// parsed, and a switch on string(name) neither allocates nor hashes
// (classify with a loop over privateMemberNames instead took 2.9 times as
// long).
func isPrivateMember[S string | []byte](name S) bool {
	switch string(name) {
	case "d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv":
		return true
	}
	return false
}

// classify says what a member is: key material (RFC 7518 section 6, RFC
// 8037), which public paths never write in its private forms
// (isPrivateMember); an attribute go-jose reads and checks as well (types,
// certificate chains against the key); or an attribute only keytool keeps.
// Parsing asks it of every member, and a switch on the bytes neither
// hashes nor allocates; the private members are isPrivateMember's, asked
// after it.
//
// "kid" is keytool's alone: go-jose would only copy it into a string, and
// keytool checks it more closely (a string; the key's own ID when it has
// libtrust's form).
func classify(name []byte) memberKind {
	switch string(name) {
	case "kty", "crv", "x", "y", "n", "e", "pub":
		return material
	case "use", "alg", "key_ops", "x5c", "x5u", "x5t", "x5t#S256":
		return joseAttribute
	}
	if isPrivateMember(name) {
		return material
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

// allKeys reads every entry of a file with entries (parseJSONEntries,
// parsePEMEntries, parseSSHEntries) the strict way Parse reads: the first
// entry that does not read is the error, never skipped.
func allKeys(data []byte, file string, entries func([]byte, string, func(SetEntry) error) error) ([]*Key, error) {
	var keys []*Key
	err := entries(data, file, func(e SetEntry) error {
		if e.Err != nil {
			return e.Err
		}
		keys = append(keys, e.Key)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// parseJSON reads a JWK or a JWK Set.
func parseJSON(data []byte, file string) ([]*Key, error) {
	return allKeys(data, file, parseJSONEntries)
}

// parseJSONEntries reads a JWK or a JWK Set, calling add for each member
// of a set's "keys", read or not; an error add returns ends the reading
// and is returned. A single JWK that does not read, and anything wrong
// with the file around the keys, is the error returned, never an entry.
func parseJSONEntries(data []byte, file string, add func(SetEntry) error) error {
	fail := func(member string, err error) *ParseError {
		return &ParseError{File: file, Line: jsonErrorLine(data, err), Member: member, Err: err}
	}
	if !utf8.Valid(data) {
		// JSON is UTF-8 (RFC 8259); a name with invalid bytes would be
		// written back as U+FFFD, another name.
		return fail("", errors.New("invalid JSON: not valid UTF-8"))
	}
	var buf [16]member // most keys have fewer members: no allocation
	s := jsonScanner{data: data}
	ms, err := s.members(0, buf[:0])
	if err == nil {
		err = s.end()
	}
	if err != nil {
		return fail(duplicateMember(err), err)
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
			pe := fail(member, err)
			pe.Key = spkiOf(k)
			return pe
		}
		return add(SetEntry{Key: k})
	case keysRaw != nil:
		// Lines of faults are counted on from the previous one (members
		// come in order): a set with many bad members costs linear time.
		lnOff, ln := 0, 1
		lineAt := func(off int) int {
			off = min(off, len(data))
			if off < lnOff {
				return lineOf(data, off)
			}
			ln += bytes.Count(data[lnOff:off], []byte{'\n'})
			lnOff = off
			return ln
		}
		sub := jsonScanner{data: data, pos: cap(data) - cap(keysRaw)}
		var raws [][]byte
		if err := sub.elements(0, func(_ int, raw []byte) error {
			raws = append(raws, raw)
			return nil
		}); err != nil {
			return fail("keys", err)
		}
		entry := func(i int, p parsedJWK) error {
			if p.err != nil {
				path := "keys[" + strconv.Itoa(i) + "]"
				if p.member != "" {
					path += "." + p.member
				}
				start := cap(data) - cap(raws[i])
				off, _ := jsonErrorOffset(p.err)
				line := lineAt(start + off)
				return add(SetEntry{Index: i, Line: line, inSet: true, Err: &ParseError{File: file, Line: line, Member: path, Err: p.err, Key: spkiOf(p.key)}})
			}
			return add(SetEntry{Key: p.key, Index: i, inSet: true})
		}
		var err error
		for i, p := range parseJWKs(raws) {
			if err = entry(i, p); err != nil {
				break
			}
		}
		if err != nil {
			var pe *ParseError
			if errors.As(err, &pe) {
				return pe
			}
			return fail("keys", err)
		}
		if len(raws) == 0 {
			return fail("keys", ErrNoKey)
		}
		return nil
	default:
		return fail("kty", errors.New(`a JWK needs a "kty" member, a JWK Set a "keys" member`))
	}
}

// parsedJWK is parseJWK's result for one member of a set.
type parsedJWK struct {
	key    *Key
	member string
	err    error
}

// parallelSet is the fewest members a CPU is given to parse: a set of
// 2×parallelSet members or more is parsed on several. A key's parse (its
// point checked on the curve, or go-jose's decoding) is microseconds, so
// a set of 100,000 keys — one file, read by one of the loader's
// goroutines — would otherwise hold a cold start to one core. Every
// member is parsed, even after a bad one: Parse, which stops at the
// first, then returns the same error, having done work it did not need
// (bounded by the input's size).
const parallelSet = 512

// parseJWKs parses each of raws (parseJWK), on every CPU for a big set;
// the results are in raws' order, whatever the order of the work.
func parseJWKs(raws [][]byte) []parsedJWK {
	out := make([]parsedJWK, len(raws))
	parse := func(from, to int) {
		for i := from; i < to; i++ {
			out[i].key, out[i].member, out[i].err = parseJWK(raws[i])
		}
	}
	workers := min(runtime.GOMAXPROCS(0), len(raws)/parallelSet)
	if workers <= 1 {
		parse(0, len(raws))
		return out
	}
	var wg sync.WaitGroup
	per := (len(raws) + workers - 1) / workers
	for from := 0; from < len(raws); from += per {
		wg.Go(func() { parse(from, min(from+per, len(raws))) })
	}
	wg.Wait()
	return out
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
// the fast path (fastkey.go) or go-jose reads the key material, the other
// members become attributes. Each step is a function of its own; the
// order in which they run is the order in which errors are reported, so
// it must not change.
func keyFromMembers(raw []byte, ms []member) (*Key, string, error) {
	return keyFromMembersVia(raw, ms, true)
}

// keyFromMembersVia is keyFromMembers; with fast false, go-jose reads
// every key (FuzzFastKey compares the two). On an error in the key's
// attributes it returns the key too, else nil.
func keyFromMembersVia(raw []byte, ms []member, fast bool) (*Key, string, error) {
	kinds := memberKinds{ms: ms}
	kty, nattrs, member, err := kinds.scan()
	if err != nil {
		return nil, member, err
	}
	if member, err := checkRequired(kty, ms); err != nil {
		return nil, member, err
	}
	if member, err := checkRSACRT(kty, ms); err != nil {
		return nil, member, err
	}

	// An RSA key larger than go-jose reads, keytool reads itself
	// (rsajwk.go).
	key, member, err := bigRSAKey(kty, ms)
	if err != nil {
		return nil, member, err
	}
	if key == nil && fast {
		key = fastPublicKey(&kinds)
	}
	if key == nil {
		if key, member, err = joseKey(raw, &kinds, nattrs); err != nil {
			return nil, member, err
		}
	}
	k, err := newKeyOf(key)
	if err != nil {
		return nil, "", err
	}
	if !k.IsPrivate() {
		if member, err := checkNoSecret(ms); err != nil {
			return nil, member, err
		}
	}
	// An attribute's error comes with the key, whose material read: the
	// caller's ParseError names it (ParseError.Key).
	if nattrs > 0 {
		if member, err := setAttrs(k, raw, &kinds, nattrs); err != nil {
			return k, member, err
		}
	}
	if member, err := checkWithKey(k); err != nil {
		return k, member, err
	}
	return k, "", nil
}

// spkiOf is the SPKI hash of k for a ParseError (nil: no key).
func spkiOf(k *Key) *[32]byte {
	if k == nil {
		return nil
	}
	sum := k.SPKIHash()
	return &sum
}

// memberKinds remembers the kind of each member of ms, so that the
// passes after the first do not classify them again. The first 16 kinds
// live in an array, which keeps the common key free of allocations; any
// further member is classified anew when asked.
type memberKinds struct {
	ms    []member
	first [16]memberKind
}

// of returns the kind of ms[i].
func (mk *memberKinds) of(i int) memberKind {
	if i < len(mk.first) {
		return mk.first[i]
	}
	return classify(mk.ms[i].name)
}

// scan classifies every member, recording the kinds, and returns the raw
// kty and how many members become attributes. It refuses, at the first
// member in object order, an attribute whose name differs from a known one
// only in case, and key material (but crv, a name) that is not a base64url
// string: go-jose's own messages for these would not name the member.
func (mk *memberKinds) scan() (kty []byte, nattrs int, name string, err error) {
	for i, m := range mk.ms {
		kind := classify(m.name)
		if i < len(mk.first) {
			mk.first[i] = kind
		}
		switch {
		case kind == attribute:
			if known, ok := attrCaseVariant(m.name); ok {
				return nil, 0, string(m.name), caseVariantError(known)
			}
			nattrs++
		case string(m.name) == "kty":
			kty = m.raw
		case kind == material && string(m.name) != "crv" && !isBase64URLString(m.raw):
			return nil, 0, string(m.name), errors.New("not a base64url string")
		case string(m.name) == "x5c" && chainTooLong(m.raw):
			return nil, 0, "x5c", fmt.Errorf("more than %d certificates: a certificate chain is a few", maxX5C)
		}
		if kind == joseAttribute {
			nattrs++
		}
	}
	return kty, nattrs, "", nil
}

// maxX5C is the most certificates an "x5c" member may hold. go-jose
// parses every one (the chain must begin with the key's own), and a
// certificate parsed takes some kilobytes whatever its size in the file:
// a 60 MB key file of 175,000 small certificates took 735 MB to read.
// keytool reads no certificate of x5c itself; a real chain is a few.
const maxX5C = 16

// chainTooLong reports whether raw, the value of an "x5c" member, is a
// list of more than maxX5C elements (whether they are certificates,
// go-jose judges).
func chainTooLong(raw []byte) bool {
	if len(raw) == 0 || raw[0] != '[' {
		return false
	}
	errLong := errors.New("too long")
	s := jsonScanner{data: raw}
	return s.elements(0, func(i int, _ []byte) error {
		if i >= maxX5C {
			return errLong
		}
		return nil
	}) == errLong
}

// checkNoSecret refuses, in a JWK read as a public key, a member that
// holds secret material (IsPrivateMember): go-jose reads a key as private only by its "d",
// and passes over the others. A "public" RSA key made by deleting "d"
// from a private one keeps p, q, dp, dq and qi, any of which factors n;
// read as public, it would pass the rule that a file holding a private
// key is readable by its owner alone, and sit in a trust file anyone may
// read.
func checkNoSecret(ms []member) (string, error) {
	for _, m := range ms {
		if isPrivateMember(m.name) {
			return string(m.name), errors.New("secret key material in a public key (a private key needs all its members; a public one none of these)")
		}
	}
	return "", nil
}

// checkRequired refuses a missing or unsupported kty, and a key without
// one of the public members its kty needs (requiredMembers), naming the
// member, before go-jose sees the object.
func checkRequired(kty []byte, ms []member) (string, error) {
	required, known := requiredMembers[string(kty)]
	switch {
	case kty == nil:
		return "kty", errors.New("missing: every JWK needs a kty")
	case !known:
		return "kty", fmt.Errorf("%w: kty %s (keytool reads EC, RSA and OKP Ed25519 keys)", ErrUnsupportedKey, termtext.Safe(string(kty)))
	}
	for _, name := range required {
		if !slices.ContainsFunc(ms, func(m member) bool { return string(m.name) == name }) {
			return name, fmt.Errorf("missing (kty %s needs %s)", kty, strings.Join(required, ", "))
		}
	}
	return "", nil
}

// joseKey has go-jose read the key material of raw, whose members kinds
// describes; nattrs is the number of members that are attributes.
//
// go-jose gets the members it understands; the others it would skip, after
// decoding them, at a cost that dominated parsing entries with several
// attributes. Duplicates, and names that differ only in case, were refused
// before, so the subset means to go-jose (which matches names regardless of
// case) exactly what the whole object means.
func joseKey(raw []byte, kinds *memberKinds, nattrs int) (any, string, error) {
	joseRaw := raw
	if nattrs > 0 {
		joseRaw = make([]byte, 0, len(raw))
		joseRaw = append(joseRaw, '{')
		for i, m := range kinds.ms {
			if kinds.of(i) != attribute {
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
	return jk.Key, "", nil
}

// newKeyOf makes a Key of the key go-jose or bigRSAKey read, with the
// checks each type still needs: an EC private key must hold the public
// point of its scalar (checkECPrivate).
func newKeyOf(key any) (*Key, error) {
	switch key := key.(type) {
	case *ecdsa.PublicKey:
		return newPublicKey(key, false) // go-jose or the fast path checked that the point is on the curve
	case *rsa.PublicKey, ed25519.PublicKey:
		return NewPublicKey(key)
	case *ecdsa.PrivateKey:
		if err := checkECPrivate(key); err != nil {
			return nil, err
		}
		return NewPrivateKey(key)
	case *rsa.PrivateKey:
		return NewPrivateKey(key)
	case ed25519.PrivateKey:
		return NewPrivateKey(key)
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedKey, key)
	}
}

// setAttrs gives k the nattrs members of raw that are not key material,
// each checked (checkAttr), in a map sized once. On error it returns the
// member at fault.
//
// The attribute values share one copy of the object: one allocation rather
// than one per value.
func setAttrs(k *Key, raw []byte, kinds *memberKinds, nattrs int) (string, error) {
	copied := bytes.Clone(raw)
	k.Attrs = make(Attributes, nattrs)
	for i, m := range kinds.ms {
		if kinds.of(i) != material {
			name := string(m.name)
			off := cap(raw) - cap(m.raw)
			v := copied[off : off+len(m.raw) : off+len(m.raw)]
			if err := checkAttr(name, v); err != nil {
				return attrMember(err)
			}
			k.Attrs[name] = v
		}
	}
	return "", nil
}

// checkAttrs validates the attributes keytool interprets, and those that
// are about the key they are attached to (checkWithKey).
func checkAttrs(k *Key) (member string, err error) {
	if err := k.Attrs.validate(); err != nil {
		return attrMember(err)
	}
	return checkWithKey(k)
}

// checkWithKey checks the attributes that are about the key they are
// attached to: a kid in libtrust form must be the key's own ID
// (checkKeyID), and use and key_ops must allow what keytool does with the
// key (checkUse). Every key read from a JWK or a PEM block, the only
// formats that carry such attributes, goes through it last.
func checkWithKey(k *Key) (member string, err error) {
	if member, err := checkKeyID(k); err != nil {
		return member, err
	}
	return checkUse(k)
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
	return isBase64URL(b) && len(b)%4 != 1
}

// base64URLByte marks the characters of the base64url alphabet.
var base64URLByte = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") {
		t[c] = true
	}
	return t
}()

// isBase64URL reports whether every byte of b is of the base64url
// alphabet (a table lookup a byte: every JWK's key material goes through
// it).
func isBase64URL(b []byte) bool {
	for _, c := range b {
		if !base64URLByte[c] {
			return false
		}
	}
	return true
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
	if !private && k.private != nil {
		k = k.PublicKey() // the public half's attributes (key_ops)
	}
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
