package keydir

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen bounds an entry name, leaving room for an extension and
// atomicfile's temporary-name decoration within a 255-byte file name.
const MaxNameLen = 200

// CheckName validates a name given to an entry (by a command's --name,
// derived from a key or a host, or asked for by enrollment): it must be
// a file name (CheckFileName), and every character of it must be shown as
// itself — printable in Go's unicode tables (unicode.IsPrint: letters,
// marks, numbers, punctuation, symbols and the ASCII space). A format
// character (Unicode Cf: a bidi override or isolate, a zero-width space
// or joiner, U+FEFF), another space, a private-use or unassigned one is
// refused with a *NameCharError: the name is the client's identity, and
// with one of them "ad\u200bmin" displays as "admin", another client's
// name (docs/design.md, "Names"). A name CheckName accepts is one that
// termtext.Safe shows as it is.
//
// Its letters must also be of one script, as Unicode's "Highly
// Restrictive" level has it (MixedScripts): a name mixing scripts is
// refused with a *NameScriptError, since "\u0430dmin", a Cyrillic а
// before Latin letters, reads "admin" too.
func CheckName(name string) error {
	if err := CheckFileName(name); err != nil {
		return err
	}
	if r, pos, ok := FirstUnprintable(name); ok {
		return &NameCharError{Name: name, Char: r, Pos: pos}
	}
	if err := MixedScripts(name); err != nil {
		return err
	}
	return nil
}

// CheckFileName validates an entry name that becomes a file name in a .d
// directory: it must not be empty, start with a dot, contain a path
// separator, a control character or a newline, or be invalid UTF-8, so that
// nothing is ever written outside the directory or hidden from the loader.
// It is the rule of the names already there (a feed's entries, a store's
// mirror): one CheckName would refuse (an invisible character) is still
// read, and reported where names are listed (docs/design.md, "Names").
func CheckFileName(name string) error {
	bad := func(why string) error { return fmt.Errorf("invalid name %q: %s", name, why) }
	switch {
	case name == "":
		return errors.New("invalid name: empty")
	case len(name) > MaxNameLen:
		return bad(fmt.Sprintf("longer than %d bytes", MaxNameLen))
	case !utf8.ValidString(name):
		return bad("not valid UTF-8")
	case name[0] == '.':
		return bad("starts with a dot (such files are ignored, and .. leaves the directory)")
	case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, filepath.Separator):
		return bad("contains a path separator")
	case strings.HasSuffix(name, "~") || strings.HasPrefix(name, "#"):
		return bad("looks like an editor backup, which the loader ignores")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u2028' || r == '\u2029' {
			return bad("contains a control character or newline")
		}
	}
	return nil
}

// NameCharError is CheckName's refusal of a name holding a character that
// is not shown as itself (one unicode.IsPrint refuses that CheckFileName
// lets through).
type NameCharError struct {
	Name string
	Char rune
	Pos  int // the character's position in Name, counted in characters from 1
}

func (e *NameCharError) Error() string {
	return fmt.Sprintf("keydir: invalid name %q: character %d is %U, %s", e.Name, e.Pos, e.Char, CharKind(e.Char))
}

// CharKind says, for a message, what a character that is not printable
// does to the text it is in.
func CharKind(r rune) string {
	switch {
	case unicode.Is(unicode.Bidi_Control, r):
		return "a bidirectional control, which reorders the text around it"
	case unicode.Is(unicode.Cf, r):
		return "an invisible format character"
	case unicode.Is(unicode.Zs, r):
		return "a space other than U+0020, shown as one"
	case unicode.Is(unicode.Co, r):
		return "a private-use character, which each font shows its own way"
	case unicode.IsControl(r) || unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r):
		return "a control character or newline"
	default:
		return "not a character Unicode assigns (as Go knows it)"
	}
}

// PrintableName reports whether name is shown as it is: CheckName's
// rule for its characters. A name read from a file or a feed that is not
// (written by hand or by an earlier version) is still the entry's name,
// reported where names are listed.
func PrintableName(name string) bool {
	_, _, bad := FirstUnprintable(name)
	return !bad
}

// FirstUnprintable returns the first character of name that is not shown
// as it is (CheckName's rule), and its position counted in characters
// from 1; ok is false when there is none. A byte that is not UTF-8 is
// such a character, returned as utf8.RuneError: valid, U+FFFD is
// printable.
func FirstUnprintable(name string) (r rune, pos int, ok bool) {
	for i, c := range name {
		pos++
		if !unicode.IsPrint(c) {
			return c, pos, true
		}
		if c == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(name[i:]); size == 1 {
				return c, pos, true
			}
		}
	}
	return 0, 0, false
}
