package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// createAllChunk is how many files CreateAll has made and not yet placed
// at most: the temporary files a crash in its midst can leave behind,
// and the files one sync of their data covers.
const createAllChunk = 256

// CreateAll is Create of each of paths, with the data of the same index,
// mode perm — all of them in one directory — syncing them together
// rather than each: the temporary files are made and filled, their data
// synced at once (syncData: one syncfs(2) where there are more than
// syncFSOver), then each is linked into place, and the directory is
// synced once at the end. A file is placed only once its data is
// durable, as Create's are; a crash before the end may leave some of
// the files in place and temporary files behind (a Create's may leave
// one). With an fsync of each file and of the directory after each link,
// a revocation of 20,000 keys took 12.6–15.6 s, 8–11 of them in the
// kernel; 1.5 s so.
//
// change, if not nil, runs each change that CreateAll makes to the
// directory's names — a temporary file made and filled (do calls at with
// StepCreated once it is made, StepFilled once it is filled and closed,
// as WriteSteps does: no name changes between the two); a file placed
// and its temporary name removed (no steps); a temporary file removed
// after its data could not be synced (no steps) — given the file's path
// and the change to make, and returns its error: the admin index
// brackets each with the directory's stamps (internal/keydir,
// CreateFiles). Hook is called at each step of each file: StepCreated as
// the file's temporary is made, StepFilled once its data is synced,
// StepPlaced once it is in place.
//
// It returns an error for each path, nil for the files it created: one
// that satisfies errors.Is(err, fs.ErrExist) where a file was there
// already, which is left as it was; an *UnsyncedError for a file placed
// whose directory could not be synced. A path given twice is written as
// two Creates in turn would: the first's data, the second fs.ErrExist.
func CreateAll(paths []string, data [][]byte, perm fs.FileMode, change func(path string, do func(at func(step string)) error) error) []error {
	if change == nil {
		change = func(_ string, do func(func(string)) error) error { return do(func(string) {}) }
	}
	errs := make([]error, len(paths))
	if len(paths) == 0 {
		return errs
	}
	dir, _ := split(paths[0])
	var placed []int
	for start := 0; start < len(paths); start += createAllChunk {
		end := min(start+createAllChunk, len(paths))
		temps := make(map[int]string, end-start)
		var made []string
		for i := start; i < end; i++ {
			if d, _ := split(paths[i]); d != dir {
				errs[i] = fmt.Errorf("writing %s: not in %s, the directory of the files written with it", paths[i], dir)
				continue
			}
			errs[i] = change(paths[i], func(at func(string)) error {
				tmp, err := makeTemp(paths[i], data[i], perm, at)
				if tmp != "" {
					temps[i] = tmp
					made = append(made, tmp)
				}
				return err
			})
		}
		if _, err := syncCreated(dir, made); err != nil {
			for i := start; i < end; i++ {
				if tmp, ok := temps[i]; ok {
					errs[i] = fmt.Errorf("writing %s: %w", paths[i], err)
					change(paths[i], func(func(string)) error { return os.Remove(tmp) })
				}
			}
			continue
		}
		for i := start; i < end; i++ {
			if _, ok := temps[i]; ok {
				Hook(StepFilled, paths[i])
			}
		}
		for i := start; i < end; i++ {
			tmp, ok := temps[i]
			if !ok {
				continue
			}
			if errs[i] = change(paths[i], func(func(string)) error { return link(tmp, paths[i]) }); errs[i] == nil {
				placed = append(placed, i)
				Hook(StepPlaced, paths[i])
			}
		}
	}
	if len(placed) > 0 {
		if err := SyncDir(dir); err != nil {
			for _, i := range placed {
				errs[i] = &UnsyncedError{Op: "wrote", File: paths[i], Err: err}
			}
		}
	}
	return errs
}

// syncCreated is syncData, for CreateAll's temporary files; a test looks
// at the directory at that moment.
var syncCreated = syncData

// makeTemp makes the temporary file of a Create of path, mode perm from
// its first byte, and writes data to it, unsynced, calling at with the
// steps as writeFile does. It returns its name, or "" and the error
// (nothing left behind).
func makeTemp(path string, data []byte, perm fs.FileMode, at func(step string)) (string, error) {
	dir, name := split(path)
	tmp, err := os.CreateTemp(dir, tempPrefix(name)+"*"+tempSuffix)
	if err != nil {
		return "", err
	}
	err = tmp.Chmod(perm)
	if err == nil {
		at(StepCreated)
		Hook(StepCreated, path)
		_, err = tmp.Write(data)
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("writing %s: %w", path, pe.Err) // not the temporary file's name
		}
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("writing %s: %w", path, cerr)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	at(StepFilled)
	return tmp.Name(), nil
}

// link links the temporary file tmp to path, where no file is, and
// removes the temporary name, as Create places its file (the name gone
// before the directory's sync: writeFile says why).
func link(tmp, path string) error {
	err := os.Link(tmp, path)
	os.Remove(tmp)
	if err != nil {
		return placeError(path, err)
	}
	return nil
}
