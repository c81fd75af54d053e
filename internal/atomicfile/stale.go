package atomicfile

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keytool/keytool/internal/trustfile"
)

// StaleAge is how long a temporary file of this package must have gone
// unwritten before RemoveStale takes it for one a crash left behind: a
// write fills its temporary and places it within moments, so only a
// writer stopped for that long (kill -STOP) could still be using it, and
// its placing would then fail (the name gone), never place other data.
const StaleAge = time.Hour

// RemoveStale removes the temporary files that writes of path left behind
// when they were killed or crashed before placing them (or, for Create,
// between the link and the removal of the temporary name: a second name of
// the file, which would outlive its removal, a private key's after a
// rotation). It removes only what is unambiguously such a file: named
// exactly as a write of path names its temporary (".NAME.DIGITS.tmp",
// DIGITS os.CreateTemp's random part), in path's directory, a regular file
// (not followed if a link), owned by the effective user, unwritten for
// StaleAge. Where the system has no owners, nothing is removed. A removal
// unlinks the name only: a name that was a link to another file, or
// another name of path's file, leaves that file as it was.
//
// It reads the directory, which a write does not: the caller chooses where
// that is cheap and worth it (jwk.WritePrivateKeyFile, a key's directory),
// not every write (a directory of authorized keys may hold 100,000 files).
// It returns the paths it removed; what it cannot read or remove it leaves.
func RemoveStale(path string) []string {
	dir, name := split(path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	euid, old := os.Geteuid(), time.Now().Add(-StaleAge)
	var removed []string
	for _, e := range entries {
		if !isTempOf(e.Name(), name) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(old) {
			continue
		}
		if uid, ok := trustfile.Owner(fi); !ok || uid != euid {
			continue
		}
		if os.Remove(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed
}

// isTempOf reports whether file is a temporary name writeFile makes for
// name: tempPrefix(name), the decimal uint32 that os.CreateTemp puts for
// its "*" (no sign, no leading zero), tempSuffix.
func isTempOf(file, name string) bool {
	rest, ok := strings.CutPrefix(file, tempPrefix(name))
	if !ok {
		return false
	}
	digits, ok := strings.CutSuffix(rest, tempSuffix)
	return ok && validDigits(digits)
}

// validDigits reports whether digits are what os.CreateTemp puts for
// its "*": a decimal uint32, no sign, no leading zero.
func validDigits(digits string) bool {
	if digits == "" || strings.Trim(digits, "0123456789") != "" || len(digits) > 1 && digits[0] == '0' {
		return false
	}
	_, err := strconv.ParseUint(digits, 10, 32)
	return err == nil
}
