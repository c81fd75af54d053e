package keydir

import (
	"cmp"
	"runtime"

	"github.com/keytool/keytool/internal/offheap"
)

// FileRef is a file of a snapshot as the snapshot's walk (Refs) and
// RefAt give it: its number and generation (Snapshot.FileAt, GenAt), and
// what a store reads of the file — its items, name, source, rare parts —
// by position, never by a pointer kept into its items. It is a value: a
// walk of 100,000 files makes none of them on the heap. A store that
// walks every file at each reload (authkeys' rebuild and name counts)
// reads them so, and needs no *File: a file of one key has none of its
// own (where T holds no pointer), its item kept in the snapshot's mapped
// memory and a File made only for the caller who asks for one (File),
// which a walk making one a file would leave 4.8 MB of for the collector
// at each cold load of 100,000 keys (docs/design.md, "Memory of a loaded
// store", step 5).
//
// A FileRef reads its snapshot: it is valid while the snapshot is.
type FileRef[T any] struct {
	s   *Snapshot[T] // nil: a File of no snapshot (RefOf)
	f   *File[T]     // nil: a file of one item kept without a File, read from s
	num uint32
}

// Refs yields the files of Files, in its order, as FileRefs.
func (s *Snapshot[T]) Refs(yield func(FileRef[T]) bool) {
	for i := range s.rows {
		for num := range s.numsOf(i) {
			if r, _ := s.RefAt(num); !yield(r) {
				return
			}
		}
	}
}

// RefAt returns the file s numbers num; ok false if none.
func (s *Snapshot[T]) RefAt(num uint32) (r FileRef[T], ok bool) {
	h, src := s.numbers.entry(num)
	switch {
	case src != 0:
		return FileRef[T]{s, nil, num}, true
	case h == nil:
		return FileRef[T]{}, false
	}
	return FileRef[T]{s, (*File[T])(h), num}, true
}

// ItemAt returns a copy of the item at pos of the file s numbers num,
// which must be one: what a store's lookup reads at each probe, copying
// the item out rather than keep a pointer into the file — a file of one
// key keeps its item in the snapshot's mapped memory, which lives as
// long as the snapshot that reads it and no longer (docs/design.md,
// "Memory of a loaded store", step 5).
func (s *Snapshot[T]) ItemAt(num uint32, pos int) T {
	h, src := s.numbers.entry(num)
	if src == 0 {
		return (*File[T])(h).Items()[pos]
	}
	return [1]T{s.numbers.item(num)}[pos]
}

// RefOf returns f as a FileRef of no snapshot (numbered 0): for callers
// that hold a File without a loader (NewFile, NewDirFile).
func RefOf[T any](f *File[T]) FileRef[T] { return FileRef[T]{f: f} }

// refOrder is the loader's order of files (fileOrder), of FileRefs. It
// compares the names where they are (nameView): a diff of two snapshots
// compares every file's, which Name would copy.
func refOrder[T any](x, y FileRef[T]) int {
	if c := cmp.Compare(x.Source(), y.Source()); c != 0 {
		return c
	}
	xn, xp := x.nameView()
	yn, yp := y.nameView()
	c := cmp.Compare(xn, yn)
	runtime.KeepAlive(xp)
	runtime.KeepAlive(yp)
	return c
}

// Num is the file's number in its snapshot (Snapshot.FileAt; 0: RefOf's).
func (r FileRef[T]) Num() uint32 { return r.num }

// Gen is the generation of the file's number (Snapshot.GenAt): with Num,
// what names the file in every snapshot of its loader.
func (r FileRef[T]) Gen() uint32 {
	if r.s == nil {
		return 0
	}
	return r.s.numbers.genAt(r.num)
}

// srcOf is the index plus one of the source of a file kept without a
// File (r.f nil).
func (r FileRef[T]) srcOf() uint32 {
	_, src := r.s.numbers.entry(r.num)
	return src
}

// Len is the number of the file's items.
func (r FileRef[T]) Len() int {
	if r.f == nil {
		return 1
	}
	return len(r.f.Items())
}

// Items are the file's items, in file order, a slice of the caller's
// own for a file kept without a File (its item is a copy): keep no
// pointer into them past the snapshot, and copy one out where one is
// enough (Item).
func (r FileRef[T]) Items() []T {
	if r.f == nil {
		return []T{r.s.numbers.item(r.num)}
	}
	return r.f.Items()
}

// Item returns a copy of the file's item at pos.
func (r FileRef[T]) Item(pos int) T {
	if r.f == nil {
		return [1]T{r.s.numbers.item(r.num)}[pos] // out of range past the one item, as Items()[pos]
	}
	return r.f.Items()[pos]
}

// RareAt is what Config.Rare returned for the item at pos: nil for most,
// and for every file kept without a File (Loader.parsedOne: it has none).
func (r FileRef[T]) RareAt(pos int) any {
	if r.f == nil {
		return nil
	}
	return r.f.RareAt(pos)
}

// src is what the file shares with its source's files.
func (r FileRef[T]) src() *fileSource {
	if r.f == nil {
		return r.s.numbers.lean[r.srcOf()-1]
	}
	return r.f.src
}

// Source is the index in Config.Sources of the file's source.
func (r FileRef[T]) Source() int { return r.src().index }

// Name is the file's name in its source (File.Name): a copy of its own
// for a file whose name is in the snapshot's mapped memory.
func (r FileRef[T]) Name() string {
	if r.f == nil {
		return r.s.numbers.name(r.num)
	}
	return r.f.Name()
}

// nameView is the file's name and the page of mapped memory it is a
// view of (numbers.nameView), or nil: keep the page alive until the
// name's last use.
func (r FileRef[T]) nameView() (string, *offheap.Array[oneItem[T]]) {
	if r.f == nil {
		return r.s.numbers.nameView(r.num)
	}
	return r.f.Name(), nil
}

// Path is the file's path, made on each call (File.Path).
func (r FileRef[T]) Path() string {
	if r.f == nil {
		return r.s.numbers.path(r.num)
	}
	return r.f.Path()
}

// InDir reports whether the file's source is a directory or a feed that
// grants trust (File.InDir).
func (r FileRef[T]) InDir() bool {
	s := r.src()
	return s.dir && !s.revocation
}

// File returns the file's File: for the callers that need one (the
// admin commands, Diff, the revocation set). A file of one key kept
// without one has it made at each call (Snapshot.FileAt), whose item is
// its own copy.
func (r FileRef[T]) File() *File[T] {
	if r.f == nil {
		return r.s.numbers.at(r.num)
	}
	return r.f
}
