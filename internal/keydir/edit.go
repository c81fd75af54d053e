package keydir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
		if err := os.Remove(path); err != nil {
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
