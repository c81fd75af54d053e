package keydir

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
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
	// Feed, if set, is where the entries come from instead of files (Path
	// is then the feed's Name): it is read like a directory (feed.go).
	Feed Feed
}

// SourceRef is a source as Convert and Parse are given it: the Source,
// and its index in Config.Sources (File.Source of the file the entry
// comes from). The index is what tells an entry's source: two sources may
// hold equal fields (one directory given twice, two feeds of one name).
type SourceRef struct {
	Index int
	Source
}

// Problem is a file (or directory) that was skipped, and why. Line and
// Member locate the fault inside the file when it is known. With Entry
// set, only that entry of the file was skipped: its other entries loaded
// (a file that grants trust is read entry by entry; see parse).
type Problem struct {
	Path       string
	Line       int
	Member     string
	Err        error
	Revocation bool // the file is part of a revocation source
	Entry      bool // one entry of a file that loaded, not the whole file
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
	// Convert makes the caller's entry from a parsed key, read from the
	// file path of source src. An error skips the entry as a Problem (the
	// whole file in a revocation source); return a *jwk.ParseError to
	// name a member.
	Convert func(src SourceRef, path string, k *jwk.Key) (T, error)
	// OnReload, if set, is called with every new snapshot, before
	// subscribers are told. The stores build their indexes here.
	OnReload func(*Snapshot[T])
	// Parse, if set, replaces the reading of keys: it makes a file's
	// entries from its content (an error skips the file as a Problem).
	// Convert is not called then. The identity's watcher uses it to
	// learn that its files changed (tlsbridge.WatchIdentity), so that no
	// second watcher exists.
	Parse func(src SourceRef, path string, data []byte) ([]T, error)
	// KeyOf, if set, is an entry's key (its SPKI hash): a Change then
	// counts only the keys a changed file gained and lost. It gets the
	// entry in its file's Items, never a copy (see Found).
	KeyOf func(*T) [32]byte
	// Logger receives problems (once per change) and watching trouble.
	Logger *slog.Logger
	// Debounce is how long writes into an existing file (a file being
	// rewritten in place) must be quiet before a reload (DefaultDebounce if
	// zero); such a reload is never delayed by more than ten times it.
	// Other changes (a file renamed in, created, removed) are reloaded
	// after 2 ms without events, no sooner than the last reload's
	// duration after it, and no later than Debounce after the first of
	// them.
	Debounce time.Duration
	// Rescan is the period of the full rescan that catches lost events
	// (DefaultRescan if zero, none if negative).
	Rescan time.Duration
	// ReadFile reads one key file; nil means trustfile's bounded,
	// non-blocking readers of trust files (Read, and ReadListed for a
	// file whose checks are left to the read: read.go). A reader of one's
	// own (a test's, failing on purpose) must keep their guarantees.
	ReadFile func(path string) ([]byte, fs.FileInfo, error)
	// NewWatcher, if set, makes a file watcher of the loader's own. Nil
	// means the process's shared one: one inotify instance for every
	// watching loader (sharedwatch.go).
	NewWatcher func() (*fsnotify.Watcher, error)
	// Index is the directory of the admin index (LoadFor); empty: none.
	Index string
	// Terms, if set, is what the admin index maps to an entry's file: its
	// key, and the names or addresses a command looks it up by (path is
	// the file's; it is the entry in its file's Items, never a copy).
	Terms func(path string, it *T) []Term
}

// File is one file that loaded, with the entries made from its keys.
type File[T any] struct {
	Path   string
	Source int // index in Config.Sources
	Items  []T
}

// Snapshot is the immutable result of a load.
type Snapshot[T any] struct {
	Problems []Problem // files (and entries of files) skipped, in the order of Files
	// RevocationErr is set when a revocation source could not be read
	// completely: a caller must then refuse every key.
	RevocationErr error
	Generation    uint64

	// files are the files that loaded, by source index, each source's
	// by name. A reload that changed a few files edits the previous
	// snapshot's lists (chunked: they share what did not change).
	files []chunked[*File[T]]
	flat  atomic.Pointer[[]*File[T]] // Files, made on first use
	// diffed: gone and came are the files of the snapshot of generation
	// diffBase that this one no longer has, and those it has instead,
	// as the reload that made it knew them (Diff).
	diffed     bool
	diffBase   uint64
	gone, came []*File[T]
}

// Files returns the files that loaded, in source order, a directory's
// files by name. The slice is made on first use and shared: do not
// modify it. (It costs a pointer per file, once per snapshot; what a
// reload must do in time proportional to the change walks the chunked
// lists instead.)
func (s *Snapshot[T]) Files() []*File[T] {
	if p := s.flat.Load(); p != nil {
		return *p
	}
	var out []*File[T]
	if n := s.numFiles(); n > 0 {
		out = make([]*File[T], 0, n)
		for _, c := range s.files {
			for _, ch := range c.chunks {
				out = append(out, ch...)
			}
		}
	}
	s.flat.Store(&out)
	return out
}

// numFiles is len(s.Files()), without making it.
func (s *Snapshot[T]) numFiles() int {
	n := 0
	for _, c := range s.files {
		n += c.n
	}
	return n
}

// Diff returns the files of prev that next no longer has and those next
// has instead, in the loader's order (source, then path), as DiffFiles
// does. When next was made from prev by a reload that knew what it
// changed, that is the answer, in time proportional to the change;
// otherwise the lists are compared whole.
func Diff[T any](prev, next *Snapshot[T]) (gone, came []*File[T]) {
	if next.diffed && prev.Generation == next.diffBase {
		return slices.Clone(next.gone), slices.Clone(next.came)
	}
	return DiffFiles(prev.Files(), next.Files())
}

// fileState is the loader's memory of one file, reused while its stat key
// (and, once read, its content hash) is unchanged. There is one per file
// of a directory, so its fields are ordered to fit a 112-byte allocation,
// what is rare (a problem, skipped entries, a read pending) behind one
// pointer, nil for most files (docs/design.md, "Memory of a loaded store").
type fileState[T any] struct {
	path string
	st   trustfile.Stamp
	// sum is contentSum's: it only spares the parse of content read before
	// (the same bytes under a new stamp).
	sum    [16]byte
	file   *File[T]
	rare   *rareState[T] // nil: no problem, no entry skipped, no read pending
	nameAt uint32        // name is path[nameAt:]
	src    int32         // index in Config.Sources
	read   bool          // sum and file/problem come from reading the content
	gone   bool
	// unchecked: a new regular file seen in a directory listing, whose
	// stat and permission checks are left to the read (one syscall less
	// per file on a cold load).
	unchecked bool
	// held: the read found a problem in a file written moments ago, in a
	// reload caused by events (Loader.holdFresh); old is the state to keep
	// meanwhile (nil: none), and the file is read again once events have
	// been quiet.
	held bool
}

// rareState is the part of a file's state that most files lack.
type rareState[T any] struct {
	problem *Problem
	// skipped are the entries of file that were skipped (Problem.Entry),
	// in file order.
	skipped []Problem
	old     *fileState[T] // while a read is pending: the state it replaces
}

func (f *fileState[T]) problem() *Problem {
	if f.rare == nil {
		return nil
	}
	return f.rare.problem
}

func (f *fileState[T]) skipped() []Problem {
	if f.rare == nil {
		return nil
	}
	return f.rare.skipped
}

func (f *fileState[T]) old() *fileState[T] {
	if f.rare == nil {
		return nil
	}
	return f.rare.old
}

// setRare sets the rare part (nil members: none), keeping no rareState
// when all are nil. A state is set only while its reload makes it.
func (f *fileState[T]) setRare(problem *Problem, skipped []Problem, old *fileState[T]) {
	if problem == nil && len(skipped) == 0 && old == nil {
		f.rare = nil
		return
	}
	f.rare = &rareState[T]{problem: problem, skipped: skipped, old: old}
}

func (f *fileState[T]) setProblem(p *Problem) { f.setRare(p, f.skipped(), f.old()) }
func (f *fileState[T]) setOld(old *fileState[T]) {
	f.setRare(f.problem(), f.skipped(), old)
}

// job reports whether a state from a stat goes to the reload's jobs: to
// be read, or, held at its stat (Loader.holdEarly), to be restored.
func (f *fileState[T]) job() bool { return !f.read || f.held }

// newFileState returns the state of the file name of source src, at path;
// name is the base name (path ends with it), or the path itself for a
// single-file source.
func newFileState[T any](src int, name, path string) *fileState[T] {
	return &fileState[T]{path: path, nameAt: uint32(len(path) - len(name)), src: int32(src)}
}

// name is the file's base name; the path for a single-file source.
func (f *fileState[T]) name() string { return f.path[f.nameAt:] }

// sourceState is what the loader knows of one source. A reload replaces
// files with a new list (an edited version of the last: chunked) and
// never edits one in place, and a fileState is not modified once a reload
// has ended: compare reads them without the lock.
type sourceState[T any] struct {
	files   chunked[*fileState[T]] // sorted by name
	problem *Problem               // about the source itself
	// feedGen is the generation of the feed's set that files were made
	// from (0: none; loadFeed reads the next view whole).
	feedGen uint64
}

// Loader reads the sources into snapshots and, once Watch is called, keeps
// the snapshot current.
type Loader[T any] struct {
	cfg Config[T]
	log *slog.Logger

	mu       sync.Mutex // serialises reloads
	states   []sourceState[T]
	fw       watcher
	failed   map[string]bool // directories that could not be watched (logged once)
	watched  map[string]os.FileInfo
	gen      uint64
	problems map[string]bool // Error() of the problems already logged

	snap atomic.Pointer[Snapshot[T]]

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}
	hooks map[*changeHook]struct{} // OnChange's

	keys int // entries of the trust sources in the snapshot (Change.Keys)

	// readBytes counts the bytes of key files the current reload read
	// (returnMemory).
	readBytes atomic.Int64

	// narrow, once LoadFor has set it, limits each directory source to
	// the names the admin index gave (by source index): a full reload of
	// such a source re-examines those names only.
	narrow map[int][]string
	focus  *focusedLoad[T] // LoadFor's, for Widen

	// What the current reload changed, for publish: the names that
	// updateNames and updateFeed replaced, and whether a source was
	// listed or read whole instead (full: every state is compared).
	edits []edit[T]
	full  bool

	// holdFresh, during a reload caused by events, is how recent a file's
	// mtime must be for a problem found in it to be held back (a file being
	// written); zero otherwise. Set under mu.
	holdFresh time.Duration
	// holdEarly: the reload caused by events is one applied the moment an
	// event came (hints.early). Every problem it finds is held back, the
	// trust-file rule's too: a file created with a loose mode and then
	// tightened (umask 002, then chmod) is still being written, and a
	// revocation file read at that moment must not refuse everyone. The
	// file is read again once events are quiet and judged then.
	holdEarly bool

	cancel context.CancelFunc
	done   chan struct{}

	// Four probes for tests, where no option would do (what to read and
	// how to watch are Config's): points inside the loader's own
	// concurrency, an inotify limit a test cannot exhaust for itself, and
	// the moment between a listing and a read.
	//
	// beforeRead, if set, is called with a file's path just before the
	// loader reads it; tests change the file there.
	beforeRead func(path string)
	//
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
		if s.Feed != nil {
			s.Path = filepath.Clean(s.Path)
		} else if abs, err := filepath.Abs(s.Path); err == nil {
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

// reload applies h and publishes a new snapshot if anything changed.
func (l *Loader[T]) reload(h hints) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reloadLocked(h)
}

// reloadHolding is reload for the watcher's events: a file that fails to
// load and was modified less than a second (or the debounce) ago is taken
// to be still being written, and keeps its previous state (or stays
// absent). It returns the paths of such files, to be read again once
// events have been quiet for the debounce; a file still failing a second
// after its last change is reported as any other.
func (l *Loader[T]) reloadHolding(h hints) (held []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A second at least: on a busy machine the read may come well after
	// the write it catches half done.
	l.holdFresh, l.holdEarly = max(l.cfg.Debounce, time.Second), h.early
	defer func() { l.holdFresh, l.holdEarly = 0, false }()
	return l.reloadLocked(h)
}

// reloadLocked is reload with l.mu held.
func (l *Loader[T]) reloadLocked(h hints) (held []string) {
	start := time.Now()
	if l.fw != nil && l.ensureWatches() {
		h.all = true // a directory is newly watched: files may have come before the watch
	}
	var (
		changed bool
		jobs    []*fileState[T]
	)
	l.edits, l.full = l.edits[:0], false
	before := make([]chunked[*fileState[T]], len(l.states))
	for i := range l.states {
		before[i] = l.states[i].files
	}
	for i := range l.cfg.Sources {
		changed = l.examine(i, h, &jobs) || changed
	}
	if len(jobs) > 0 {
		l.runJobs(jobs)
		held = l.restoreHeld(jobs)
	}
	if l.full {
		for i := range l.states {
			changed = changed || !sameFiles(before[i], l.states[i].files)
		}
	} else {
		for _, e := range l.edits {
			changed = changed || !sameState(e.old, lookup(l.states[e.src].files, e.name))
		}
	}
	// The first load publishes even when it found nothing: an empty
	// store is loaded (Status.Generation 1), not "not loaded yet".
	if changed || l.gen == 0 {
		l.publish(time.Since(start))
	}
	clear(l.edits) // drop the states they hold
	l.returnMemory()
	return held
}

// returnBytes is how many bytes of key files a reload reads before it
// gives the memory its parsing left behind back to the system.
const returnBytes = 4 << 20

// returnMemory, after a reload that read returnBytes or more (a cold
// load of some 20,000 keys or more), returns the memory that reading
// them left free to the operating system at once. Parsing allocates
// several times what the snapshot keeps, and the runtime would otherwise
// give it back only slowly: the process's resident set would stay at the
// load's peak, not at what the store keeps (docs/design.md, "Memory of
// a loaded store"). It costs one garbage collection, small beside such
// a load.
func (l *Loader[T]) returnMemory() {
	if l.readBytes.Swap(0) >= returnBytes {
		debug.FreeOSMemory()
	}
}

// examine re-examines source i as h says, queueing the files to read; it
// reports whether the source's listing or problem changed.
func (l *Loader[T]) examine(i int, h hints, jobs *[]*fileState[T]) bool {
	src := l.cfg.Sources[i]
	ss := &l.states[i]
	names, narrowed := l.narrow[i]
	switch {
	case src.Feed != nil:
		if h.full(src.Path, true) {
			return l.loadFeed(i)
		}
	case src.Dir && h.full(src.Path, true) && narrowed:
		l.full = true
		return l.scanNames(i, names, jobs)
	case src.Dir && h.full(src.Path, true):
		return l.scanDir(i, jobs)
	case src.Dir:
		if names := h.namesIn(src.Path); len(names) > 0 {
			return l.updateNames(i, names, jobs)
		}
	case h.full(src.Path, false):
		l.full = true
		state := l.statFile(i, src.Path, src.Path, lookup(ss.files, src.Path), true, isLink(src.Path))
		var files []*fileState[T]
		if state != nil {
			files = []*fileState[T]{state}
			if state.job() {
				*jobs = append(*jobs, state)
			}
		}
		return ss.set(chunksOf(files), nil)
	}
	return false
}

// restoreHeld puts back the previous state of every file whose read was
// held (fileState.held), and returns their paths.
func (l *Loader[T]) restoreHeld(jobs []*fileState[T]) (held []string) {
	for _, f := range jobs {
		if f.held {
			l.replaceState(f, f.old())
			held = append(held, f.path)
		}
	}
	return held
}

// replaceState puts by (nil: nothing) in the place of state f in its
// source's list.
func (l *Loader[T]) replaceState(f, by *fileState[T]) {
	ss := &l.states[f.src]
	p, found := ss.files.search(byName[T](f.name()))
	if !found || ss.files.get(p) != f {
		return
	}
	ed := ss.files.edit()
	if by != nil {
		ed.set(p, by)
	} else {
		ed.remove(p)
	}
	ss.files = ed.done()
}

// byName orders file states against name.
func byName[T any](name string) func(*fileState[T]) int {
	return func(f *fileState[T]) int { return cmp.Compare(f.name(), name) }
}

// lookup finds the state named name in a sorted list.
func lookup[T any](files chunked[*fileState[T]], name string) *fileState[T] {
	if p, ok := files.search(byName[T](name)); ok {
		return files.get(p)
	}
	return nil
}

// edit is a name of source src whose state a reload replaced: old is the
// state before it (nil: none).
type edit[T any] struct {
	src  int
	name string
	old  *fileState[T]
}

// put puts state (nil: none) in place of the state prev at p in ed
// (found: prev is there), and notes the edit for publish.
func (l *Loader[T]) put(ed *editor[*fileState[T]], p at, found bool, src int, name string, prev, state *fileState[T]) {
	if state == prev {
		return
	}
	l.edits = append(l.edits, edit[T]{src: src, name: name, old: prev})
	switch {
	case state == nil:
		ed.remove(p)
	case found:
		ed.set(p, state)
	default:
		ed.insert(p, state)
	}
}

// set replaces a source's files and problem. It reports whether the
// source's problem changed; changes of the files are found by sameFiles
// once their reads are done.
func (ss *sourceState[T]) set(files chunked[*fileState[T]], problem *Problem) bool {
	changed := !sameProblem(ss.problem, problem)
	ss.files, ss.problem = files, problem
	return changed
}

// sameFiles reports whether two lists of file states give the same
// snapshot: the same files with the same entries or problems. A file whose
// stat data changed but whose content did not counts as the same.
func sameFiles[T any](a, b chunked[*fileState[T]]) bool {
	if a.n != b.n {
		return false
	}
	bi, bj := 0, 0
	for _, ch := range a.chunks {
		for _, x := range ch {
			y := b.chunks[bi][bj]
			if bj++; bj == len(b.chunks[bi]) {
				bi, bj = bi+1, 0
			}
			if !sameState(x, y) {
				return false
			}
		}
	}
	return true
}

// sameState reports whether two states of a file (nil: none) give the
// same snapshot.
func sameState[T any](x, y *fileState[T]) bool {
	if x == y {
		return true
	}
	if x == nil || y == nil {
		return false
	}
	return x.name() == y.name() && x.file == y.file && sameProblem(x.problem(), y.problem()) && !x.gone && !y.gone
}

func sameProblem(a, b *Problem) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error()
}

// publish assembles and swaps in a new snapshot, logs new problems, and
// tells subscribers.
func (l *Loader[T]) publish(took time.Duration) {
	l.gen++
	prev := l.snap.Load()
	snap := l.editedSnapshot(prev)
	if snap == nil {
		snap = l.wholeSnapshot()
		l.logProblems(snap)
	}
	l.log.Debug("trust store reloaded", "files", snap.numFiles(), "problems", len(snap.Problems), "took", took)
	if l.cfg.OnReload != nil {
		l.cfg.OnReload(snap)
	}
	change := l.change(prev, snap, took)
	l.snap.Store(snap)
	l.subMu.Lock()
	hooks := make([]*changeHook, 0, len(l.hooks))
	for h := range l.hooks {
		hooks = append(hooks, h)
	}
	l.subMu.Unlock()
	for _, h := range hooks {
		h.fn(change)
	}
	l.notify()
}

// wholeSnapshot assembles the next snapshot from every file's state.
func (l *Loader[T]) wholeSnapshot() *Snapshot[T] {
	snap := &Snapshot[T]{Generation: l.gen, files: make([]chunked[*File[T]], len(l.states))}
	for i := range l.states {
		ss := &l.states[i]
		if ss.problem != nil {
			snap.Problems = append(snap.Problems, *ss.problem)
		}
		files := make([]*File[T], 0, ss.files.n)
		for state := range ss.files.all {
			switch {
			case state.problem() != nil:
				snap.Problems = append(snap.Problems, *state.problem())
			case state.file != nil:
				files = append(files, state.file)
				snap.Problems = append(snap.Problems, state.skipped()...)
			}
		}
		snap.files[i] = chunksOf(files)
	}
	for _, p := range snap.Problems {
		if p.Revocation {
			snap.RevocationErr = p
			break
		}
	}
	return snap
}

// editedSnapshot assembles the next snapshot by editing prev's lists of
// files with what this reload replaced (l.edits), in time proportional
// to the change. It returns nil when it cannot: a source was read whole,
// or a problem came, went or changed (problems are few, and each is
// logged as it comes and goes: the whole snapshot is assembled then).
func (l *Loader[T]) editedSnapshot(prev *Snapshot[T]) *Snapshot[T] {
	if l.full || len(prev.files) != len(l.states) || prev.Generation == 0 {
		return nil
	}
	hasProblem := func(f *fileState[T]) bool { return f != nil && (f.problem() != nil || len(f.skipped()) > 0) }
	slices.SortFunc(l.edits, func(a, b edit[T]) int {
		return cmp.Or(cmp.Compare(a.src, b.src), cmp.Compare(a.name, b.name))
	})
	snap := &Snapshot[T]{
		Generation: l.gen, Problems: prev.Problems, RevocationErr: prev.RevocationErr,
		files: slices.Clone(prev.files), diffed: true, diffBase: prev.Generation,
	}
	var ed *editor[*File[T]]
	edSrc := -1
	for _, e := range l.edits {
		now := lookup(l.states[e.src].files, e.name)
		if hasProblem(e.old) || hasProblem(now) {
			return nil
		}
		was, is := loaded(e.old), loaded(now)
		if was == is {
			continue
		}
		if e.src != edSrc {
			if ed != nil {
				snap.files[edSrc] = ed.done()
			}
			ed, edSrc = snap.files[e.src].edit(), e.src
		}
		path := cmp.Or(was, is).Path
		p, found := ed.c.search(func(f *File[T]) int { return cmp.Compare(f.Path, path) })
		if found != (was != nil) || found && ed.c.get(p) != was {
			return nil // not what the last snapshot holds: assemble it whole
		}
		switch {
		case was == nil:
			ed.insert(p, is)
		case is == nil:
			ed.remove(p)
		default:
			ed.set(p, is)
		}
		if was != nil {
			snap.gone = append(snap.gone, was)
		}
		if is != nil {
			snap.came = append(snap.came, is)
		}
	}
	if ed != nil {
		snap.files[edSrc] = ed.done()
	}
	return snap
}

// loaded is the file a state puts in a snapshot (nil: none).
func loaded[T any](f *fileState[T]) *File[T] {
	if f == nil || f.problem() != nil {
		return nil
	}
	return f.file
}

// logProblems logs each problem of snap once, when it appears, and says
// when one is gone.
func (l *Loader[T]) logProblems(snap *Snapshot[T]) {
	seen := make(map[string]bool, len(snap.Problems))
	for _, p := range snap.Problems {
		msg := p.Error()
		seen[msg] = true
		if l.problems[msg] {
			continue
		}
		switch {
		case p.Revocation:
			l.log.Error("revocation list unreadable: refusing every key until it is fixed", "file", p.Path, "error", msg)
		case p.Entry:
			l.log.Warn("skipping an entry of a trust file", "file", p.Path, "error", msg)
		default:
			l.log.Warn("skipping trust file", "file", p.Path, "error", msg)
		}
	}
	for msg := range l.problems {
		if !seen[msg] {
			l.log.Info("trust file problem resolved", "was", msg)
		}
	}
	l.problems = seen
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
