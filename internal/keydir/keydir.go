package keydir

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// Defaults for Config.Debounce and Config.Rescan.
const (
	DefaultDebounce = 50 * time.Millisecond
	DefaultRescan   = time.Minute
)

// Source is one place keys are read from: a single file, or a directory
// whose every visible file holds keys.
type Source struct {
	Path string
	Dir  bool
	// Revocation marks a list of refused keys: if it cannot be read, the
	// snapshot's RevocationErr is set and the stores deny every key.
	Revocation bool
}

// Problem is a file (or directory) that was skipped, and why. Line and
// Member locate the fault inside the file when it is known.
type Problem struct {
	Path       string
	Line       int
	Member     string
	Err        error
	Revocation bool // the file is part of a revocation source
}

func (p Problem) Error() string {
	where := p.Path
	if p.Line > 0 {
		where += ":" + strconv.Itoa(p.Line)
	}
	if p.Member != "" {
		return fmt.Sprintf("%s: member %q: %v", where, p.Member, p.Err)
	}
	return fmt.Sprintf("%s: %v", where, p.Err)
}

func (p Problem) Unwrap() error { return p.Err }

// problemOf turns an error about path into a Problem, keeping the line and
// member of a *jwk.ParseError.
func problemOf(path string, err error, revocation bool) *Problem {
	p := &Problem{Path: path, Err: err, Revocation: revocation}
	var pe *jwk.ParseError
	if errors.As(err, &pe) {
		p.Line, p.Member, p.Err = pe.Line, pe.Member, pe.Err
	}
	return p
}

// Config says what to read and how to turn each key into the caller's
// compact entry type T.
type Config[T any] struct {
	Sources []Source
	// Home is the top of the trust tree (the keytool home): strict modes
	// check every directory from a file up to it (trustfile.Rule). Empty:
	// each source's own parent directory is the top.
	Home string
	// NoStrictModes turns off the ownership and permission checks.
	NoStrictModes bool
	// Convert makes the caller's entry from a parsed key. An error skips the
	// whole file as a Problem; return a *jwk.ParseError to name a member.
	Convert func(src Source, path string, k *jwk.Key) (T, error)
	// OnReload, if set, is called with every new snapshot, before
	// subscribers are told. The stores build their indexes here.
	OnReload func(*Snapshot[T])
	// Logger receives problems (once per change) and watching trouble.
	Logger *slog.Logger
	// Debounce is how long events must be quiet before a reload
	// (DefaultDebounce if zero); a reload is never delayed by more than ten
	// times it.
	Debounce time.Duration
	// Rescan is the period of the full rescan that catches lost events
	// (DefaultRescan if zero, none if negative).
	Rescan time.Duration
}

// File is one file that loaded, with the entries made from its keys.
type File[T any] struct {
	Path   string
	Source int // index in Config.Sources
	Items  []T
}

// Snapshot is the immutable result of a load.
type Snapshot[T any] struct {
	Files    []*File[T] // in source order, a directory's files by name
	Problems []Problem  // files skipped, in the same order
	// RevocationErr is set when a revocation source could not be read
	// completely: a caller must then refuse every key.
	RevocationErr error
	Generation    uint64
}

// fileState is the loader's memory of one file, reused while its stat key
// (and, once read, its content hash) is unchanged.
type fileState[T any] struct {
	name    string // base name; the path for a single-file source
	path    string
	src     int // index in Config.Sources
	st      statKey
	sum     [32]byte
	read    bool // sum and file/problem come from reading the content
	file    *File[T]
	problem *Problem
	gone    bool
	old     *fileState[T] // while a read is pending: the state it replaces
	// unchecked: a new regular file seen in a directory listing, whose
	// stat and permission checks are left to the read (one syscall less
	// per file on a cold load).
	unchecked bool
}

// sourceState is what the loader knows of one source. A reload replaces
// files with a new slice and never edits one in place, and a fileState is
// not modified once a reload has ended: compare reads them without the
// lock.
type sourceState[T any] struct {
	files   []*fileState[T] // sorted by name
	problem *Problem        // about the source itself
}

// Loader reads the sources into snapshots and, once Watch is called, keeps
// the snapshot current.
type Loader[T any] struct {
	cfg Config[T]
	log *slog.Logger

	mu       sync.Mutex // serialises reloads
	states   []sourceState[T]
	fw       *fsnotify.Watcher
	failed   map[string]bool // directories that could not be watched (logged once)
	watched  map[string]os.FileInfo
	gen      uint64
	problems map[string]bool // Error() of the problems already logged

	snap atomic.Pointer[Snapshot[T]]

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}

	cancel context.CancelFunc
	done   chan struct{}

	// readFile reads a file; tests replace it to simulate I/O errors.
	readFile func(path string) ([]byte, fs.FileInfo, error)
	// addWatch, if set, replaces fsnotify's Add; tests make it fail to
	// simulate an exhausted inotify watch limit.
	addWatch func(dir string) error
	// rescanCompared, if set, is called by applyRescan before it reloads;
	// tests check that the lock is free then.
	rescanCompared func(hints)
	// compareStarted, if set, is called as a rescan starts comparing;
	// tests hold it there to check that events are served meanwhile.
	compareStarted func()
}

// New returns a loader for cfg. Nothing is read until Reload or Watch.
func New[T any](cfg Config[T]) *Loader[T] {
	srcs := make([]Source, len(cfg.Sources))
	for i, s := range cfg.Sources {
		if abs, err := filepath.Abs(s.Path); err == nil {
			s.Path = abs
		}
		srcs[i] = s
	}
	cfg.Sources = srcs
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Rescan == 0 {
		cfg.Rescan = DefaultRescan
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Loader[T]{
		cfg:      cfg,
		log:      log,
		states:   make([]sourceState[T], len(srcs)),
		failed:   map[string]bool{},
		watched:  map[string]os.FileInfo{},
		problems: map[string]bool{},
		subs:     map[chan struct{}]struct{}{},
		readFile: trustfile.Read,
	}
	l.snap.Store(&Snapshot[T]{})
	return l
}

// rule is the strict-modes rule for source i: the climb stops at the
// home, or else at the directory holding the source.
func (l *Loader[T]) rule(i int) trustfile.Rule {
	top := l.cfg.Home
	if top == "" {
		top = filepath.Dir(l.cfg.Sources[i].Path)
	}
	return trustfile.Rule{Top: top, Off: l.cfg.NoStrictModes}
}

// Sources returns the sources, with absolute paths.
func (l *Loader[T]) Sources() []Source { return slices.Clone(l.cfg.Sources) }

// Snapshot returns the current snapshot.
func (l *Loader[T]) Snapshot() *Snapshot[T] { return l.snap.Load() }

// Load reads every source once.
func Load[T any](cfg Config[T]) *Snapshot[T] {
	l := New(cfg)
	l.Reload()
	return l.Snapshot()
}

// Reload brings the snapshot up to date and returns it. With no paths it
// rescans everything (comparing stat data, re-reading only files that
// changed); with paths it re-examines only those (files, or directories in
// full). Subscribers are told if anything changed.
func (l *Loader[T]) Reload(paths ...string) *Snapshot[T] {
	h := hints{all: len(paths) == 0}
	for _, p := range paths {
		if abs, err := filepath.Abs(p); err == nil {
			h.add(abs)
		}
	}
	l.reload(h)
	return l.Snapshot()
}

// hints are the paths events named since the last reload.
type hints struct {
	all   bool
	paths map[string]struct{}
}

func (h *hints) add(p string) {
	if h.paths == nil {
		h.paths = map[string]struct{}{}
	}
	h.paths[filepath.Clean(p)] = struct{}{}
}

func (h *hints) empty() bool { return !h.all && len(h.paths) == 0 }

// isAncestor reports whether a is a proper ancestor of b.
func isAncestor(a, b string) bool {
	if a == "/" {
		return b != "/" && strings.HasPrefix(b, "/")
	}
	return strings.HasPrefix(b, a) && len(b) > len(a) && b[len(a)] == filepath.Separator
}

// full reports whether the source at path must be examined as a whole: the
// path itself, one of its ancestors, or a Kubernetes ".." entry beside it
// (or, for a directory, inside it) changed.
func (h *hints) full(path string, dir bool) bool {
	if h.all {
		return true
	}
	parent := filepath.Dir(path)
	for p := range h.paths {
		if p == path || isAncestor(p, path) {
			return true
		}
		if strings.HasPrefix(filepath.Base(p), "..") {
			if d := filepath.Dir(p); d == parent || dir && d == path {
				return true
			}
		}
	}
	return false
}

// namesIn returns the sorted names of visible files in dir that events
// named.
func (h *hints) namesIn(dir string) []string {
	var names []string
	for p := range h.paths {
		if filepath.Dir(p) == dir && !Ignored(filepath.Base(p)) {
			names = append(names, filepath.Base(p))
		}
	}
	slices.Sort(names)
	return names
}

// Ignored reports whether a directory entry is not a key file: dotfiles
// (which covers Kubernetes' ..data and ..<timestamp> entries, vim's .*.swp
// and keytool's own .*.tmp), editor backups (*~, #*#) and *.tmp files.
func Ignored(name string) bool {
	return name == "" || name[0] == '.' || strings.HasSuffix(name, "~") ||
		strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".swp") ||
		strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#")
}

// maxRescanHints is how many changed names a periodic rescan hands on
// as such; past it the change is a bulk one, and a full scan under the
// lock costs less than editing the file lists name by name.
const maxRescanHints = 256

// The periodic rescan, the safety net, has two steps. Stat-ing every file
// of a large store takes long (about half a second at 100,000 files), and
// a reload holds the lock that a reload caused by an event needs. So
// compare looks at the file system against the states as they stood,
// without the lock, and then applyRescan reloads under the lock only the
// names compare found different, as if events had named them. Watch runs
// compare on a goroutine of its own, so that its event loop goes on
// meanwhile. A change made while compare runs is seen by its events, or
// by the next rescan.

// applyRescan is the rescan's second step: reload what compare found.
func (l *Loader[T]) applyRescan(h hints) {
	if l.rescanCompared != nil {
		l.rescanCompared(h)
	}
	l.reload(h) // with nothing found, this still retries the watches that failed
}

// compare is the rescan's first step: the paths a full scan would find
// changed, or all of them when there are more than maxRescanHints.
func (l *Loader[T]) compare() hints {
	l.mu.Lock()
	states := slices.Clone(l.states) // the file lists in it are never edited in place
	l.mu.Unlock()
	if l.compareStarted != nil {
		l.compareStarted()
	}
	var h hints
	for i := range states {
		l.differences(i, &states[i], &h)
	}
	if len(h.paths) > maxRescanHints {
		h = hints{all: true}
	}
	return h
}

// differences adds to h the paths of source i that a full scan would find
// changed since st: the source itself when its own checks answer
// differently, else every name that appeared, vanished, or whose stat data
// moved. It reads only st, which no reload modifies, and the file system.
func (l *Loader[T]) differences(i int, st *sourceState[T], h *hints) {
	src := l.cfg.Sources[i]
	if !src.Dir {
		prev := lookup(st.files, src.Path)
		if l.statFile(i, src.Path, src.Path, prev, true, isLink(src.Path)) != prev {
			h.add(src.Path)
		}
		return
	}
	ok, problem := l.checkDir(i)
	if !ok || st.problem != nil {
		if !ok && sameProblem(problem, st.problem) && len(st.files) == 0 {
			return
		}
		h.add(src.Path)
		return
	}
	entries, err := os.ReadDir(src.Path)
	if err != nil {
		h.add(src.Path)
		return
	}
	pairListing(entries, st.files, func(e os.DirEntry, prev *fileState[T]) {
		path := filepath.Join(src.Path, e.Name())
		if l.statFile(i, e.Name(), path, prev, false, e.Type()&fs.ModeSymlink != 0) != prev {
			h.add(path)
		}
	}, func(gone *fileState[T]) { h.add(gone.path) })
}

// pairListing walks a directory listing (sorted by name, as os.ReadDir
// gives it) beside the states of the files as they were (sorted too): seen
// gets each visible name with its previous state, or nil; gone, if not
// nil, each previous state whose name is no longer listed.
func pairListing[T any](entries []os.DirEntry, old []*fileState[T], seen func(os.DirEntry, *fileState[T]), gone func(*fileState[T])) {
	drop := func(n int) {
		if gone != nil {
			for _, f := range old[:n] {
				gone(f)
			}
		}
		old = old[n:]
	}
	for _, e := range entries {
		name := e.Name()
		if Ignored(name) {
			continue
		}
		n := 0
		for n < len(old) && old[n].name < name {
			n++
		}
		drop(n)
		var prev *fileState[T]
		if len(old) > 0 && old[0].name == name {
			prev = old[0]
			old = old[1:]
		}
		seen(e, prev)
	}
	drop(len(old))
}

// reload applies h and publishes a new snapshot if anything changed.
func (l *Loader[T]) reload(h hints) {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := time.Now()
	if l.fw != nil && l.ensureWatches() {
		h.all = true // a directory is newly watched: files may have come before the watch
	}
	var (
		changed bool
		jobs    []*fileState[T]
	)
	before := make([][]*fileState[T], len(l.states))
	for i := range l.states {
		before[i] = l.states[i].files
	}
	for i, src := range l.cfg.Sources {
		ss := &l.states[i]
		switch {
		case src.Dir && h.full(src.Path, true):
			changed = l.scanDir(i, &jobs) || changed
		case src.Dir:
			if names := h.namesIn(src.Path); len(names) > 0 {
				changed = l.updateNames(i, names, &jobs) || changed
			}
		case h.full(src.Path, false):
			fs := l.statFile(i, src.Path, src.Path, lookup(ss.files, src.Path), true, isLink(src.Path))
			var files []*fileState[T]
			if fs != nil {
				files = []*fileState[T]{fs}
				if !fs.read {
					jobs = append(jobs, fs)
				}
			}
			changed = ss.set(files, nil) || changed
		}
	}
	if len(jobs) > 0 {
		l.runJobs(jobs)
	}
	for i := range l.states {
		if !sameFiles(before[i], l.states[i].files) {
			changed = true
		}
	}
	if !changed {
		return
	}
	l.publish(time.Since(start))
}

// lookup finds the state named name in a sorted slice.
func lookup[T any](files []*fileState[T], name string) *fileState[T] {
	i, ok := slices.BinarySearchFunc(files, name, func(f *fileState[T], n string) int { return cmp.Compare(f.name, n) })
	if ok {
		return files[i]
	}
	return nil
}

// set replaces a source's files and problem. It reports whether the
// source's problem changed; changes of the files are found by sameFiles
// once their reads are done.
func (ss *sourceState[T]) set(files []*fileState[T], problem *Problem) bool {
	changed := !sameProblem(ss.problem, problem)
	ss.files, ss.problem = files, problem
	return changed
}

// sameFiles reports whether two lists of file states give the same
// snapshot: the same files with the same entries or problems. A file whose
// stat data changed but whose content did not counts as the same.
func sameFiles[T any](a, b []*fileState[T]) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x.name != y.name || x.file != y.file || !sameProblem(x.problem, y.problem) || x.gone || y.gone {
			return false
		}
	}
	return true
}

func sameProblem(a, b *Problem) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error()
}

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
	ok, problem := l.checkDir(i)
	if !ok {
		return ss.set(nil, problem)
	}
	entries, err := os.ReadDir(src.Path)
	if err != nil {
		return ss.set(nil, problemOf(src.Path, err, src.Revocation))
	}
	files := make([]*fileState[T], 0, len(entries))
	pairListing(entries, ss.files, func(e os.DirEntry, prev *fileState[T]) {
		name := e.Name()
		path := filepath.Join(src.Path, name)
		if prev == nil && e.Type().IsRegular() {
			fs := &fileState[T]{name: path[len(path)-len(name):], path: path, src: i, unchecked: true}
			*jobs = append(*jobs, fs)
			files = append(files, fs)
			return
		}
		fs := l.statFile(i, name, path, prev, false, e.Type()&fs.ModeSymlink != 0)
		if fs == nil {
			return
		}
		if !fs.read {
			*jobs = append(*jobs, fs)
		}
		files = append(files, fs)
	}, nil)
	return ss.set(files, nil)
}

// updateNames re-examines only the named entries of a directory source.
func (l *Loader[T]) updateNames(i int, names []string, jobs *[]*fileState[T]) bool {
	src, ss := l.cfg.Sources[i], &l.states[i]
	if ss.problem != nil {
		return l.scanDir(i, jobs)
	}
	files := ss.files
	cloned := false
	for _, name := range names {
		idx, found := slices.BinarySearchFunc(files, name, func(f *fileState[T], n string) int { return cmp.Compare(f.name, n) })
		var prev *fileState[T]
		if found {
			prev = files[idx]
		}
		path := filepath.Join(src.Path, name)
		fs := l.statFile(i, name, path, prev, false, isLink(path))
		if fs == prev {
			continue
		}
		if !cloned {
			files, cloned = slices.Clone(files), true
		}
		switch {
		case fs == nil:
			files = slices.Delete(files, idx, idx+1)
		case found:
			files[idx] = fs
		default:
			files = slices.Insert(files, idx, fs)
		}
		if fs != nil && !fs.read {
			*jobs = append(*jobs, fs)
		}
	}
	if !cloned {
		return false
	}
	return ss.set(files, ss.problem)
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
		return &fileState[T]{name: name, path: path, src: i, read: true, problem: p}
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
	k := keyOf(fi)
	if err := l.rule(i).CheckFile(path, fi, link, !single); err != nil {
		return fail(err)
	}
	if prev != nil && prev.read && prev.st == k && (prev.file != nil || !isPermProblem(prev.problem)) {
		return prev
	}
	return &fileState[T]{name: path[len(path)-len(name):], path: path, src: i, st: k, old: prev}
}

// isPermProblem reports whether p came from the strict-mode rule, which
// is checked anew at every stat, not cached with the content.
func isPermProblem(p *Problem) bool {
	var pe *trustfile.PermissionError
	var le *trustfile.LinkError
	return p != nil && (errors.As(p.Err, &pe) || errors.As(p.Err, &le))
}

// runJobs reads and parses the queued files, in parallel when there are
// many.
func (l *Loader[T]) runJobs(jobs []*fileState[T]) {
	workers := min(runtime.GOMAXPROCS(0), (len(jobs)+63)/64)
	if workers <= 1 {
		for _, fs := range jobs {
			l.load(fs)
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					n := int(next.Add(1)) - 1
					if n >= len(jobs) {
						return
					}
					l.load(jobs[n])
				}
			})
		}
		wg.Wait()
	}
	// Files that vanished between stat and read are dropped (looked for
	// only when there are some: a reload of one file must not walk every
	// file's state).
	if !slices.ContainsFunc(jobs, func(f *fileState[T]) bool { return f.gone }) {
		return
	}
	for i := range l.states {
		ss := &l.states[i]
		if slices.ContainsFunc(ss.files, func(f *fileState[T]) bool { return f.gone }) {
			ss.files = slices.DeleteFunc(slices.Clone(ss.files), func(f *fileState[T]) bool { return f.gone })
		}
	}
}

// load reads and parses one file into fs, keeping the entries of the state
// it replaces when the content did not change.
func (l *Loader[T]) load(fs *fileState[T]) {
	old := fs.old
	fs.old = nil
	fs.read = true
	src := l.cfg.Sources[fs.src]
	data, fi, err := l.readFile(fs.path)
	if errors.Is(err, os.ErrNotExist) {
		if isLink(fs.path) {
			// The link's target went between stat and read: a problem
			// (failing closed in a revocation source), never "no file".
			fs.problem = problemOf(fs.path, &trustfile.LinkError{Path: fs.path, Err: err}, src.Revocation)
			return
		}
		fs.gone = true
		return
	}
	if err != nil {
		fs.problem = problemOf(fs.path, err, src.Revocation)
		return
	}
	if fi != nil {
		fs.st = keyOf(fi)
	}
	if fs.unchecked {
		fs.unchecked = false
		// Listed as a regular file, not a link, in a directory already
		// checked: the file's own mode is what is left of the rule.
		if err := l.rule(fs.src).CheckMode(fs.path, fi); err != nil {
			fs.problem = problemOf(fs.path, err, src.Revocation)
			return
		}
	}
	fs.sum = sha256.Sum256(data)
	if old != nil && old.read && old.sum == fs.sum && !isPermProblem(old.problem) && (old.file != nil || old.problem != nil) {
		fs.file, fs.problem = old.file, old.problem
		return
	}
	fs.file, fs.problem = l.parse(fs.src, fs.path, data)
}

// parse turns a file's content into entries, or a problem.
func (l *Loader[T]) parse(i int, path string, data []byte) (*File[T], *Problem) {
	src := l.cfg.Sources[i]
	keys, err := jwk.Parse(data)
	if err != nil {
		return nil, problemOf(path, err, src.Revocation)
	}
	f := &File[T]{Path: path, Source: i, Items: make([]T, 0, len(keys))}
	for n, k := range keys {
		var t T
		if l.cfg.Convert != nil {
			t, err = l.cfg.Convert(src, path, k)
			if err != nil {
				p := problemOf(path, err, src.Revocation)
				if len(keys) > 1 {
					p.Member = strings.TrimSuffix("keys["+strconv.Itoa(n)+"]."+p.Member, ".")
				}
				return nil, p
			}
		}
		f.Items = append(f.Items, t)
	}
	return f, nil
}

// publish assembles and swaps in a new snapshot, logs new problems, and
// tells subscribers.
func (l *Loader[T]) publish(took time.Duration) {
	l.gen++
	snap := &Snapshot[T]{Generation: l.gen}
	n := 0
	for i := range l.states {
		n += len(l.states[i].files)
	}
	snap.Files = make([]*File[T], 0, n)
	for i := range l.states {
		ss := &l.states[i]
		if ss.problem != nil {
			snap.Problems = append(snap.Problems, *ss.problem)
		}
		for _, fs := range ss.files {
			switch {
			case fs.problem != nil:
				snap.Problems = append(snap.Problems, *fs.problem)
			case fs.file != nil:
				snap.Files = append(snap.Files, fs.file)
			}
		}
	}
	for _, p := range snap.Problems {
		if p.Revocation {
			snap.RevocationErr = p
			break
		}
	}
	// Log each problem once, when it appears, and say when it is gone.
	seen := make(map[string]bool, len(snap.Problems))
	for _, p := range snap.Problems {
		msg := p.Error()
		seen[msg] = true
		if l.problems[msg] {
			continue
		}
		if p.Revocation {
			l.log.Error("revocation list unreadable: refusing every key until it is fixed", "file", p.Path, "error", msg)
		} else {
			l.log.Warn("skipping trust file", "file", p.Path, "error", msg)
		}
	}
	for msg := range l.problems {
		if !seen[msg] {
			l.log.Info("trust file problem resolved", "was", msg)
		}
	}
	l.problems = seen
	l.log.Debug("trust store reloaded", "files", len(snap.Files), "problems", len(snap.Problems), "took", took)
	if l.cfg.OnReload != nil {
		l.cfg.OnReload(snap)
	}
	l.snap.Store(snap)
	l.notify()
}

// Subscribe returns a channel that receives a value after each new
// snapshot (coalesced: one pending value at most), and a function that
// ends the subscription.
func (l *Loader[T]) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.subMu.Lock()
	l.subs[ch] = struct{}{}
	l.subMu.Unlock()
	return ch, func() {
		l.subMu.Lock()
		delete(l.subs, ch)
		l.subMu.Unlock()
	}
}

func (l *Loader[T]) notify() {
	l.subMu.Lock()
	defer l.subMu.Unlock()
	for ch := range l.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
