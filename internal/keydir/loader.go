package keydir

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/fsnotify/fsnotify"

	"github.com/keytool/keytool/internal/offheap"
	"github.com/keytool/keytool/internal/termtext"
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
	// Key is the SPKI hash of the key of the entry skipped (or of the
	// file's one entry), when its key read and only its attributes or
	// its conversion did not (jwk.ParseError.Key): a store refuses that
	// key where another entry holds it, since the skipped entry may have
	// been the one in effect, with tighter limits. Nil otherwise.
	Key *[32]byte
}

func (p Problem) Error() string {
	where := termtext.Safe(p.Path) // a file may have any name: none drives a terminal or forges a line
	if p.Line > 0 {
		where += ":" + strconv.Itoa(p.Line)
	}
	if p.Member != "" {
		return fmt.Sprintf("%s: member %q: %v", where, p.Member, p.Err)
	}
	return fmt.Sprintf("%s: %v", where, p.Err)
}

func (p Problem) Unwrap() error { return p.Err }

// Replaced reports whether the file was replaced while it was read
// (*trustfile.ChangedError: another writer's rewrite of it renamed in
// between the stat and the read): read again, it may well load.
func (p Problem) Replaced() bool {
	var ce *trustfile.ChangedError
	return errors.As(p.Err, &ce)
}

// ErrRevocationSubdirectory is what a RevocationSubdirectoryError is
// (errors.Is).
var ErrRevocationSubdirectory = errors.New("is a directory, whose files are not read: a revocation inside it would not be in effect")

// RevocationSubdirectoryError is the problem of a directory (or a link to
// one) inside a revocation directory. The loader reads no subdirectory,
// and a key directory's is skipped, since what is not read grants
// nothing; but revocations put in one (an archive unpacked, a copy with
// -r) would be revocations silently not in effect, so the revocation
// source fails closed until it is moved or given a name starting with a
// dot (docs/trust-stores.md, "Ignored names").
type RevocationSubdirectoryError struct {
	Path string // the subdirectory (or the link to one)
}

func (e *RevocationSubdirectoryError) Error() string { return ErrRevocationSubdirectory.Error() }
func (e *RevocationSubdirectoryError) Is(target error) bool {
	return target == ErrRevocationSubdirectory
}

// problemOf turns an error about path into a Problem, keeping the line and
// member of a *jwk.ParseError.
func problemOf(path string, err error, revocation bool) *Problem {
	p := &Problem{Path: path, Err: err, Revocation: revocation}
	var pe *jwk.ParseError
	if errors.As(err, &pe) {
		p.Line, p.Member, p.Err, p.Key = pe.Line, pe.Member, pe.Err, pe.Key
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
	// Rare, if set, is what an entry carries beyond its T: called after
	// Convert with the same arguments, nil for most entries, kept by its
	// File (File.RareOf) and not in Items. It lets T hold no pointer, so
	// that the garbage collector never reads a file's Items, however
	// many keys they hold (docs/design.md, "Memory of a loaded store").
	// Its error skips the entry as Convert's does.
	Rare func(src SourceRef, path string, k *jwk.Key) (any, error)
	// KeyOf, if set, is an entry's key (its SPKI hash): a Change then
	// counts only the keys a changed file gained and lost. It gets the
	// entry in its file's Items, never a copy (see Found): for a file of
	// one key kept without a File, a File made for the call.
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
	// (DefaultRescan if zero, none if negative), from the end of one to
	// the start of the next: where every source is watched on a local
	// file system, a rescan of a store so large that it took longer than
	// a hundredth of that waits a hundred times as long as it took
	// (rescanWait).
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
	// key, and the names or addresses a command looks it up by. It gets
	// the entry as f.Items()[i], never a copy (f a File made for the call
	// for a file of one key kept without one: Snapshot.FileAt).
	Terms func(f *File[T], i int) []Term
}

// File is one file that loaded, with the entries made from its keys.
// A File is shared by every snapshot that holds it and by the loader,
// which keeps each file's place in its sorted lists by name: callers must
// not modify it.
//
// A File keeps its name, not its path: the path is its source's, a
// separator and the name (Path), and the source's part is kept once for
// all its files. At 100,000 single-key files a path string of each was a
// fifth of the store's heap (docs/design.md, "Memory of a loaded store").
//
// A file of one item holds it (one), in the File's own allocation: at
// 100,000 single-key files a one-item array beside each File was 32 heap
// bytes a key more, and its slice header 24. Another file's items are
// behind its own copy of its source's part (fileSource.many), as a file's
// rare parts are: a pointer in every File for the few files of several
// keys made a File of one key 64 bytes where it is 48. For the same
// reason the name is one pointer, not a string's 16 bytes (packName).
// Each heap byte a key costs the resident set some 2.5 bytes
// (docs/design.md, "Memory of a loaded store").
type File[T any] struct {
	src  *fileSource
	name *byte // packName's: the name's length, then its bytes
	one  T     // the file's one item, unless src.many is set
}

// makeFile returns the File named name of source src holding items (one
// in the File itself, several or none in a copy of src of its own).
func makeFile[T any](src *fileSource, name string, items []T) *File[T] {
	if len(items) == 1 {
		return &File[T]{src: src, name: packName(name), one: items[0]}
	}
	own := *src
	own.many = unsafe.Pointer(&items)
	return &File[T]{src: &own, name: packName(name)}
}

// packName returns name in one allocation that holds its length too (a
// uvarint before its bytes), so that a File keeps one pointer for it.
func packName(name string) *byte {
	var n [binary.MaxVarintLen64]byte
	k := binary.PutUvarint(n[:], uint64(len(name)))
	b := make([]byte, k+len(name))
	copy(b, n[:k])
	copy(b[k:], name)
	return &b[0]
}

// unpackName returns the name packName packed at p, without copying it:
// the string points into p's allocation, and keeps it.
func unpackName(p *byte) string {
	var n uint64
	for i, shift := 0, uint(0); ; i, shift = i+1, shift+7 {
		c := *(*byte)(unsafe.Add(unsafe.Pointer(p), i))
		n |= uint64(c&0x7f) << shift
		if c < 0x80 {
			if n == 0 {
				return "" // no byte follows: a pointer past the allocation is not one
			}
			return unsafe.String((*byte)(unsafe.Add(unsafe.Pointer(p), i+1)), int(n))
		}
	}
}

// Items are the file's entries, in file order. The slice is the File's
// own: callers must not modify it, and may keep pointers into it (a
// store's lookups hand out &f.Items()[i]) for as long as they keep f.
func (f *File[T]) Items() []T {
	if f.src.many != nil {
		return *(*[]T)(f.src.many)
	}
	return unsafe.Slice(&f.one, 1)
}

// fileSource is what the files of one source share. A file whose
// entries have rare parts (Config.Rare) has a copy of its own that holds
// them: the rare file pays for them, not every file.
type fileSource struct {
	prefix          string // a file's path is prefix+name
	index           int    // in Config.Sources
	dir, revocation bool   // the source's Source.Dir and Source.Revocation
	rare            []any  // a file's own copy only: Config.Rare of Items[i]
	// many is a file's own copy's only: the *[]T of the items of a File[T]
	// of several items or none (makeFile).
	many unsafe.Pointer
}

// NewFile returns a file of items read from path, of source index
// source, as a single-file source holds it (Name is the path): for
// tests and callers that build files without a loader.
func NewFile[T any](path string, source int, items []T) *File[T] {
	return makeFile(&fileSource{index: source}, path, items)
}

// SnapshotOf returns a snapshot holding files, numbered 1, 2, … in the
// order given (FileAt), and listed in that order: for tests and callers
// that build files without a loader (NewFile).
func SnapshotOf[T any](files ...*File[T]) *Snapshot[T] {
	snap := &Snapshot[T]{Generation: 1, nfiles: len(files)}
	var rows [][]fileRow[T]
	for _, f := range files {
		for f.Source() >= len(rows) {
			rows = append(rows, nil)
		}
		num := snap.numbers.add(parsed[T]{file: f}, "")
		rows[f.Source()] = append(rows[f.Source()], fileRow[T]{rowRefs[T]{}, rowData{num: num}})
	}
	for _, r := range rows {
		snap.rows = append(snap.rows, rowsOf(r))
	}
	return snap
}

// NewDirFile returns a file name of the directory dir, source index
// source (a directory that grants trust: InDir), holding items and their
// rare parts (Config.Rare: nil, or one per item): for tests.
func NewDirFile[T any](dir, name string, source int, items []T, rare []any) *File[T] {
	return makeFile(&fileSource{prefix: dir + string(filepath.Separator), index: source, dir: true, rare: rare}, name, items)
}

// Path is the file's path. It is made on each call (but for a
// single-file source, whose name is its path): callers that only tell
// files apart within a source compare Name.
func (f *File[T]) Path() string {
	if f.src.prefix == "" {
		return f.Name()
	}
	return f.src.prefix + f.Name()
}

// Name is the file's name in its source: a directory's file's base
// name, a feed's entry's name, a single-file source's path.
func (f *File[T]) Name() string { return unpackName(f.name) }

// Source is the index in Config.Sources of the file's source.
func (f *File[T]) Source() int { return f.src.index }

// InDir reports whether the file's source is a directory (or a feed,
// which is read like one) that grants trust: not a single file, not a
// revocation source.
func (f *File[T]) InDir() bool { return f.src.dir && !f.src.revocation }

// RareOf is what Config.Rare returned for the entry it, which must point
// into f.Items(): nil for most entries.
func (f *File[T]) RareOf(it *T) any {
	if f.src.rare == nil {
		return nil
	}
	size := unsafe.Sizeof(*it)
	if size == 0 {
		return f.src.rare[0]
	}
	return f.src.rare[(uintptr(unsafe.Pointer(it))-uintptr(unsafe.Pointer(unsafe.SliceData(f.Items()))))/size]
}

// RareAt is what Config.Rare returned for the item at pos of Items: nil
// for most items.
func (f *File[T]) RareAt(pos int) any {
	if f.src.rare == nil {
		return nil
	}
	return f.src.rare[pos]
}

// Snapshot is the immutable result of a load.
type Snapshot[T any] struct {
	Problems []Problem // files (and entries of files) skipped, in the order of Files
	// RevocationErr is set when a revocation source could not be read
	// completely: a caller must then refuse every key.
	RevocationErr error
	Generation    uint64

	// rows are the loader's rows of each source's files (by source
	// index, each source's by name) as the reload that made the snapshot
	// left them; its files are the Files of those rows that loaded
	// (loaded). A row is never written once its reload has ended
	// (sourceState), so the snapshot reads the loader's lists rather
	// than keep a list of pointers of its own beside them (a pointer per
	// file). nfiles counts the files.
	rows   []rowList[T]
	nfiles int
	// diffed: gone and came are the files of the snapshot of generation
	// diffBase that this one no longer has, and those it has instead,
	// as the reload that made it knew them (Diff).
	diffed     bool
	diffBase   uint64
	gone, came []fileID
	// numbers are the files' numbers as the snapshot was published
	// (FileAt): never written again.
	numbers numbers[T]
}

// Numbered is a file with its number in a snapshot (Snapshot.FileAt) and
// the number's generation (Snapshot.GenAt): the number and generation
// name the file in every snapshot of its loader, where the number alone
// names it only in the snapshot it was read from.
type Numbered[T any] struct {
	Num, Gen uint32
	File     *File[T]
}

// Files returns the files that loaded, in source order, a directory's
// files by name, in a slice of the caller's own (a pointer per file).
// A snapshot keeps no such list: its chunked lists are what it holds,
// and a list kept for the snapshot's life beside them would cost a
// pointer per file for good (docs/design.md, "Memory of a loaded
// store"). To read every file without the slice, range over All.
func (s *Snapshot[T]) Files() []*File[T] {
	var out []*File[T]
	if n := s.numFiles(); n > 0 {
		out = make([]*File[T], 0, n)
		for f := range s.All {
			out = append(out, f)
		}
	}
	return out
}

// All yields the files of Files, in its order, without making a list.
func (s *Snapshot[T]) All(yield func(*File[T]) bool) {
	for _, f := range s.AllNumbered {
		if !yield(f) {
			return
		}
	}
}

// AllNumbered is All, with each file's number (FileAt). A file of one
// key kept without a File of its own has one made for each walk (FileAt):
// what walks every file at each reload walks Refs instead.
func (s *Snapshot[T]) AllNumbered(yield func(uint32, *File[T]) bool) {
	for i := range s.rows {
		for num := range s.numsOf(i) {
			if !yield(num, s.numbers.at(num)) {
				return
			}
		}
	}
}

// allSummed yields the number of each file AllNumbered yields, with its
// content's sum as it was loaded (what a Finder compares a file read again
// with).
func (s *Snapshot[T]) allSummed(yield func(uint32, contentSumOf) bool) {
	for i := range s.rows {
		for num, sum := range s.summedOf(i) {
			if !yield(num, sum) {
				return
			}
		}
	}
}

// numsOf yields the numbers of the files of source i, by name.
func (s *Snapshot[T]) numsOf(i int) iter.Seq[uint32] {
	return func(yield func(uint32) bool) {
		for num := range s.summedOf(i) {
			if !yield(num) {
				return
			}
		}
	}
}

// summedOf yields the numbers of the files of source i, by name, each
// with its content's sum as it was loaded.
func (s *Snapshot[T]) summedOf(i int) iter.Seq2[uint32, contentSumOf] {
	return func(yield func(uint32, contentSumOf) bool) {
		for _, ch := range s.rows[i].chunks {
			for k := range ch.len() {
				r := fileRow[T]{ch.head(k), ch.data(k)}
				if num := loaded(&r); num != 0 && !yield(num, r.sum) {
					return
				}
			}
		}
	}
}

// FileAt returns the file s numbers num (AllNumbered, DiffNumbered; nil:
// none). A file keeps its number from one snapshot to the next while it
// is unchanged; a number a file had may be given to another once a
// snapshot without the first is published: a number names a file only
// together with the snapshot it was read from. A file of one key is kept
// without a File of its own (docs/design.md, "Memory of a loaded store",
// step 5): its File is made at each call, holding a copy of its item,
// so that files are told apart by number and generation, never by
// pointer.
func (s *Snapshot[T]) FileAt(num uint32) *File[T] { return s.numbers.at(num) }

// GenAt returns the generation of number num in s: how many times the
// loader had given the number again when s was published (0: never).
// A file keeps its number and generation while it is unchanged, and a
// number given to another file comes with a generation counted up, so
// that the two tell the files of a loader apart across its snapshots:
// what keeps a file's number beyond one snapshot (a store's Entries)
// compares them, not *File pointers, which a file of one key does not
// have of its own (docs/design.md, "Memory of a loaded store", step 5).
func (s *Snapshot[T]) GenAt(num uint32) uint32 { return s.numbers.genAt(num) }

// numFiles is len(s.Files()), without making it.
func (s *Snapshot[T]) numFiles() int { return s.nfiles }

// Diff returns the files of prev that next no longer has and those next
// has instead, in the loader's order (source, then path), as DiffFiles
// does. When next was made from prev by a reload that knew what it
// changed, that is the answer, in time proportional to the change;
// otherwise the lists are compared whole.
func Diff[T any](prev, next *Snapshot[T]) (gone, came []*File[T]) {
	g, c := DiffNumbered(prev, next)
	return filesIn(g), filesIn(c)
}

// DiffNumbered is Diff, with each file's number and generation: in prev
// for the files gone, in next for those that came. A file is in both
// snapshots when its number and generation are. When next was published right after
// prev, no number is both a file's that went and one's that came
// (numbers.release); further apart, one may be (freed by a snapshot
// between them, and given again), so a caller that applies the change
// removes the files gone, reading prev's numbers, before it adds those
// that came, reading next's (as authkeys' index does).
func DiffNumbered[T any](prev, next *Snapshot[T]) (gone, came []Numbered[T]) {
	g, c := DiffRefs(prev, next)
	return numberedOf(g), numberedOf(c)
}

// DiffRefs is DiffNumbered, each file as a FileRef of its snapshot (prev
// for the files gone, next for those that came): what a store applies at
// each reload, making no File (a cold load's change is every file).
func DiffRefs[T any](prev, next *Snapshot[T]) (gone, came []FileRef[T]) {
	if next.diffed && prev.Generation == next.diffBase {
		return refsOf(prev, next.gone), refsOf(next, next.came)
	}
	if prev.numFiles() == 0 && next.numFiles() > 0 {
		// A cold load: every file came. The list itself, where diffFiles
		// would append it to a copy (at 100,000 files of one key, 2.4
		// MB). The loader's Change and authkeys' update, which made it
		// twice at the very end of the load, where its peak is, count a
		// cold load's files from the snapshot instead (docs/design.md,
		// "Memory of a loaded store", step 6).
		return nil, next.refs()
	}
	return diffFiles(prev.refs(), next.refs(), refOrder[T],
		func(x, y FileRef[T]) bool { return x.Num() == y.Num() && x.Gen() == y.Gen() })
}

// refs is Refs as a list.
func (s *Snapshot[T]) refs() []FileRef[T] {
	out := make([]FileRef[T], 0, s.numFiles())
	for r := range s.Refs {
		out = append(out, r)
	}
	return out
}

// refsOf returns the FileRefs of the files s numbers ids.
func refsOf[T any](s *Snapshot[T], ids []fileID) []FileRef[T] {
	if ids == nil {
		return nil
	}
	out := make([]FileRef[T], len(ids))
	for i, id := range ids {
		out[i], _ = s.RefAt(id.num)
	}
	return out
}

// numberedOf returns the files of refs, numbered, each a File (FileRef.File).
func numberedOf[T any](refs []FileRef[T]) []Numbered[T] {
	if refs == nil {
		return nil
	}
	out := make([]Numbered[T], len(refs))
	for i, r := range refs {
		out[i] = Numbered[T]{r.Num(), r.Gen(), r.File()}
	}
	return out
}

// filesIn returns the files of ns.
func filesIn[T any](ns []Numbered[T]) []*File[T] {
	if ns == nil {
		return nil
	}
	out := make([]*File[T], len(ns))
	for i, n := range ns {
		out[i] = n.File
	}
	return out
}

// fileRow is the loader's memory of one file between reloads, reused while
// its stat stamp (and, once read, its content hash) is unchanged. There is
// one per file of a directory, kept in its source's chunked list in two
// parts, with no allocation of its own (docs/design.md, "Memory of a
// loaded store"): its pointers (rowRefs, 16 bytes on the heap) and the
// rest (rowData, 48 bytes on Linux, outside the heap). Its name and path
// are its File's, and what most files lack (a problem, skipped entries, a
// stamp's shared part unlike the source's, the path of a file that did
// not load) is behind one pointer, nil for most files. A reload works on
// a fileState for each file it examines, and folds it into a row when its
// read is done (fold). A fileRow value is a row read out of its list (or
// to be put in one), never a place in it.
type fileRow[T any] struct {
	rowRefs[T]
	rowData
}

// rowRefs is the part of a row that holds pointers. The row's file is
// not one of them: the row keeps its number (rowData.num), which the
// loader's numbers map to it, so that the heap holds one pointer a file
// for the row and for every store's index of it (docs/design.md, "Memory
// of a loaded store", step 5) — none, for a file of one key kept without
// a File whose name its number's mapped part holds (numbers.pages). A
// row's name is its number's (numbers.name), or, without a number, its
// rare part's (fileRow.name).
type rowRefs[T any] struct {
	rare *rareRow[T] // nil: loaded with no problem, and the stamp part its odd names
}

// rowData is the part of a row that holds no pointer.
type rowData struct {
	// stamp is the file's own part of its stat stamp; the rest is its
	// source's (sourceState.dir), or the odd one its odd names, unless
	// rare holds its own.
	stamp trustfile.StampFile
	// sum is contentSum's: it only spares the parse of content read before
	// (the same bytes under a new stamp).
	sum contentSumOf
	// odd, if not 0, is the row's shared part of its stamp: the source's
	// odd[odd-1], not its dir. It is a byte of the mapped part, not a
	// pointer to a shared rare part, so that the rows of a directory's
	// rarer mode or owner keep no heap part: a chunk of them is compact
	// (chunked.compact), where a pointer in any of its rows made every row
	// of the chunk keep one (8 heap bytes a row).
	odd uint8
	// num is the file's number (numbers), 0 if no file loaded: kept
	// while the row stands for the same file. (11 bytes of sum, 1 of odd
	// and 4 of number keep the row at 48 bytes, where 16 of sum were.)
	num uint32
}

// A source's rows, and the editor that makes their next version.
type (
	rowList[T any]   = chunked[rowRefs[T], rowData]
	rowEditor[T any] = editor[rowRefs[T], rowData]
)

// rowsOf returns the list of rows.
func rowsOf[T any](rows []fileRow[T]) rowList[T] {
	return chunksOf(len(rows), func(i int) (rowRefs[T], rowData) { return rows[i].rowRefs, rows[i].rowData })
}

// rowAt returns the row at p of files, which must be one.
func rowAt[T any](files rowList[T], p at) fileRow[T] {
	h, d := files.get(p)
	return fileRow[T]{h, d}
}

// refs returns r's pointers (nil if r is).
func (r *fileRow[T]) refs() *rowRefs[T] {
	if r == nil {
		return nil
	}
	return &r.rowRefs
}

// heapRow returns a copy of r (nil if r is) for a state or an edit to
// keep: the row r points at may be a caller's variable, reused.
func heapRow[T any](r *fileRow[T]) *fileRow[T] {
	if r == nil {
		return nil
	}
	c := *r
	return &c
}

// rareRow is the part of a file's row that most files lack.
type rareRow[T any] struct {
	path    string   // the file's path, when it has no File
	problem *Problem // the file is skipped
	// skipped are the entries of file that were skipped (Problem.Entry),
	// in file order.
	skipped []Problem
	// dir, if not nil, is the shared part of the file's stamp: it is not
	// its source's (or the source had none when the row was made).
	dir *trustfile.StampDir
	// pending: during a reload, the state whose read will make this row
	// (fileState.pendingRow); rows never hold one between reloads.
	pending *fileState[T]
}

// path is the file's path (made anew when it has a number: File.Path).
// The numbers must be those of the list the row was read from: the
// loader's during the reload that holds the list, or the snapshot's that
// holds it. (The loader's hold every row's file of the lists its reload
// started from and made: it frees a number only as it publishes.)
func (r *fileRow[T]) path(ns *numbers[T]) string {
	if r.num != 0 {
		return ns.path(r.num)
	}
	return r.rare.path
}

// name is the file's base name (the path for a single-file source):
// nameAt is its source's (sourceState.nameAt). It reads the numbers as
// path does, and makes no File; a name kept in the numbers' mapped part
// is copied (numbers.name): a name search uses compareName.
func (r *fileRow[T]) name(ns *numbers[T], nameAt int) string {
	if r.num != 0 {
		return ns.name(r.num)
	}
	return r.rare.path[nameAt:]
}

// compareName compares the file's name (name) with name, as
// cmp.Compare: what the name searches read at each step, which copy no
// name (numbers.compareName).
func (r *fileRow[T]) compareName(ns *numbers[T], nameAt int, name string) int {
	if r.num != 0 {
		return ns.compareName(r.num, name)
	}
	return cmp.Compare(r.rare.path[nameAt:], name)
}

func (r *rowRefs[T]) problem() *Problem {
	if r.rare == nil {
		return nil
	}
	return r.rare.problem
}

func (r *rowRefs[T]) skipped() []Problem {
	if r.rare == nil {
		return nil
	}
	return r.rare.skipped
}

func (r *rowRefs[T]) pending() *fileState[T] {
	if r.rare == nil {
		return nil
	}
	return r.rare.pending
}

// fileState is a file as a reload examines it: a new file, or one whose
// stamp changed, from its stat to its read. It lives for the reload only:
// what it found is kept as a fileRow (sourceState.row).
type fileState[T any] struct {
	// rareRow holds the state's path, problem and skipped entries, and is
	// the rare part of the row that stands for the state in its source's
	// list until the reload folds it (pendingRow): no allocation of its
	// own. The file's name is the path from its source's nameAt, as a
	// pending row's is (rareRow.name): a state keeps no offset of its own.
	rareRow[T]
	st trustfile.Stamp
	// old, while a read is pending or held, is the row it replaces (nil:
	// none). It never points into a list a reload writes.
	old *fileRow[T]
	// parsed is what the content read made, to be numbered; num, the
	// number of the file of the row it replaces when the content is that
	// row's (read: the file is kept, by its number). One of them, or
	// neither when no file loaded (hasFile).
	parsed parsed[T]
	num    uint32
	src    int32 // index in Config.Sources
	sum    contentSumOf
	read   bool // sum and file/problem come from reading the content
	gone   bool
	// unchecked: a new regular file seen in a directory listing, whose
	// stat and permission checks are left to the read (one syscall less
	// per file on a cold load).
	unchecked bool
	// held: the read found a problem in a file written moments ago, in a
	// reload caused by events (Loader.holdFresh), or at its stat in the
	// reload applied the moment an event came (Loader.holdEarly); old is
	// the row to keep meanwhile (nil: none), and the file is read again
	// once events have been quiet.
	held bool
}

// hasFile reports whether a file loaded: parsed, or kept by its number.
func (f *fileState[T]) hasFile() bool { return f.parsed.loaded() || f.num != 0 }

// job reports whether a state from a stat goes to the reload's jobs: to
// be read, or, held at its stat (Loader.holdEarly), to be restored.
func (f *fileState[T]) job() bool { return !f.read || f.held }

// dropped reports whether the file of a state that was a job leaves its
// source's list: gone between stat and read, or held with nothing to keep.
func (f *fileState[T]) dropped() bool { return f.gone || f.held && f.old == nil }

// pendingRow is the row that stands for the state in its source's list
// until the reload folds it: named by the state's path.
func (f *fileState[T]) pendingRow() fileRow[T] {
	f.pending = f
	return fileRow[T]{rowRefs: rowRefs[T]{rare: &f.rareRow}}
}

// newFileState returns the state of the file of source src at path,
// which names it from the source's nameAt (prefixOf).
func newFileState[T any](src int, path string) *fileState[T] {
	return &fileState[T]{rareRow: rareRow[T]{path: path}, src: int32(src)}
}

// name is the file's base name, the path for a single-file source: its
// path from nameAt, its source's.
func (f *fileState[T]) name(nameAt int) string { return f.path[nameAt:] }

// sourceState is what the loader knows of one source. A reload replaces
// files with a new list (an edited version of the last: chunked) and
// never edits one in place but to fold a pending row, and a row is not
// modified once a reload has ended: compare reads them without the lock.
// (A pending row is only ever in a chunk its reload made, a builder's of
// rows of its own or an editor's copy, which no list but the source's
// current one holds: fold writes it in place.)
type sourceState[T any] struct {
	files   rowList[T] // sorted by name
	problem *Problem   // about the source itself
	// feedGen is the generation of the feed's set that files were made
	// from (0: none; loadFeed reads the next view whole).
	feedGen uint64
	// feedGroup and feedState are the Group and State of the feed's view
	// that files were made from (nil: none, or a view with Err).
	feedGroup, feedState any
	// nameAt: a file's name is its path[nameAt:] (prefixOf).
	nameAt int
	// fsrc is what the source's Files share: the path before a name.
	fsrc *fileSource
	// dir is the shared part of the stamps of the rows whose rare part
	// holds none of its own; set (hasDir) from the files of the first
	// fold (or lot of a listing's new files: foldNew) that loads any —
	// the commonest among them, so that one odd file first in a
	// directory does not give every other a rare part —
	// and never changed after, so that every row ever made of the source
	// reads its stamp the same way.
	dir    trustfile.StampDir
	hasDir bool
	// odd are shared parts of stamps unlike dir, one for each such part
	// met (at most maxOdd), which a row names by its index plus one
	// (rowData.odd): so that a directory whose files have two modes
	// (keytool's 0644 beside a tool's 0600) or two owners pays neither a
	// rare part nor a pointer for each file of the rarer kind. An element
	// is written once, before any row names it, and never again: a row
	// read anywhere names an element that the state it is read with holds
	// (the rescan's compare reads rows without the lock, with a copy of
	// the states taken under it).
	odd [maxOdd]*trustfile.StampDir
}

// maxOdd bounds sourceState.odd: past it, a row keeps its own in a rare
// part.
const maxOdd = 8

// A row names an odd stamp part by a byte, its index plus one.
var _ [255 - maxOdd]struct{}

// oddIndex returns the index plus one of dir in the source's odd parts,
// adding it if there is room; 0 if there is none.
func (ss *sourceState[T]) oddIndex(dir trustfile.StampDir) uint8 {
	for i, d := range ss.odd {
		switch {
		case d == nil:
			ss.odd[i] = &dir
			return uint8(i + 1)
		case *d == dir:
			return uint8(i + 1)
		}
	}
	return 0
}

// prefixOf is what a file's path holds before its name, in a source: a
// directory's and a feed's files are named by what follows the
// source's path and a separator; a single-file source by its path.
func prefixOf(src Source) string {
	switch {
	case src.Feed != nil:
		return src.Path + "/" // feedEntry's Path+"/"+name
	case src.Dir:
		return pathIn(src.Path, "") // the directory and its separator
	}
	return ""
}

// newFile returns the File of items read from path, of source i: its
// name, of its own (not a part of path, which would keep the whole
// path), and its source's part of the path, shared.
func (l *Loader[T]) newFile(i int, path string, items []T) *File[T] {
	fsrc, name := l.fileName(i, path)
	return makeFile(fsrc, name, items)
}

// parsed is what a file's parse made: its File, or, for a file of one
// item with no rare part of a source whose files of one item are kept
// without a File (numbers.lean), its name and item, which its number
// keeps (numbers.add): such a file has no File even for the moment of
// its reload, where one made and dropped at its numbering was 48 bytes a
// key of garbage at each cold load (docs/design.md, "Memory of a loaded
// store", step 5). The name is a part of the path the file's state
// holds, copied only as it is numbered: into the number's mapped part,
// or packed on the heap where it is too long (step 6).
type parsed[T any] struct {
	file *File[T]
	// item and src, where src is not 0 (no File): the file's item and its
	// source's index plus one. Its name is its state's (fileState.name),
	// given to numbers.add with it: a cold load holds a state for every
	// file at once, and a name and a oneItem here were 40 bytes more of each.
	item T
	src  uint32
}

// loaded reports whether the parse made a file.
func (p *parsed[T]) loaded() bool { return p.file != nil || p.src != 0 }

// parsedOne is the parse of a file of the one item t with no rare part:
// without a File where the loader's numbers keep such a file of source i
// so (numbers.lean), else in a File of its own, made without the slice
// that would hold its item for a moment (a cold load makes one for each
// file).
func (l *Loader[T]) parsedOne(i int, path string, t T) parsed[T] {
	fsrc, name := l.fileName(i, path)
	if l.numbers.keepsLean(fsrc) {
		return parsed[T]{item: t, src: uint32(i) + 1}
	}
	return parsed[T]{file: &File[T]{src: fsrc, name: packName(name), one: t}}
}

// fileName returns the source's part of path, shared, and the file's
// name, a part of path (packName copies it).
func (l *Loader[T]) fileName(i int, path string) (*fileSource, string) {
	ss := &l.states[i]
	fsrc := ss.fsrc
	if path[:ss.nameAt] != fsrc.prefix { // never, as paths are made (prefixOf): yet a path must stay what it was
		fsrc = &fileSource{prefix: strings.Clone(path[:ss.nameAt]), index: i, dir: fsrc.dir, revocation: fsrc.revocation}
	}
	return fsrc, path[ss.nameAt:]
}

// stamp is the stat stamp of the file of row r.
func (ss *sourceState[T]) stamp(r *fileRow[T]) trustfile.Stamp {
	d := ss.dir
	switch {
	case r.rare != nil && r.rare.dir != nil:
		d = *r.rare.dir
	case r.odd != 0:
		d = *ss.odd[r.odd-1]
	}
	return r.stamp.Join(d)
}

// row folds a state whose read is done (or that needed none) into the
// row the source keeps of it, numbering its File (ns) unless it is the
// one of the row it replaces.
func (ss *sourceState[T]) row(f *fileState[T], ns *numbers[T]) fileRow[T] {
	own, dir := f.st.Split()
	if !ss.hasDir && f.hasFile() && f.problem == nil {
		ss.dir, ss.hasDir = dir, true
	}
	r := fileRow[T]{rowRefs[T]{}, rowData{stamp: own, sum: f.sum, num: f.num}}
	if f.parsed.loaded() && r.num == 0 {
		r.num = ns.add(f.parsed, f.name(ss.nameAt))
	}
	ownDir := !ss.hasDir || dir != ss.dir
	loaded := f.hasFile() && f.problem == nil && len(f.skipped) == 0
	switch {
	case loaded && !ownDir:
	case loaded:
		// Its mode or owner is all it has of its own.
		if r.odd = ss.oddIndex(dir); r.odd == 0 {
			r.rare = &rareRow[T]{dir: &dir}
		}
	default:
		r.rare = &rareRow[T]{problem: f.problem, skipped: f.skipped}
		if ownDir {
			r.rare.dir = &dir
		}
		if !f.hasFile() {
			r.rare.path = f.path
		}
	}
	return r
}

// Loader reads the sources into snapshots and, once Watch is called, keeps
// the snapshot current.
type Loader[T any] struct {
	cfg Config[T]
	log *slog.Logger

	mu     sync.Mutex // serialises reloads
	states []sourceState[T]
	fw     Watcher
	failed map[string]bool // directories that could not be watched (logged once)
	// eventsLocal: Watch watches, and every source is on a file system
	// whose events report every write (rescanWait). Set before the
	// watcher's goroutine starts.
	eventsLocal bool
	watched     map[string]os.FileInfo
	gen         uint64
	problems    map[string]bool // Error() of the problems already logged

	snap atomic.Pointer[Snapshot[T]]

	subMu sync.Mutex
	subs  map[chan struct{}]struct{}
	hooks map[*changeHook]struct{} // OnChange's

	unlockedMu sync.Mutex
	unlocked   []*UnlockedError // why edits went ahead unlocked (Unlocked)

	keys int // entries of the trust sources in the snapshot (Change.Keys)

	// readBytes counts the bytes of key files the current reload read
	// (returnMemory).
	readBytes atomic.Int64

	// narrow, once LoadFor has set it, limits each directory source to
	// the names the admin index gave (by source index): a full reload of
	// such a source re-examines those names only.
	narrow map[int][]string
	focus  *focusedLoad[T] // LoadFor's, for Widen
	// only, while an early decision's reload runs (ExtendProved), are the
	// narrowed names it re-examines, of those narrow holds: the rest keep
	// their rows, vouched for by the watch (all are examined where the
	// source failed its last examination).
	only map[int][]string

	// What the current reload changed, for publish: the names that
	// updateNames and updateFeed replaced, and whether a source was
	// listed or read whole instead (full: every state is compared).
	edits []edit[T]
	full  bool
	// scanHeld are the paths of the new files a listing held back as it
	// read them (scanDir, newFiles): reloadLocked returns them with fold's.
	scanHeld []string

	// numbers are the files' numbers as the next snapshot will publish
	// them; a reload gives its new Files theirs (sourceState.row).
	numbers numbers[T]

	// holdFresh, during a reload caused by events, is how recent a file's
	// mtime must be for a problem found in it to be held back (a file being
	// written), and how long after its first hold a file may still be held
	// (heldSince); zero otherwise. Set under mu.
	holdFresh time.Duration
	// heldSince is when each file the last reload caused by events held
	// back was first held, by path, on this process's monotonic clock: a
	// file is held back for at most holdFresh from then, whatever its mtime
	// says (Loader.holds). A path is forgotten once a reload caused by
	// events no longer holds it (it loaded, or was reported). Written under
	// mu after the reload, read by its reads (runJobs), never at once.
	heldSince map[string]time.Time
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
	fsrcs := make([]*fileSource, len(srcs))
	for i, s := range srcs {
		prefix := prefixOf(s)
		fsrcs[i] = &fileSource{prefix: prefix, index: i, dir: s.Dir, revocation: s.Revocation}
		l.states[i].nameAt, l.states[i].fsrc = len(prefix), fsrcs[i]
	}
	l.numbers = leanNumbers[T](fsrcs)
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

// indexRule is the strict-modes rule for the admin index's files: the
// climb stops at the home where the index is in it (HOME/.index, the
// one admin commands keep), or else at the index directory itself — a
// server's own, elsewhere (keytool proxy --index-dir), whose directory
// the admin chose as they chose the home, and above which the rule
// checks no more than above the home.
func (l *Loader[T]) indexRule() trustfile.Rule {
	top := l.cfg.Home
	if top == "" || !trustfile.Within(top, l.cfg.Index) {
		top = l.cfg.Index
	}
	return trustfile.Rule{Top: top, Off: l.cfg.NoStrictModes}
}

// ReadFile reads the file at path — an entry's file, read again by a
// store that needs more of it than its entries hold — under the
// strict-modes rule its source is loaded with (the file, a link's target,
// the directories up to the home; trustfile.Rule.ReadFile): what is read
// is what a reload would trust now, never a file that has become
// another user's since it was loaded. A path in no source is checked up
// to the root directory.
func (l *Loader[T]) ReadFile(path string) ([]byte, fs.FileInfo, error) {
	rule := trustfile.Rule{Off: l.cfg.NoStrictModes}
	for i, src := range l.cfg.Sources {
		if src.Feed == nil && (path == src.Path || src.Dir && filepath.Dir(path) == src.Path) {
			rule = l.rule(i)
			break
		}
	}
	return rule.ReadFile(path)
}

// MakeDir makes dir, one of the loader's directory sources, if need be
// (mode perm), and checks it under the strict-modes rule it is loaded
// with, for a store about to write a file into it: a directory the rule
// refuses to read from is one another user may have pointed elsewhere (a
// link in a home they can write, or own), and a file written there lands
// where they chose — another home's authorized_keys.d, say, which trusts
// it. A directory in no source is checked up to the root directory.
func (l *Loader[T]) MakeDir(dir string, perm fs.FileMode) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, perm); err != nil {
		return err
	}
	rule := trustfile.Rule{Off: l.cfg.NoStrictModes}
	for i, src := range l.cfg.Sources {
		if src.Feed == nil && src.Dir && src.Path == abs {
			rule = l.rule(i)
			break
		}
	}
	if err := rule.CheckDir(abs); err != nil {
		return fmt.Errorf("not writing into %s: %w", dir, err)
	}
	return nil
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
// after its last change, or a second after this watcher first held it
// back, is reported as any other (Loader.holds).
func (l *Loader[T]) reloadHolding(h hints) (held []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A second at least: on a busy machine the read may come well after
	// the write it catches half done.
	l.holdFresh, l.holdEarly = max(l.cfg.Debounce, time.Second), h.early
	defer func() { l.holdFresh, l.holdEarly = 0, false }()
	start := time.Now()
	held = l.reloadLocked(h)
	l.noteHeld(held, start)
	return held
}

// noteHeld keeps, for each path of held (the files a reload caused by
// events, begun at start, held back), when it was first held: start, or
// the time kept for it already if the reload before held it too. The
// paths no longer held are forgotten: a file held again later, after it
// loaded or was reported, is given a new bound. (The watcher queues every
// held path again, so the next reload caused by events decides on each.)
func (l *Loader[T]) noteHeld(held []string, start time.Time) {
	if len(held) == 0 {
		l.heldSince = nil
		return
	}
	since := make(map[string]time.Time, len(held))
	for _, p := range held {
		if t, ok := l.heldSince[p]; ok {
			since[p] = t
		} else {
			since[p] = start
		}
	}
	l.heldSince = since
}

// holds reports whether a problem p found in the file at path (fi: what
// its read gave, if anything) is held back: in a reload caused by events,
// when the file is being written by what the loader can tell. Every
// problem of the reload applied the moment an event came is (holdEarly);
// otherwise a problem that is not the trust-file rule's, in a file
// modified less than holdFresh ago. An mtime further in the future than
// that does not count as recent: cp -p, rsync -t and tar copy a file's mtime, a clock stepped
// back leaves files ahead of it, and touch sets any; such a file would
// otherwise look fresh at every reload. Nor is any file held more than
// holdFresh after the reload that first held it (heldSince): whatever the
// mtime says, holding is bounded by the loader's own clock, which no file
// sets, so that a file written malformed is reported (a revocation file
// failing closed) within a second or so, never held until a rescan.
func (l *Loader[T]) holds(path string, fi fs.FileInfo, p *Problem) bool {
	if l.holdFresh <= 0 || l.heldTooLong(path) {
		return false
	}
	if l.holdEarly {
		return true
	}
	if isPermProblem(p) || fi == nil {
		return false
	}
	// A little ahead is a file server's clock (NFS, SMB), not a copied
	// mtime: such a file being written is held as any other.
	age := time.Since(fi.ModTime())
	return age > -l.holdFresh && age < l.holdFresh
}

// heldTooLong reports whether the file at path was first held back
// holdFresh ago or more, by a reload caused by events (heldSince).
func (l *Loader[T]) heldTooLong(path string) bool {
	first, ok := l.heldSince[path]
	return ok && time.Since(first) >= l.holdFresh
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
	before := make([]rowList[T], len(l.states))
	for i := range l.states {
		before[i] = l.states[i].files
	}
	for i := range l.cfg.Sources {
		changed = l.examine(i, h, &jobs) || changed
	}
	changed = l.alignFeeds() || changed
	if len(jobs) > 0 {
		l.runJobs(jobs)
		held = l.fold(jobs)
	}
	held, l.scanHeld = append(held, l.scanHeld...), nil
	for i := range l.states {
		// A list this reload made (its list of chunks is new, so the
		// reload's own) drops the rows' pointers of the chunks that hold
		// none (chunked.compact): most rows have no rare part, and a
		// pending row's is its state's until fold.
		if files := &l.states[i].files; len(files.chunks) > 0 && (len(before[i].chunks) == 0 || &files.chunks[0] != &before[i].chunks[0]) {
			files.compact()
		}
	}
	if l.full {
		for i := range l.states {
			changed = changed || !sameFiles(before[i], l.states[i].files)
		}
	} else {
		for _, e := range l.edits {
			ss := &l.states[e.src]
			changed = changed || !sameRow(e.old, lookupRow(ss.files, &l.numbers, ss.nameAt, e.name))
		}
	}
	// The first load publishes even when it found nothing: an empty
	// store is loaded (Status.Generation 1), not "not loaded yet".
	if changed || l.gen == 0 {
		l.publish(time.Since(start))
	}
	clear(l.edits) // drop the rows they hold
	l.returnMemory()
	return held
}

// returnBytes is how many bytes of key files a reload reads before it
// gives the memory its parsing left behind back to the system. (A
// variable for tests.)
var returnBytes int64 = 4 << 20

// releaseFiles is the number of files from which IndexAfter's write
// gives the memory it used back to the system, as returnMemory does
// after a load of returnBytes (some 20,000 single-key files). (A
// variable for tests.)
var releaseFiles = 20_000

// releaseMemory gives the heap's free memory and offheap's kept arrays
// back to the system (a variable for tests, which count the calls).
var releaseMemory = offheap.Release

// returnMemory, after a reload that read returnBytes or more (a cold
// load of some 20,000 keys or more), returns the memory that reading
// them left free to the operating system at once. Parsing allocates
// several times what the snapshot keeps, and the runtime would otherwise
// give it back only slowly (and offheap would keep the mapped arrays a
// load outgrew for arrays to come): the resident set would stay at
// the load's peak, not at what the store keeps (docs/design.md, "Memory
// of a loaded store"). It costs one garbage collection, small beside
// such a load.
func (l *Loader[T]) returnMemory() {
	if l.readBytes.Swap(0) >= returnBytes {
		releaseMemory()
	}
}

// examine re-examines source i as h says, queueing the files to read; it
// reports whether the source's listing or problem changed.
func (l *Loader[T]) examine(i int, h hints, jobs *[]*fileState[T]) bool {
	src := l.cfg.Sources[i]
	ss := &l.states[i]
	names, narrowed := l.narrow[i]
	if l.only != nil && ss.problem == nil {
		// A source that failed its last examination (checkDir: its rows
		// dropped) is examined through every narrowed name, not the
		// few: else the rows it had would stay gone once it passes
		// again, with no stamp moved and no event (found by review).
		names = l.only[i]
	}
	switch {
	case src.Feed != nil:
		if h.full(src.Path, true) {
			return l.loadFeed(i)
		}
	case src.Dir && h.full(src.Path, true) && narrowed:
		return l.scanNames(i, names, jobs)
	case src.Dir && h.full(src.Path, true):
		return l.scanDir(i, jobs)
	case src.Dir:
		if names := h.namesIn(src.Path); len(names) > 0 {
			return l.updateNames(i, names, jobs)
		}
	case h.full(src.Path, false):
		return l.examineFile(i, jobs)
	}
	return false
}

// examineFile re-examines single-file source i. A change of its row is
// an edit (Loader.put), so that publish assembles the next snapshot from
// what changed, not by comparing every source's list: an early decision
// examines every single file, and would otherwise compare a large
// revocation directory's whole list at each (docs/design.md, "Early
// decisions").
func (l *Loader[T]) examineFile(i int, jobs *[]*fileState[T]) bool {
	src, ss := l.cfg.Sources[i], &l.states[i]
	if ss.problem != nil {
		l.full = true // a source's own problem (none a single file is given today) goes whole
	}
	var ed *rowEditor[T]
	l.examineRow(i, &ed, src.Path, src.Path, true, jobs)
	if ed == nil {
		return ss.set(ss.files, nil)
	}
	return ss.set(ed.done(), nil)
}

// rowAfterStat is the row a file keeps in a list made anew after statFile
// said state and same of it (prev its row before, nil: none): prev if it
// stays as it is, the state's placed row if there is a state; ok false if
// the file has no row (gone, or skipped silently).
func (l *Loader[T]) rowAfterStat(ss *sourceState[T], prev *fileRow[T], state *fileState[T], same bool, jobs *[]*fileState[T]) (r fileRow[T], ok bool) {
	switch {
	case same && prev != nil:
		return *prev, true
	case state != nil:
		return l.place(ss, state, jobs), true
	}
	return fileRow[T]{}, false
}

// place returns the row that stands for a new state in its source's list:
// a pending row, the state queued in jobs, when it must be read (or, held
// at its stat, restored); else the state folded into its row at once.
func (l *Loader[T]) place(ss *sourceState[T], f *fileState[T], jobs *[]*fileState[T]) fileRow[T] {
	if f.job() {
		*jobs = append(*jobs, f)
		return f.pendingRow()
	}
	return ss.row(f, &l.numbers)
}

// commonestDir is the shared part of a stamp (device, mode, owner) that
// most of the files that loaded among jobs have, if more than half have
// one (Boyer and Moore's majority vote: no map on a cold load of 100,000
// files), else one of theirs; ok false if none loaded.
func commonestDir[T any](jobs []*fileState[T]) (dir trustfile.StampDir, ok bool) {
	votes := 0
	for _, f := range jobs {
		if !f.hasFile() || f.problem != nil || f.held || f.dropped() {
			continue
		}
		_, d := f.st.Split()
		switch {
		case votes == 0:
			dir, votes, ok = d, 1, true
		case d == dir:
			votes++
		default:
			votes--
		}
	}
	return dir, ok
}

// fold puts in place of the pending row of each state of jobs, whose
// reads are done, the row it made: the row of what it read; the row it
// replaces if it was held (Loader.holdFresh, holdEarly); none if its file
// went between stat and read, or was held with no row before. It returns
// the paths of the held files.
func (l *Loader[T]) fold(jobs []*fileState[T]) (held []string) {
	for len(jobs) > 0 {
		n := 1 // jobs come source by source: fold each run at once
		for n < len(jobs) && jobs[n].src == jobs[0].src {
			n++
		}
		l.foldSource(int(jobs[0].src), jobs[:n], &held)
		jobs = jobs[n:]
	}
	return held
}

// foldSource is fold for jobs of source i. It writes each pending row in
// place (sourceState) and leaves the rows that go to an editor.
func (l *Loader[T]) foldSource(i int, jobs []*fileState[T], held *[]string) {
	ss := &l.states[i]
	if !ss.hasDir {
		ss.dir, ss.hasDir = commonestDir(jobs)
	}
	var rest []*fileState[T] // dropped
	fold := func(ch chunk[rowRefs[T], rowData], k int, f *fileState[T]) {
		if r := l.folded(ss, f, held); f.dropped() {
			rest = append(rest, f)
		} else {
			ch.put(k, r.rowRefs, r.rowData)
		}
	}
	if len(jobs) > ss.files.n/64 {
		// Many (a cold load's, a full scan's): walk the list once rather
		// than search for each.
		for _, ch := range ss.files.chunks {
			hs := ch.hs()
			for k := range hs { // a compact chunk has no pending row: a pending row's rare part is its state's
				if f := hs[k].pending(); f != nil {
					fold(ch, k, f)
				}
			}
		}
	} else {
		for _, f := range jobs {
			if p, found := ss.files.search(byName(&l.numbers, ss.nameAt, f.name(ss.nameAt))); found {
				if ch := ss.files.chunks[p.ci]; ch.h != nil && (*ch.h)[p.i].pending() == f {
					fold(ch, p.i, f)
				} // else folded already: defensive, as a source's jobs are one run and names are deduplicated
			}
		}
	}
	ss.files = l.withoutPending(ss, ss.files, rest)
}

// withoutPending returns files, a list of source ss, without the pending
// rows of the states of rest, which dropped (fileState.dropped).
func (l *Loader[T]) withoutPending(ss *sourceState[T], files rowList[T], rest []*fileState[T]) rowList[T] {
	if len(rest) == 0 {
		return files
	}
	if len(rest) > files.n/64 {
		// Many (a listing's new files gone or held a lot at a time): one
		// pass, where each of an editor's removals moves its chunk's
		// tail — quadratic in a chunk emptied front to back, some 1 µs a
		// row at 100,000. Membership, not dropped(): a state held at its
		// stat with no row (a new link, holdEarly) is in the reload's
		// jobs, pending still, and fold must find it there.
		drop := make(map[*fileState[T]]bool, len(rest))
		for _, f := range rest {
			drop[f] = true
		}
		b := newBuilder[rowRefs[T], rowData](files.n)
		for h, d := range files.all {
			if f := h.pending(); f == nil || !drop[f] {
				b.add(h, d)
			}
		}
		return b.done()
	}
	ed := files.edit()
	for _, f := range rest {
		if p, found := ed.c.search(byName(&l.numbers, ss.nameAt, f.name(ss.nameAt))); found {
			if h, _ := ed.c.get(p); h.pending() == f {
				ed.remove(p)
			}
		}
	}
	return ed.done()
}

// folded is the row that takes the place of the pending row of f, a
// state of source ss whose read is done: the row it read (numbered), or
// the row it replaces if it is held back (its path then added to held).
// A state that dropped (gone, or held with nothing to keep) has no row:
// its pending row leaves the list, and folded only notes it if held.
func (l *Loader[T]) folded(ss *sourceState[T], f *fileState[T], held *[]string) fileRow[T] {
	switch {
	case f.held:
		*held = append(*held, f.path)
		if f.dropped() {
			return fileRow[T]{}
		}
		return *f.old
	case f.dropped():
		return fileRow[T]{}
	}
	return ss.row(f, &l.numbers)
}

// byName orders the rows of a source whose names begin at nameAt, its
// files numbered by ns (fileRow.fileIn), against name.
func byName[T any](ns *numbers[T], nameAt int, name string) func(*rowRefs[T], rowData) int {
	return func(h *rowRefs[T], d rowData) int {
		r := fileRow[T]{*h, d}
		return r.compareName(ns, nameAt, name)
	}
}

// lookupRow returns a copy of the row named name in a sorted list of a
// source whose names begin at nameAt, its files numbered by ns (nil:
// none).
func lookupRow[T any](files rowList[T], ns *numbers[T], nameAt int, name string) *fileRow[T] {
	if p, ok := files.search(byName(ns, nameAt, name)); ok {
		r := rowAt(files, p)
		return &r
	}
	return nil
}

// edit is a name of source src whose row a reload replaced: old is the
// row before it (nil: none).
type edit[T any] struct {
	src  int
	name string
	old  *fileRow[T]
}

// put puts row (nil: none) in place of the row prev at p in ed (found:
// prev is there), and notes the edit for publish.
func (l *Loader[T]) put(ed *rowEditor[T], p at, found bool, src int, name string, prev, row *fileRow[T]) {
	l.edits = append(l.edits, edit[T]{src: src, name: name, old: heapRow(prev)})
	switch {
	case row == nil:
		ed.remove(p)
	case found:
		ed.set(p, row.rowRefs, row.rowData)
	default:
		ed.insert(p, row.rowRefs, row.rowData)
	}
}

// set replaces a source's files and problem. It reports whether the
// source's problem changed; changes of the files are found once their
// reads are done, from the reload's edits or, where it made a source's
// list anew (l.full), by sameFiles.
func (ss *sourceState[T]) set(files rowList[T], problem *Problem) bool {
	changed := !sameProblem(ss.problem, problem)
	ss.files, ss.problem = files, problem
	return changed
}

// sameFiles reports whether two lists of rows of one source give the same
// snapshot: the same files with the same entries or problems. A file whose
// stat data changed but whose content did not counts as the same.
func sameFiles[T any](a, b rowList[T]) bool {
	if a.n != b.n {
		return false
	}
	bi, bj := 0, 0
	for _, ch := range a.chunks {
		for k := range ch.len() {
			x, y := fileRow[T]{ch.head(k), ch.data(k)}, rowAt(b, at{bi, bj})
			if bj++; bj == b.chunks[bi].len() {
				bi, bj = bi+1, 0
			}
			if !sameRow(&x, &y) {
				return false
			}
		}
	}
	return true
}

// sameRow reports whether two rows of a file of one source (nil: none)
// give the same snapshot: the same path (so the same name), the same
// parsed File (which its skipped entries came with), the same problem.
// Rows compared are never pending: fold has run. (The same File is the
// same path; without one, a row keeps its path in its rare part: no
// path is made to compare them.) Both are rows of the lists a reload
// started from or made, whose Files the loader's numbers tell apart by
// number: it gives none of their numbers to another file in that reload.
func sameRow[T any](x, y *fileRow[T]) bool {
	if x == nil || y == nil {
		return x == y
	}
	return x.num == y.num && (x.num != 0 || x.rare.path == y.rare.path) && sameProblem(x.problem(), y.problem())
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
		l.numbers.release(l.numbers.unused(snap.rows))
		l.logProblems(snap)
	} else {
		l.numbers.release(l.editedNumbers())
	}
	snap.numbers, l.numbers = l.numbers, l.numbers.clone()
	l.log.Debug("trust store reloaded", "files", snap.numFiles(), "problems", len(snap.Problems), "took", took.Round(time.Microsecond).String()) // a string, as the proxy's durations are, not JSON's nanoseconds
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

// wholeSnapshot assembles the next snapshot from every file's row.
func (l *Loader[T]) wholeSnapshot() *Snapshot[T] {
	snap := &Snapshot[T]{Generation: l.gen, rows: make([]rowList[T], len(l.states))}
	for i := range l.states {
		ss := &l.states[i]
		if ss.problem != nil {
			snap.Problems = append(snap.Problems, *ss.problem)
		}
		for _, ch := range ss.files.chunks {
			for k := range ch.len() {
				switch r := ch.head(k); {
				case r.problem() != nil:
					snap.Problems = append(snap.Problems, *r.problem())
				case ch.data(k).num != 0: // loaded: it has a number
					snap.nfiles++
					snap.Problems = append(snap.Problems, r.skipped()...)
				}
			}
		}
		snap.rows[i] = ss.files
	}
	for _, p := range snap.Problems {
		if p.Revocation {
			snap.RevocationErr = p
			break
		}
	}
	return snap
}

// editedSnapshot assembles the next snapshot from prev and what this
// reload replaced (l.edits), in time proportional to the change: the
// loader's lists as they are, prev's problems, and the files that went
// and came. It returns nil when it cannot: a source was read whole, or
// a problem came, went or changed (problems are few, and each is logged
// as it comes and goes: the whole snapshot is assembled then), or an
// edit is not of what prev holds.
func (l *Loader[T]) editedSnapshot(prev *Snapshot[T]) *Snapshot[T] {
	if l.full || len(prev.rows) != len(l.states) || prev.Generation == 0 {
		return nil
	}
	hasProblem := func(r *rowRefs[T]) bool { return r != nil && (r.problem() != nil || len(r.skipped()) > 0) }
	slices.SortFunc(l.edits, func(a, b edit[T]) int {
		return cmp.Or(cmp.Compare(a.src, b.src), cmp.Compare(a.name, b.name))
	})
	snap := &Snapshot[T]{
		Generation: l.gen, Problems: prev.Problems, RevocationErr: prev.RevocationErr,
		rows: make([]rowList[T], len(l.states)), nfiles: prev.nfiles,
		diffed: true, diffBase: prev.Generation,
	}
	for i := range l.states {
		snap.rows[i] = l.states[i].files
	}
	for k, e := range l.edits {
		if k > 0 && l.edits[k-1].src == e.src && l.edits[k-1].name == e.name {
			return nil // a name edited twice: its first old row is what prev holds
		}
		ss := &l.states[e.src]
		now := lookupRow(ss.files, &l.numbers, ss.nameAt, e.name)
		if hasProblem(e.old.refs()) || hasProblem(now.refs()) {
			return nil
		}
		was, is := loadedAs(&l.numbers, e.old), loadedAs(&l.numbers, now) // was: prev's generation, freed only as snap is published
		if was == is {
			continue
		}
		if loadedAs(&prev.numbers, lookupRow(prev.rows[e.src], &prev.numbers, ss.nameAt, e.name)) != was {
			return nil // not what the last snapshot holds: assemble it whole
		}
		if was.num != 0 {
			snap.gone = append(snap.gone, was)
			snap.nfiles--
		}
		if is.num != 0 {
			snap.came = append(snap.came, is)
			snap.nfiles++
		}
	}
	return snap
}

// editedNumbers returns the numbers of the Files the rows this reload
// replaced (l.edits) held and the rows now in their place do not: those
// to free as editedSnapshot's snapshot is published.
func (l *Loader[T]) editedNumbers() []uint32 {
	var out []uint32
	for _, e := range l.edits {
		if e.old == nil || e.old.num == 0 {
			continue
		}
		ss := &l.states[e.src]
		if now := lookupRow(ss.files, &l.numbers, ss.nameAt, e.name); now == nil || now.num != e.old.num {
			out = append(out, e.old.num)
		}
	}
	return out
}

// loaded is the number of the file a row puts in a snapshot (0: none).
func loaded[T any](r *fileRow[T]) uint32 {
	if r == nil || r.problem() != nil {
		return 0
	}
	return r.num
}

// fileID names a file of a loader in every snapshot it publishes: its
// number and the number's generation (Snapshot.GenAt). {0, 0}: none.
type fileID struct{ num, gen uint32 }

// loadedAs is the file a row puts in a snapshot (loaded), named by its
// number and generation as ns gives them: what tells two rows' files
// apart, where comparing their Files would make one for a file of one
// key, which has none of its own (docs/design.md, "Memory of a
// loaded store", step 5).
func loadedAs[T any](ns *numbers[T], r *fileRow[T]) fileID {
	if num := loaded(r); num != 0 {
		return fileID{num, ns.genAt(num)}
	}
	return fileID{}
}

// maxProblemsLogged is how many new problems, and how many resolved, a
// snapshot logs one line each; past it a line counts the rest: 30,000
// files made unreadable at once (a chmod, a bad deploy) wrote 30,000
// lines, and as many again when fixed. The skipped-files gauge and the
// admin's list still count and name every one.
const maxProblemsLogged = 20

// logProblems logs each problem of snap once, when it appears, and says
// when one is gone: at most maxProblemsLogged lines each, then a count.
// The revocation inputs come first, and those past the first lines are
// counted on a line of their own, at the level of the refusal they cause.
func (l *Loader[T]) logProblems(snap *Snapshot[T]) {
	seen := make(map[string]bool, len(snap.Problems))
	logged, more, moreRevocation := 0, 0, 0
	for _, revocation := range []bool{true, false} {
		for _, p := range snap.Problems {
			if p.Revocation != revocation {
				continue
			}
			msg := p.Error()
			seen[msg] = true
			switch {
			case l.problems[msg]:
				continue
			case logged == maxProblemsLogged && revocation:
				moreRevocation++
				continue
			case logged == maxProblemsLogged:
				more++
				continue
			}
			logged++
			switch {
			case revocation:
				l.log.Error("revocation list unreadable: refusing every key until it is fixed", "file", p.Path, "error", msg)
			case p.Entry:
				l.log.Warn("skipping an entry of a trust file", "file", p.Path, "error", msg)
			default:
				l.log.Warn("skipping trust file", "file", p.Path, "error", msg)
			}
		}
	}
	if moreRevocation > 0 {
		l.log.Error("more revocation lists unreadable: refusing every key until they are fixed", "count", moreRevocation)
	}
	if more > 0 {
		l.log.Warn("skipping more trust files and entries", "count", more)
	}
	resolved := 0
	for msg := range l.problems {
		if !seen[msg] {
			if resolved < maxProblemsLogged {
				l.log.Info("trust file problem resolved", "was", msg)
			}
			resolved++
		}
	}
	if resolved > maxProblemsLogged {
		l.log.Info("more trust file problems resolved", "count", resolved-maxProblemsLogged)
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
