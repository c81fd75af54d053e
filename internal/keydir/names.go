package keydir

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// MaxNameLen bounds an entry name, leaving room for an extension and
// atomicfile's temporary-name decoration within a 255-byte file name.
const MaxNameLen = 200

// CheckName validates an entry name that becomes a file name in a .d
// directory: it must not be empty, start with a dot, contain a path
// separator, a control character or a newline, or be invalid UTF-8, so that
// nothing is ever written outside the directory or hidden from the loader.
func CheckName(name string) error {
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
