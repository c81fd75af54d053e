package keydir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// EditFile rewrites the key file at path: edit is called with each key and
// returns the key to keep (itself or a modified copy) or nil to drop it.
// If no key remains the file is removed; if nothing changed it is left
// alone. The rewrite is atomic, keeps the file's mode and format (JWK,
// JWK Set or PEM), and never writes private members. OpenSSH key lines
// cannot be rewritten: such a file is refused with an error asking for a
// hand edit. It reports whether the file was removed.
//
// Edits of files in the same directory are serialised across processes
// (an advisory lock on the directory), so that concurrent edits of one
// file all take effect.
func EditFile(path string, edit func(k *jwk.Key) *jwk.Key) (removed bool, err error) {
	unlock, _, err := lockDir(filepath.Dir(path))
	if err != nil {
		return false, fmt.Errorf("editing %s: %w", path, err)
	}
	defer unlock()
	data, fi, err := trustfile.Read(path)
	if err != nil {
		return false, err
	}
	keys, err := jwk.ParseAnyUse(data) // an edit or a lookup uses no key: it must see every one
	if err != nil {
		var pe *jwk.ParseError
		if errors.As(err, &pe) {
			pe.File = path
		}
		return false, err
	}
	var kept []*jwk.Key
	changed := false
	for _, k := range keys {
		nk := edit(k)
		if nk != k {
			changed = true
		}
		if nk != nil {
			kept = append(kept, nk)
		}
	}
	if !changed {
		return false, nil
	}
	if len(kept) == 0 {
		if err := RemoveFile(path); err != nil {
			return false, err
		}
		return true, nil
	}
	format, _ := jwk.DetectFormat(data)
	var out []byte
	switch {
	case format == jwk.OpenSSH:
		return false, fmt.Errorf("%s holds OpenSSH key lines, which keytool cannot rewrite; edit the file by hand", path)
	case format == jwk.JWK && len(kept) == 1 && !isSet(data):
		out, err = kept[0].MarshalPublic(jwk.JWK)
	default:
		out, err = jwk.MarshalPublicSet(kept, format)
	}
	if err != nil {
		return false, fmt.Errorf("rewriting %s: %w", path, err)
	}
	return false, atomicfile.Write(path, out, fi.Mode().Perm())
}

// isSet reports whether JSON data is a JWK Set rather than a single JWK:
// its first member (the first string in the text) is "keys".
func isSet(data []byte) bool {
	for i := 0; i < len(data); i++ {
		if data[i] == '"' {
			return len(data) >= i+6 && string(data[i:i+6]) == `"keys"`
		}
	}
	return false
}

// RemoveFile removes the key file at path, as EditFile does once no key
// is left in it, and records the removal in every Removals open on a
// directory above path: the store's mirror (internal/cli) tells by them
// an entry file this process removed from one it did not — an rm -r of
// the mirror under way, whose removals would otherwise be written to the
// store as the command's.
func RemoveFile(path string) error {
	if err := os.Remove(path); err != nil {
		return err
	}
	path = absPath(path)
	removals.Lock()
	defer removals.Unlock()
	for r := range removals.open {
		if strings.HasPrefix(path, r.dir) {
			r.paths[path] = true
		}
	}
	return nil
}

// removals are the Removals open.
var removals struct {
	sync.Mutex
	open map[*Removals]bool
}

// Removals are the files RemoveFile removed under a directory since
// RecordRemovals.
type Removals struct {
	dir   string // absolute, with a trailing separator
	paths map[string]bool
}

// RecordRemovals records the files RemoveFile removes under dir until
// Close.
func RecordRemovals(dir string) *Removals {
	r := &Removals{dir: absPath(dir) + string(filepath.Separator), paths: map[string]bool{}}
	removals.Lock()
	defer removals.Unlock()
	if removals.open == nil {
		removals.open = map[*Removals]bool{}
	}
	removals.open[r] = true
	return r
}

// Made says whether RemoveFile removed path since r was opened.
func (r *Removals) Made(path string) bool {
	removals.Lock()
	defer removals.Unlock()
	return r.paths[absPath(path)]
}

// absPath is path made absolute, so that the names one file is given
// (a home named relative to the working directory, a store's file names
// absolute) compare equal; cleaned only if the working directory is not
// known.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return filepath.Clean(path)
}

// Close stops recording (r's record stays readable).
func (r *Removals) Close() {
	removals.Lock()
	defer removals.Unlock()
	delete(removals.open, r)
}
