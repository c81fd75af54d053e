package jwk

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Member names that differ only in case.
//
// keytool reads JWK members, and PEM headers, by their exact names, and so
// does go-jose (its copy of encoding/json matches field names exactly),
// while Go's encoding/json — and so many another Go program that reads a
// file keytool wrote — matches a struct field's name regardless of case
// (by Unicode simple folding: "K", "k" and the Kelvin sign U+212A are one
// name to it). A file holding both "x" and "X" would then be one key to
// keytool and another to them, and keytool would write it back so. Such
// names are refused wherever a key's members are read or written, never
// resolved: two members whose names fold to the same one, and a member
// that is only a case variant of a name keytool or go-jose gives a meaning
// to ("D" beside no "d" would be a private member to go-jose).

// sameFold reports whether two member names are one name to
// encoding/json, whose folding is bytes.EqualFold's.
func sameFold(a, b []byte) bool { return bytes.EqualFold(a, b) }

// duplicateError is a member whose name another member of the same object
// already has, exactly or but for case. offset is where the later one
// starts in the scanned data.
type duplicateError struct {
	name, first string
	offset      int
}

// Error says what is wrong with the member. A name that appears twice is
// reported as before names were compared regardless of case, in the
// message callers match; a case variant as a fault of the member, which
// the *ParseError names (duplicateMember).
func (e *duplicateError) Error() string {
	if e.name == e.first {
		return fmt.Sprintf("invalid JSON: member %q appears twice", e.name)
	}
	return fmt.Sprintf("duplicate of member %q (names differ only in case; Go's encoding/json would read one as the other)", e.first)
}

// knownNames are the member names that keytool or go-jose give a meaning
// to: key material (the private members are IsPrivateMember's), the JOSE
// parameters, and keytool's attributes.
var knownNames = slices.Concat(
	[]string{"kty", "crv", "x", "y", "n", "e", "pub"}, privateMemberNames[:],
	[]string{"use", "alg", "key_ops", "x5c", "x5u", "x5t", "x5t#S256"},
	[]string{AttrKeyID, AttrAddress, AttrHosts, AttrComment, AttrExpires, AttrFrom, AttrName},
)

// maxKnownName is the length of the longest of knownNames. Folding keeps
// the length of an ASCII name, so a longer ASCII name is none of them.
const maxKnownName = len("x5t#S256")

// caseVariant returns the name of knownNames that name is a case variant
// of, if it is one and is not that name itself. It runs on every member
// parsed: the common names return at once.
func caseVariant(name []byte) (string, bool) {
	if classify(name) != attribute {
		return "", false // key material or a JOSE parameter, exactly
	}
	return attrCaseVariant(name)
}

// attrCaseVariant is caseVariant for a name that classify calls an
// attribute.
func attrCaseVariant(name []byte) (string, bool) {
	switch string(name) {
	case AttrKeyID, AttrAddress, AttrHosts, AttrComment, AttrExpires, AttrFrom, AttrName:
		return "", false
	}
	if len(name) > maxKnownName && isASCII(name) {
		return "", false
	}
	for _, known := range knownNames {
		if bytes.EqualFold(name, []byte(known)) {
			return known, true
		}
	}
	return "", false
}

// caseVariantError explains why a case variant of a known name is refused.
func caseVariantError(known string) error {
	return fmt.Errorf("a case variant of %q: keytool reads only %q, Go's encoding/json would read this member as %q; write it as %q or rename it", known, known, known, known)
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// checkAttrNames refuses, before writing, attributes whose names a reader
// of the file would take for another member (see above): a case variant
// of a known name, or two attributes whose names differ only in case.
// Attributes named exactly like key material are not written at all, and
// need no check.
func checkAttrNames(a Attributes) error {
	var names []string
	for name := range a {
		if isMaterial(name) {
			continue
		}
		if known, ok := caseVariant([]byte(name)); ok {
			return fmt.Errorf("attribute %q is a case variant of %q: a reader going by Go's encoding/json would take it for %q", name, known, known)
		}
		for _, other := range names {
			if strings.EqualFold(name, other) {
				a, b := min(name, other), max(name, other)
				return fmt.Errorf("attributes %q and %q differ only in case: a reader going by Go's encoding/json would take one for the other", a, b)
			}
		}
		names = append(names, name)
	}
	return nil
}
