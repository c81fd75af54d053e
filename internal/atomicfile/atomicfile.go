// Package atomicfile writes files so that a reader, or a crash, never sees
// a partial file: the data goes to a temporary file in the same directory,
// which is synced and then renamed (or hard-linked) into place, and the
// directory is synced. The mode is set before the data is written.
//
// Temporary files are named ".NAME.*.tmp" (a Tag's writes:
// ".NAME.*.TAG.tmp"), which the trust stores ignore.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, mode perm.
func Write(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, os.Rename, nil)
}

// WriteSteps is Write, calling at with each step of the write (Hook's
// steps) as close to it as it can be: at StepCreated and StepPlaced
// before Hook, at StepFilled after it. The admin index tells a change of
// the directory made by this write from another writer's by it: between
// StepCreated and StepFilled — the fill and the fsync, milliseconds — the
// write changes no name in the directory (internal/keydir, ownwrites.go).
func WriteSteps(path string, data []byte, perm fs.FileMode, at func(step string)) error {
	return write(path, data, perm, os.Rename, at)
}

// WriteIf replaces path with data, mode perm, as Write does — but only if
// check, called once the new file is written and synced, just before it
// is renamed into place, returns nil. Otherwise path is left as it was,
// the temporary file is removed, and check's error is returned as it is.
//
// It is a compare-and-swap for a writer that read path and writes it
// back changed (gen --keep-key): check says whether path still holds what
// was read, as late as it can be asked. What it cannot see is a rename
// by another process landing between check's return and this rename —
// one system call apart, against the read-to-write span of the whole
// command that a check up front would leave open.
func WriteIf(path string, data []byte, perm fs.FileMode, check func() error) error {
	var refused error
	err := write(path, data, perm, func(oldpath, newpath string) error {
		if refused = check(); refused != nil {
			return refused
		}
		return os.Rename(oldpath, newpath)
	}, nil)
	if refused != nil {
		return refused
	}
	return err
}

// Create writes data to path, mode perm, unless path exists: then it fails
// with an error that satisfies errors.Is(err, fs.ErrExist) and changes
// nothing. Two processes creating the same path at once cannot both
// succeed, because the final step is a hard link, which never replaces.
func Create(path string, data []byte, perm fs.FileMode) error {
	return write(path, data, perm, os.Link, nil)
}

// CreateSteps is Create, calling at with each step as WriteSteps does.
func CreateSteps(path string, data []byte, perm fs.FileMode, at func(step string)) error {
	return write(path, data, perm, os.Link, at)
}

// WriteCache replaces path with data, mode perm, atomically but without
// syncing: for a cache that its reader checks and rebuilds when in doubt
// (a crash may leave it empty or old, never partly written), where two
// fsyncs per file would cost more than the cache saves.
func WriteCache(path string, data []byte, perm fs.FileMode) error {
	return writeFile(path, bytesFill(data), perm, os.Rename, false, nil, tempSuffix)
}

// WriteLocked replaces path with data, mode perm, without syncing, for
// a cache whose readers hold a lock while they read and rebuild it when
// a file is missing or does not check (the admin index, docs/design.md
// "The admin index"): the old file is removed before the new one is
// renamed into its place. A rename over an existing file makes ext4
// (auto_da_alloc) start writing the new file's data back before the
// rename returns, 0.1 to 2 ms each on a virtual disk against 10 µs for
// the removal and the rename. A reader without the lock may find no file
// for a moment; a crash may leave none, or an empty one, never one
// partly written over.
func WriteLocked(path string, data []byte, perm fs.FileMode) error {
	return writeFile(path, bytesFill(data), perm, removeRename, false, nil, tempSuffix)
}

// removeRename renames oldpath to newpath, removing newpath first.
func removeRename(oldpath, newpath string) error {
	if err := os.Remove(newpath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.Rename(oldpath, newpath)
}

// WriteFrom replaces path, mode perm, with what fill writes, which may be
// written piece by piece: a reader sees the old file until fill has
// returned and the new one is synced. If fill fails, path is left as it was
// and its error returned.
func WriteFrom(path string, perm fs.FileMode, fill func(io.Writer) error) error {
	return writeFile(path, fill, perm, os.Rename, true, nil, tempSuffix)
}

func write(path string, data []byte, perm fs.FileMode, place func(oldpath, newpath string) error, at func(step string)) error {
	return writeFile(path, bytesFill(data), perm, place, true, at, tempSuffix)
}

// bytesFill writes data, for writeFile.
func bytesFill(data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}

// split returns path's directory ("." for none) and name.
func split(path string) (dir, name string) {
	dir, name = filepath.Split(path)
	return filepath.Clean(dir), name // "" is "."; no trailing separator: SyncDir's callers compare it
}

// The temporary file of a write of NAME is tempPrefix(NAME), the random
// digits of os.CreateTemp, then tempSuffix (RemoveStale knows it so).
func tempPrefix(name string) string { return "." + name + "." }

const tempSuffix = ".tmp"

// writeFile writes path through a temporary file, named with suffix
// after the random digits (tempSuffix, or a Tag's); at, if not nil, is
// called at each step (WriteSteps).
func writeFile(path string, fill func(io.Writer) error, perm fs.FileMode, place func(oldpath, newpath string) error, sync bool, at func(step string), suffix string) (err error) {
	if at == nil {
		at = func(string) {}
	}
	dir, name := split(path)
	tmp, err := os.CreateTemp(dir, tempPrefix(name)+"*"+suffix)
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
		os.Remove(tmpName) // when the file was not placed: after a rename or a link the name is gone
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	at(StepCreated)
	Hook(StepCreated, path)
	if err := fill(tmp); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Path == tmpName {
			return fmt.Errorf("writing %s: %w", path, pe.Err) // not the temporary file's name
		}
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp = nil
	Hook(StepFilled, path)
	at(StepFilled)
	if err := place(tmpName, path); err != nil {
		return placeError(path, err)
	}
	// After a link the temporary name is removed before the directory is
	// synced, so that the sync makes both durable: removed after it, the
	// name could survive a power loss (ext4 commits the removal up to 5 s
	// later) as a second link to the file — a private key that outlives
	// its removal by a later rotation. A crash before the sync may still
	// leave a temporary file, as any write can: mode perm from its first
	// byte (0600 while empty), a dotfile that no trust store reads.
	os.Remove(tmpName)
	at(StepPlaced)
	Hook(StepPlaced, path)
	if !sync {
		return nil
	}
	if err := SyncDir(dir); err != nil {
		return &UnsyncedError{Op: "wrote", File: path, Err: err}
	}
	return nil
}

// placeError is the error of a failure to place path (a rename or a
// link of its temporary file): for a file already there, one that
// satisfies errors.Is(err, fs.ErrExist), as Create promises.
func placeError(path string, err error) error {
	var le *os.LinkError
	if errors.As(err, &le) {
		err = le.Err
	}
	if errors.Is(err, fs.ErrExist) {
		return &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
	}
	return fmt.Errorf("writing %s: %w", path, err)
}

// The steps of a write at which Hook is called.
const (
	StepCreated = "created" // the temporary file exists, empty, with its mode
	StepFilled  = "filled"  // it is complete and closed, not yet in place
	StepPlaced  = "placed"  // path is the new file, its directory not yet synced (where the write syncs it)
)

// Hook is called at each step of every write, with the path written. It
// does nothing, except in the tests' keytool processes: there it may stop
// the process at a chosen step of a chosen write, for the test to kill it
// there (internal/cli's TestMain and TestKillAtEveryWrite), so that a
// kill inside a write is tested at each step, not left to a random delay.
var Hook = func(step, path string) {}

// UnsyncedError is a file written or removed (Op) whose directory could
// not be synced: the change is made, and readers see it, but a power
// loss may undo it. A caller says so rather than "done" or "not done".
type UnsyncedError struct {
	Op   string // "wrote", "removed"
	File string
	Err  error
}

func (e *UnsyncedError) Error() string {
	return fmt.Sprintf("%s %s, but its directory could not be synced, so this may not survive a power loss: %v", e.Op, e.File, e.Err)
}

func (e *UnsyncedError) Unwrap() error { return e.Err }

// syncDir makes a rename or link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// SyncDir makes the renames, links and removals done in dir durable (a
// rotation of the identity renames files rather than writing them; a
// removal of a trusted key, a pending invitation or a CA must not come
// back after a power loss, as it may for seconds: ext4 commits a change
// of names within five). A variable, so that a test sees when it is
// called.
var SyncDir = syncDir

// SyncDirsOf makes the changes of names of files durable (removals,
// most often): the directory of each is synced (SyncDir) once, in the
// order the files first name it. It returns the error of each directory
// that could not be synced, nil if none was refused.
func SyncDirsOf(files []string) map[string]error {
	var failed map[string]error
	done := map[string]bool{}
	for _, f := range files {
		d := filepath.Dir(f)
		if done[d] {
			continue
		}
		done[d] = true
		if err := SyncDir(d); err != nil {
			if failed == nil {
				failed = map[string]error{}
			}
			failed[d] = err
		}
	}
	return failed
}

// syncFSOver is how many files Sync leaves to one syncfs(2) of their file
// system rather than an fsync each: a mirror rebuilt writes 100,000 files,
// whose fsyncs one by one would take minutes on a virtual disk.
const syncFSOver = 64

// Sync makes files written without syncing (WriteCache, or plain writes)
// durable, then the directories that name them (dirs: every directory a
// file was written, renamed or removed in), so that a record written
// after it — a cache's manifest claiming those files — never survives a
// power loss that the files do not. Many files are synced with one
// syncfs(2) of dirs[0]'s file system where there is one (Linux), which
// covers the directories too.
func Sync(dirs, files []string) error {
	first := ""
	if len(dirs) > 0 {
		first = dirs[0]
	}
	if all, err := syncData(first, files); all || err != nil {
		return err
	}
	for _, dir := range dirs {
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("syncing %s: %w", dir, err)
		}
	}
	return nil
}

// syncData makes the data of files durable: with one syncfs(2) of the
// file system of fsDir (all true: everything on it is synced, its
// directories too) where there are more than syncFSOver files and the
// system has the call, else — or where syncfs fails: it reports a
// write-back error of any file of the file system, not only of these —
// with an fsync of each. A file removed since it was written is left
// out: the sync of its directory makes the removal durable.
func syncData(fsDir string, files []string) (all bool, err error) {
	if len(files) > syncFSOver && fsDir != "" {
		if ok, err := syncFS(fsDir); ok && err == nil {
			return true, nil
		}
	}
	for _, path := range files {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return false, fmt.Errorf("syncing %s: %w", path, err)
		}
	}
	return false, nil
}

// Remove removes those of files that exist, all in one directory, and
// makes the removals durable (SyncDir) before it returns, so that a write
// after it — a key written after the public halves of the key it
// replaces are gone — never survives a power loss the removals do not.
// It returns the files it removed; the error of a removal names its file
// (*fs.PathError), and the files after it are left.
func Remove(files []string) (removed []string, err error) {
	for _, p := range files {
		switch err := os.Remove(p); {
		case err == nil:
			removed = append(removed, p)
		case !errors.Is(err, fs.ErrNotExist):
			return removed, err
		}
	}
	if len(removed) > 0 {
		if err := syncDir(filepath.Dir(removed[0])); err != nil {
			return removed, err
		}
	}
	return removed, nil
}
