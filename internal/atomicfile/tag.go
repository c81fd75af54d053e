package atomicfile

import (
	"io/fs"
	"os"
	"strings"
)

// A Tag marks the temporary files of one program's writes as its own:
// Tag.Write and Tag.Create name the temporary file of a write of NAME
// ".NAME.DIGITS.TAG.tmp" (DIGITS os.CreateTemp's random part), where
// Write and Create name it ".NAME.DIGITS.tmp". No untagged write names a
// file so — what comes before its ".tmp" is digits, and a tag is not —
// nor a write of another tag. A program whose every write of a tagged
// name is made under a lock of its own can then tell, under that lock,
// that a file Tag.IsTemp names is a temporary file of one of its writes
// that was killed or crashed before placing it (keytool sync: a sync
// killed mid-write), where a temporary of ".NAME.DIGITS.tmp" may be any
// keytool writer's (keytool authorize, on the same directory), live.
//
// A tag is a non-empty file name part without a "." (keytool-sync); any
// other makes the writes fail (fs.ErrInvalid) and IsTemp say false.
type Tag string

// valid reports whether t is a tag: not empty, no "/" or "." (a "." would
// let a tag end in digits, and be the end of another tag), not only
// digits.
func (t Tag) valid() bool {
	return t != "" && !strings.ContainsAny(string(t), "/.\x00") && strings.Trim(string(t), "0123456789") != ""
}

func (t Tag) suffix() string { return "." + string(t) + tempSuffix }

// Write is Write with the temporary file's name tagged.
func (t Tag) Write(path string, data []byte, perm fs.FileMode) error {
	if !t.valid() {
		return &fs.PathError{Op: "write", Path: path, Err: fs.ErrInvalid}
	}
	return writeFile(path, bytesFill(data), perm, os.Rename, true, nil, t.suffix())
}

// Create is Create with the temporary file's name tagged.
func (t Tag) Create(path string, data []byte, perm fs.FileMode) error {
	if !t.valid() {
		return &fs.PathError{Op: "create", Path: path, Err: fs.ErrInvalid}
	}
	return writeFile(path, bytesFill(data), perm, os.Link, true, nil, t.suffix())
}

// IsTemp reports whether file (a name in a directory) is named as the
// temporary file of a write of t's: ".NAME.DIGITS.TAG.tmp", NAME not
// empty, DIGITS as os.CreateTemp makes them. It says nothing of who made
// the file: the caller looks at its owner, its type, and whether a writer
// may still be using it.
func (t Tag) IsTemp(file string) bool {
	if !t.valid() {
		return false
	}
	rest, ok := strings.CutSuffix(file, t.suffix()) // ".NAME.DIGITS"
	if !ok || !strings.HasPrefix(rest, ".") {
		return false
	}
	i := strings.LastIndexByte(rest, '.')
	return i > 1 && validDigits(rest[i+1:]) // NAME: rest[1:i], not empty
}
