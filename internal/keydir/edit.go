package keydir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/keytool/keytool/internal/atomicfile"
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
// (an advisory lock of the directory's lock file, LockDir), so that
// concurrent edits of one file all take effect; where the lock cannot be
// had, the edit goes ahead unlocked and Unlocked says why.
//
// The file is read under the strict-modes rule its source is loaded with
// (Loader.ReadFile), as a reload would read it now: a file that has become
// writable by others, or another user's, or a link into a directory
// others may write, since it was loaded is refused with the rule's error
// (*trustfile.PermissionError, *trustfile.LinkError) and left as it is —
// an edit is no looser a reader than a load (docs/design.md, "One
// file-trust rule").
func (l *Loader[T]) EditFile(path string, edit func(k *jwk.Key) *jwk.Key) (removed bool, err error) {
	unlock, _, err := l.LockDir(filepath.Dir(path))
	if err != nil {
		return false, fmt.Errorf("editing %s: %w", path, err)
	}
	defer unlock()
	data, fi, err := l.ReadFile(path)
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
	return false, WriteFile(path, out, fi.Mode().Perm())
}

// EditFiles is EditFile of each of files in turn, with the edit that
// edit returns for it, and returns the error of each file it could not
// edit: one such file does not stop the others (the safe side). The
// files it removes are removed durably: each directory one was removed
// from is synced once, after the last (atomicfile.SyncDirsOf). Unsynced, a
// removal could be undone by a power loss seconds later (ext4 commits it
// within five), and a key removed from authorized_keys.d be authorized
// again; the files it rewrites are synced by their writes (atomicfile).
// A directory that cannot be synced fails each file removed from it
// with an *atomicfile.UnsyncedError: removed, but not known to stay so.
func (l *Loader[T]) EditFiles(files []string, edit func(path string) func(k *jwk.Key) *jwk.Key) (failed map[string]error) {
	fail := func(file string, err error) {
		if failed == nil {
			failed = map[string]error{}
		}
		failed[file] = err
	}
	var removed []string
	for _, f := range files {
		gone, err := l.EditFile(f, edit(f))
		if err != nil {
			fail(f, err)
			continue
		}
		if gone {
			removed = append(removed, f)
		}
	}
	unsynced := atomicfile.SyncDirsOf(removed)
	for _, f := range removed {
		if err := unsynced[filepath.Dir(f)]; err != nil {
			fail(f, &atomicfile.UnsyncedError{Op: "removed", File: f, Err: err})
		}
	}
	return failed
}

// WriteFile replaces the key file at path atomically (atomicfile.Write),
// as EditFile does: the write of an admin command, which the admin
// index's record tells from another writer's (ownwrites.go).
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return bracket(path, func(at func(string)) error { return atomicfile.WriteSteps(path, data, perm, at) })
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
// is left in it, and records the removal in every Edits open on a
// directory above path: the store's mirror (internal/cli) tells by them
// an entry file this process removed from one it did not — an rm -r of
// the mirror under way, whose removals would otherwise be written to the
// store as the command's.
func RemoveFile(path string) error {
	if err := bracket(path, func(func(string)) error { return os.Remove(path) }); err != nil {
		return err
	}
	recordEdit(path, true)
	return nil
}

// CreateFile writes data to path, mode perm, only where no file is
// (atomicfile.Create: fs.ErrExist otherwise), and records the creation in
// every Edits open on a directory above path: the writer found the name
// free. The store's mirror (internal/cli) tells by them a new entry this
// process wrote where the store has one — its file removed by something
// else (an rm -r of the mirror under way) before the writer looked —
// from a rewrite of the entry, which it would otherwise write over the
// store's.
func CreateFile(path string, data []byte, perm fs.FileMode) error {
	err := bracket(path, func(at func(string)) error { return atomicfile.CreateSteps(path, data, perm, at) })
	if err != nil && !errors.As(err, new(*atomicfile.UnsyncedError)) {
		return err
	}
	recordEdit(path, false) // in place, even where its directory could not be synced
	return err
}

// CreateFiles is CreateFile of each of paths, with the data of the same
// index, all in one directory, synced together (atomicfile.CreateAll):
// a revocation of many keys. Each change of the directory's names it
// makes is bracketed alone, with the steps of a temporary file's making
// and filling as CreateFile's (ownwrites.go), and each file it creates
// recorded. It returns an error for each path, nil for those created,
// an *atomicfile.UnsyncedError for one created whose directory could not
// be synced.
func CreateFiles(paths []string, data [][]byte, perm fs.FileMode) []error {
	errs := atomicfile.CreateAll(paths, data, perm, bracket)
	for i, err := range errs {
		if err == nil || errors.As(err, new(*atomicfile.UnsyncedError)) {
			recordEdit(paths[i], false)
		}
	}
	return errs
}

// recordEdit notes a removal (removed) or a creation of path in every Edits
// open on a directory above it.
func recordEdit(path string, removed bool) {
	path = absPath(path)
	edits.Lock()
	defer edits.Unlock()
	for r := range edits.open {
		if !strings.HasPrefix(path, r.dir) {
			continue
		}
		e, seen := r.paths[path]
		if !seen {
			e.createdFirst = !removed
		}
		e.removed = e.removed || removed
		r.paths[path] = e
	}
}

// edits are the Edits open: one registry for the process, since the
// writers that record into it (RemoveFile, CreateFile — the store
// mirror's own removals among them, internal/cli) have no Loader to hang
// it on, and the question an Edits answers is "did this process do it?".
//
// It is per directory all the same: an edit is recorded only in the
// Edits open on a directory above its path, compared as absolute paths
// with a trailing separator, so two homes in one process (a test's, a
// program embedding two stores) never see each other's edits — not even
// a home whose name begins with the other's (TestEditsRecorded: m and
// m2). What an Edits cannot tell apart is two writers in one process
// under the same directory; its one user, the store mirror, holds the
// mirror's lock while its Edits is open (TryLock: flock, which a second
// open of the lock file in the same process does not get either), so no
// other command of the process writes there meanwhile. A directory named
// by two paths (a link) would be two directories here, an edit through
// the other name not recorded; the mirror names its entry files from the
// very path it opens its Edits on (its home is that directory), so the
// names compare equal, and keying by device and inode would add a stat
// to every edit for no case that arises.
var edits struct {
	sync.Mutex
	open map[*Edits]bool
}

// Edits are the files RemoveFile removed and CreateFile created under a
// directory since RecordEdits.
type Edits struct {
	dir   string // absolute, with a trailing separator
	paths map[string]pathEdits
}

// pathEdits is what this process did to one path since RecordEdits.
type pathEdits struct {
	createdFirst bool // its first edit was a creation (CreateFile)
	removed      bool // RemoveFile removed it, at least once
}

// RecordEdits records the files RemoveFile removes and CreateFile creates
// under dir until Close.
func RecordEdits(dir string) *Edits {
	r := &Edits{dir: absPath(dir) + string(filepath.Separator), paths: map[string]pathEdits{}}
	edits.Lock()
	defer edits.Unlock()
	if edits.open == nil {
		edits.open = map[*Edits]bool{}
	}
	edits.open[r] = true
	return r
}

// Removed says whether RemoveFile removed path since r was opened.
func (r *Edits) Removed(path string) bool {
	edits.Lock()
	defer edits.Unlock()
	return r.paths[absPath(path)].removed
}

// CreatedFirst says whether this process's first edit of path since r
// was opened was CreateFile's: it found no file there (a removal first,
// then a creation, is a file it freed itself).
func (r *Edits) CreatedFirst(path string) bool {
	edits.Lock()
	defer edits.Unlock()
	return r.paths[absPath(path)].createdFirst
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
func (r *Edits) Close() {
	edits.Lock()
	defer edits.Unlock()
	delete(edits.open, r)
}
