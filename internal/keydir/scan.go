package keydir

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

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

// scanDir re-lists a directory source, reusing the rows of files whose
// stat data did not change, reading its new regular files itself, a lot
// at a time (newFiles, foldNew), and queueing reads for the others (and
// the new files past the last whole lot).
func (l *Loader[T]) scanDir(i int, jobs *[]*fileState[T]) bool {
	src, ss := l.cfg.Sources[i], &l.states[i]
	l.full = true
	ok, problem := l.checkDir(i)
	if !ok {
		return ss.set(rowList[T]{}, problem)
	}
	entries, err := listSorted(src.Path)
	if err != nil {
		return ss.set(rowList[T]{}, problemOf(src.Path, err, src.Revocation))
	}
	rows := newBuilder[rowRefs[T], rowData](entries.len())
	var news newFiles[T]
	pairListing(entries, ss.files, &l.numbers, ss.nameAt, func(e dirEntry, prev *fileRow[T]) {
		name := e.name
		path := pathIn(src.Path, name)
		if prev == nil && e.typ.IsRegular() {
			state := newFileState[T](i, path)
			state.unchecked = true
			r := state.pendingRow()
			news.states, news.at = append(news.states, state), append(news.at, rows.add(r.rowRefs, r.rowData))
			if len(news.states) == newFilesRead {
				l.foldNew(ss, &news, rows)
			}
			return
		}
		state, same, _ := l.statFile(i, ss, name, path, prev, false, e.typ&fs.ModeSymlink != 0, l.holdEarly)
		if r, ok := l.rowAfterStat(ss, prev, state, same, jobs); ok {
			rows.add(r.rowRefs, r.rowData)
		}
	}, nil)
	// The last lot, short (every new file of a small directory), goes
	// with the reload's reads, in parallel with other sources' files.
	*jobs = append(*jobs, news.states...)
	return ss.set(l.withoutPending(ss, rows.done(), news.dropped), nil)
}

// newFilesRead is how many new files a listing reads at a time
// (newFiles): some 0.8 MB of their states where a T is 32 bytes. Fewer
// go with the reload's other reads.
const newFilesRead = 4096

// newFiles are the new regular files a listing found (scanDir) that it
// has not read yet: their states, each at its place in the listing's
// rows (at), as a pending row. A listing reads them newFilesRead at a
// time and folds each into its row, rather than queueing them for the
// reload's reads with the rest: a cold load would otherwise hold the
// state of every file at once, from the listing to the fold — most of
// its live heap, which the collector's goal doubles into the load's peak
// resident set (docs/design.md, "Memory of a loaded store", step 6).
type newFiles[T any] struct {
	states []*fileState[T]
	at     []at
	// dropped are the states of files gone (or held with nothing to
	// keep), whose pending rows scanDir removes once the list is made.
	dropped []*fileState[T]
}

// foldNew reads the states of news and puts the row each read made in
// place of its pending row, as fold does with the reload's jobs.
func (l *Loader[T]) foldNew(ss *sourceState[T], news *newFiles[T], rows *builder[rowRefs[T], rowData]) {
	l.runJobs(news.states)
	if !ss.hasDir {
		ss.dir, ss.hasDir = commonestDir(news.states)
	}
	for k, f := range news.states {
		if r := l.folded(ss, f, &l.scanHeld); f.dropped() {
			news.dropped = append(news.dropped, f)
		} else {
			rows.put(news.at[k], r.rowRefs, r.rowData)
		}
	}
	clear(news.states)
	news.states, news.at = news.states[:0], news.at[:0]
}

// dirEntry is a name listed in a directory source, with the type of
// file the listing gave for it (fs.FileMode.Type: a symbolic link is
// listed as one).
type dirEntry struct {
	name string
	typ  fs.FileMode
}

// sortedListing is a directory's names sorted, as listSorted gives them: the
// names' bytes packed in blocks, and for each name 8 bytes that say where
// it is and its type. A listing of a million files is held whole (it is
// sorted, then walked beside the rows: pairListing), and as a dirEntry a
// name was 24 bytes and its own allocation of 16 or more — some 40 MB
// live at a million files, the most of a cold load's heap, which the
// collector's goal doubles into its peak (docs/design.md, "Memory of a
// loaded store", step 6).
type sortedListing struct {
	blocks [][]byte // up to listingBlock bytes each, never appended past
	names  []listedAt
}

// listedAt is where a listing holds a name: its block and offset (at:
// block<<16 | offset) and length, and its type (fs.FileMode.Type, whose
// bits are all above the low 16, shifted down).
type listedAt struct {
	at  uint32
	n   uint16
	typ uint16
}

// listingBlock is the most a listing's block of names holds: offsets in a
// block, and names' lengths, fit 16 bits, and 65,536 blocks hold 4 GiB of
// names. (A file's name is at most 255 bytes on Linux, 765 on macOS.)
const listingBlock = 1 << 16

// firstListingBlock is the size of a listing's first block; each next
// is twice the one before, up to listingBlock.
const firstListingBlock = 4 << 10

// errListingTooLarge is a listing's refusal of a name of 64 KiB or more,
// or of names past 4 GiB; neither is a directory of trust files.
var errListingTooLarge = errors.New("too many names, or a name too long, to list")

// add appends a name and its type to the listing, unsorted.
// An empty name takes no bytes, nor a block: it is said by its length
// alone (at 0), as an offset of a full block's end would not fit 16 bits.
func (ls *sortedListing) add(name string, typ fs.FileMode) error {
	if len(name) >= listingBlock {
		return errListingTooLarge
	}
	t := uint16(typ.Type() >> 16)
	if name == "" {
		ls.names = append(ls.names, listedAt{typ: t})
		return nil
	}
	last := len(ls.blocks) - 1
	if last < 0 || len(ls.blocks[last])+len(name) > cap(ls.blocks[last]) {
		if len(ls.blocks) == 1<<16 {
			return errListingTooLarge
		}
		// The first blocks are smaller (4, 8, 16, 32 KiB): a directory
		// of a few files, listed at each rescan, takes a few KiB.
		size := listingBlock
		if n := len(ls.blocks); n < 4 {
			size = max(len(name), firstListingBlock<<n)
		}
		ls.blocks = append(ls.blocks, make([]byte, 0, size))
		last++
	}
	b := ls.blocks[last]
	ls.names = append(ls.names, listedAt{at: uint32(last)<<16 | uint32(len(b)), n: uint16(len(name)), typ: t})
	ls.blocks[last] = append(b, name...)
	return nil
}

// len is the number of names listed.
func (ls *sortedListing) len() int { return len(ls.names) }

// entry is the listing's i'th name and its type. The name is the bytes
// of the listing's block, which are never written again: it stays valid
// as long as it is held, but keeps the whole 64 KiB block alive, so
// nothing keeps it past the walk of the listing — what is kept is a copy
// (pathIn's path, from a directory never "": New makes it absolute).
func (ls *sortedListing) entry(i int) dirEntry {
	e := ls.names[i]
	return dirEntry{name: ls.name(e), typ: fs.FileMode(e.typ) << 16}
}

// name is the name e says where to find.
func (ls *sortedListing) name(e listedAt) string {
	if e.n == 0 {
		return ""
	}
	b := ls.blocks[e.at>>16]
	return unsafe.String(&b[e.at&0xffff], int(e.n))
}

// listSorted lists dir sorted by name, as os.ReadDir does, for less: a full
// scan lists before it reads, one goroutine alone, and at 100,000 files
// os.ReadDir's sort, which compares through two interface calls, took
// as long as the system calls that list (docs/benchmarks.md, "Cold start
// to the first admitted handshake").
func listSorted(dir string) (*sortedListing, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A batch at a time: os.ReadDir's entries (64 bytes each with their
	// slot, the name apart) were live all at once beside the list, some
	// 64 MB at a million files, which the collector's goal doubled into
	// a cold load's peak.
	ls := new(sortedListing)
	for {
		ents, err := f.ReadDir(1024)
		for _, e := range ents {
			if err := ls.add(e.Name(), e.Type()); err != nil {
				return nil, err
			}
		}
		if err == io.EOF {
			sortByName(ls)
			return ls, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// sortByName sorts the names of a listing (a directory holds a name
// once). Many are sorted in two halves at once, then merged: the listing
// holds one core while the other waits, and sorting 100,000 names was a
// third of it (docs/benchmarks.md, "Cold start to the first admitted
// handshake").
func sortByName(ls *sortedListing) {
	byName := func(a, b listedAt) int { return strings.Compare(ls.name(a), ls.name(b)) }
	list := ls.names
	if len(list) < parallelSort || runtime.GOMAXPROCS(0) < 2 {
		slices.SortFunc(list, byName)
		return
	}
	a, b := list[:len(list)/2], list[len(list)/2:]
	var wg sync.WaitGroup
	wg.Go(func() { slices.SortFunc(a, byName) })
	slices.SortFunc(b, byName)
	wg.Wait()
	out := make([]listedAt, 0, len(list))
	for len(a) > 0 && len(b) > 0 {
		if ls.name(a[0]) < ls.name(b[0]) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	ls.names = append(append(out, a...), b...)
}

// parallelSort is the length of a listing from which sortByName sorts
// its halves at once.
const parallelSort = 8192

// pathIn is the path of the listed name in the clean directory dir: what
// filepath.Join gives, without cleaning a path that is clean already (a
// listed name is never empty, ".", ".." or holds a separator).
func pathIn(dir, name string) string {
	if dir == "" {
		return name
	}
	if os.IsPathSeparator(dir[len(dir)-1]) {
		return dir + name
	}
	return dir + string(filepath.Separator) + name
}

// scanNames is scanDir for a source narrowed to some of its names (by the
// admin index): the directory is checked as scanDir checks it, and only
// those names are examined.
func (l *Loader[T]) scanNames(i int, names []string, jobs *[]*fileState[T]) bool {
	ss := &l.states[i]
	ok, problem := l.checkDir(i)
	if !ok {
		l.full = true
		return ss.set(rowList[T]{}, problem)
	}
	// The directory passing as it did before, what changed is the edits
	// of the names examined (updateNames); a problem gone, the rows it
	// dropped come back whole (examine gives every narrowed name then).
	changed := ss.set(ss.files, nil)
	if changed {
		l.full = true
	}
	return l.updateNames(i, names, jobs) || changed
}

// updateNames re-examines only the named entries of a directory source.
func (l *Loader[T]) updateNames(i int, names []string, jobs *[]*fileState[T]) bool {
	src, ss := l.cfg.Sources[i], &l.states[i]
	// Each name once: a name given twice (Extend adds the files the index
	// finds to those it had) would make two reads of one file, the
	// second's previous state the first, read at the same time.
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	// Only names of the directory's own entries: the names come from the
	// admin index, which a damaged or hand-made one could fill with
	// "../x" (a file outside the directory) or "./x" (which cleans to a
	// name not its row's, leaving a pending row in a published list).
	names = slices.DeleteFunc(names, func(n string) bool { return Ignored(n) || filepath.Base(n) != n })
	if ss.problem != nil {
		return l.scanDir(i, jobs)
	}
	var ed *rowEditor[T] // made at the first change: a new version of the list
	for _, name := range names {
		l.examineRow(i, &ed, name, filepath.Join(src.Path, name), false, jobs)
	}
	if ed == nil {
		return false
	}
	return ss.set(ed.done(), ss.problem)
}

// examineRow examines the file name (at path; single: a single-file
// source) of source i, whose list is ss.files or, once *ed is made, the
// editor's: where its row changes, it makes the editor (*ed, a new
// version of the list) and puts the new row in as an edit (put).
func (l *Loader[T]) examineRow(i int, ed **rowEditor[T], name, path string, single bool, jobs *[]*fileState[T]) {
	ss := &l.states[i]
	files := ss.files
	if *ed != nil {
		files = (*ed).c
	}
	p, found := files.search(byName(&l.numbers, ss.nameAt, name))
	var prev *fileRow[T]
	if found {
		r := rowAt(files, p) // a copy: the editor may move or write the rows it owns
		prev = &r
	}
	state, same, _ := l.statFile(i, ss, name, path, prev, single, isLink(path), l.holdEarly)
	if same {
		return
	}
	if *ed == nil {
		*ed = ss.files.edit()
	}
	var row *fileRow[T]
	if state != nil {
		r := l.place(ss, state, jobs)
		row = &r
	}
	l.put(*ed, p, found, i, name, prev, row)
}

// statFile examines one file of source i, whose state ss is (prev its
// row, nil: none); link says whether path is a symbolic link. same reports
// that the file's row stays as it is: prev, or none when prev is nil.
// Otherwise state is nil if the file does not exist or is to be skipped
// silently (a directory inside a directory source of keys: one inside a
// revocation source is a problem), or a new state, which
// needs a read unless it already holds a problem. A link to nothing is a
// problem, never "no file": in a revocation source it must fail closed.
// hold says whether a problem found here is held back (Loader.holdEarly):
// the reload's, passed in because compare stats files without the lock.
// (A file held back too long already is not: Loader.heldTooLong, asked
// only when hold, under the lock.)
// fi is the file's information where it stat-ed a regular file (the
// rescan tells by it a file written through another path: rescanWait).
func (l *Loader[T]) statFile(i int, ss *sourceState[T], name, path string, prev *fileRow[T], single, link, hold bool) (state *fileState[T], same bool, fi fs.FileInfo) {
	src := l.cfg.Sources[i]
	fail := func(err error) (*fileState[T], bool, fs.FileInfo) {
		p := problemOf(path, err, src.Revocation)
		if prev != nil && prev.num == 0 && sameProblem(prev.problem(), p) {
			return nil, true, nil
		}
		state := newFileState[T](i, path)
		state.read = true
		state.problem = p
		if hold && !l.heldTooLong(path) {
			state.held = true
			state.old = heapRow(prev) // see Loader.holdEarly
		}
		return state, false, nil
	}
	fi, err := os.Stat(path) // follows symlinks: Kubernetes' visible names are links into ..data
	if errors.Is(err, fs.ErrNotExist) {
		if link && isLink(path) {
			return fail(&trustfile.LinkError{Path: path, Err: err})
		}
		return nil, prev == nil, nil
	}
	if err != nil {
		return fail(err)
	}
	if fi.IsDir() {
		switch {
		case single:
			return fail(errors.New("is a directory, not a key file"))
		case src.Revocation:
			return fail(&RevocationSubdirectoryError{Path: path})
		}
		return nil, prev == nil, nil
	}
	if !fi.Mode().IsRegular() {
		return fail(trustfile.ErrNotRegular)
	}
	k := trustfile.StampOf(fi)
	if err := l.rule(i).CheckFile(path, fi, link, !single); err != nil {
		return fail(err)
	}
	if prev != nil && ss.stamp(prev) == k && (prev.num != 0 || !isPermProblem(prev.problem())) {
		return nil, true, fi
	}
	state = newFileState[T](i, path)
	state.st = k
	state.old = heapRow(prev)
	return state, false, fi
}

// isPermProblem reports whether p came from the strict-mode rule, which
// is checked anew at every stat, not cached with the content.
func isPermProblem(p *Problem) bool {
	var (
		pe *trustfile.PermissionError
		le *trustfile.LinkError
	)
	return p != nil && (errors.As(p.Err, &pe) || errors.As(p.Err, &le) || p.Replaced())
}
