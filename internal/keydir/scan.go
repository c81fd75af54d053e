package keydir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/keytool/keytool/internal/trustfile"
)

// checkDir stats source directory i and applies the strict-mode rule to
// it and every directory above it up to the home. It returns ok=false with
// a nil problem when the directory does not exist.
func (l *Loader[T]) checkDir(i int) (ok bool, problem *Problem) {
	src := l.cfg.Sources[i]
	fi, err := os.Stat(src.Path)
	if errors.Is(err, fs.ErrNotExist) {
		if isLink(src.Path) {
			return false, problemOf(src.Path, &trustfile.LinkError{Path: src.Path, Err: err}, src.Revocation)
		}
		return false, nil
	}
	if err != nil {
		return false, problemOf(src.Path, err, src.Revocation)
	}
	if !fi.IsDir() {
		return false, problemOf(src.Path, errors.New("is not a directory"), src.Revocation)
	}
	if err := l.rule(i).CheckDir(src.Path); err != nil {
		return false, problemOf(src.Path, err, src.Revocation)
	}
	return true, nil
}

// isLink reports whether path is a symbolic link (false if it cannot be
// told).
func isLink(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}

// scanDir re-lists a directory source, reusing the states of files whose
// stat data did not change and queueing reads for the others.
func (l *Loader[T]) scanDir(i int, jobs *[]*fileState[T]) bool {
	src, ss := l.cfg.Sources[i], &l.states[i]
	l.full = true
	ok, problem := l.checkDir(i)
	if !ok {
		return ss.set(chunked[*fileState[T]]{}, problem)
	}
	entries, err := os.ReadDir(src.Path)
	if err != nil {
		return ss.set(chunked[*fileState[T]]{}, problemOf(src.Path, err, src.Revocation))
	}
	files := make([]*fileState[T], 0, len(entries))
	pairListing(entries, ss.files.flat(), func(e os.DirEntry, prev *fileState[T]) {
		name := e.Name()
		path := filepath.Join(src.Path, name)
		if prev == nil && e.Type().IsRegular() {
			state := newFileState[T](i, name, path)
			state.unchecked = true
			*jobs = append(*jobs, state)
			files = append(files, state)
			return
		}
		state := l.statFile(i, name, path, prev, false, e.Type()&fs.ModeSymlink != 0)
		if state == nil {
			return
		}
		if !state.read {
			*jobs = append(*jobs, state)
		}
		files = append(files, state)
	}, nil)
	return ss.set(chunksOf(files), nil)
}

// scanNames is scanDir for a source narrowed to some of its names (by the
// admin index): the directory is checked as scanDir checks it, and only
// those names are examined.
func (l *Loader[T]) scanNames(i int, names []string, jobs *[]*fileState[T]) bool {
	ss := &l.states[i]
	ok, problem := l.checkDir(i)
	if !ok {
		return ss.set(chunked[*fileState[T]]{}, problem)
	}
	changed := ss.set(ss.files, nil)
	return l.updateNames(i, names, jobs) || changed
}

// updateNames re-examines only the named entries of a directory source.
func (l *Loader[T]) updateNames(i int, names []string, jobs *[]*fileState[T]) bool {
	src, ss := l.cfg.Sources[i], &l.states[i]
	if ss.problem != nil {
		return l.scanDir(i, jobs)
	}
	var ed *editor[*fileState[T]] // made at the first change: a new version of the list
	for _, name := range names {
		files := ss.files
		if ed != nil {
			files = ed.c
		}
		p, found := files.search(byName[T](name))
		var prev *fileState[T]
		if found {
			prev = files.get(p)
		}
		path := filepath.Join(src.Path, name)
		state := l.statFile(i, name, path, prev, false, isLink(path))
		if state == prev {
			continue
		}
		if ed == nil {
			ed = ss.files.edit()
		}
		l.put(ed, p, found, i, name, prev, state)
		if state != nil && !state.read {
			*jobs = append(*jobs, state)
		}
	}
	if ed == nil {
		return false
	}
	return ss.set(ed.done(), ss.problem)
}

// statFile examines one file; link says whether path is a symbolic link.
// It returns nil if the file does not exist or is to be skipped silently
// (a directory inside a directory source); prev itself if nothing
// changed; otherwise a new state, which needs a read unless it already
// holds a problem. A link to nothing is a problem, never "no file": in a
// revocation source it must fail closed.
func (l *Loader[T]) statFile(i int, name, path string, prev *fileState[T], single, link bool) *fileState[T] {
	src := l.cfg.Sources[i]
	fail := func(err error) *fileState[T] {
		p := problemOf(path, err, src.Revocation)
		if prev != nil && prev.file == nil && sameProblem(prev.problem, p) {
			return prev
		}
		state := newFileState[T](i, name, path)
		state.read, state.problem = true, p
		return state
	}
	fi, err := os.Stat(path) // follows symlinks: Kubernetes' visible names are links into ..data
	if errors.Is(err, fs.ErrNotExist) {
		if link && isLink(path) {
			return fail(&trustfile.LinkError{Path: path, Err: err})
		}
		return nil
	}
	if err != nil {
		return fail(err)
	}
	if fi.IsDir() {
		if single {
			return fail(errors.New("is a directory, not a key file"))
		}
		return nil
	}
	if !fi.Mode().IsRegular() {
		return fail(trustfile.ErrNotRegular)
	}
	k := trustfile.StampOf(fi)
	if err := l.rule(i).CheckFile(path, fi, link, !single); err != nil {
		return fail(err)
	}
	if prev != nil && prev.read && prev.st == k && (prev.file != nil || !isPermProblem(prev.problem)) {
		return prev
	}
	state := newFileState[T](i, name, path)
	state.st, state.old = k, prev
	return state
}

// isPermProblem reports whether p came from the strict-mode rule, which
// is checked anew at every stat, not cached with the content.
func isPermProblem(p *Problem) bool {
	var (
		pe *trustfile.PermissionError
		le *trustfile.LinkError
		ce *trustfile.ChangedError
	)
	return p != nil && (errors.As(p.Err, &pe) || errors.As(p.Err, &le) || errors.As(p.Err, &ce))
}
