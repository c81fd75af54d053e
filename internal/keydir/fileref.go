package keydir

// FileRef is a file of a snapshot as the snapshot's walk (Refs) and
// RefAt give it: its number and generation (Snapshot.FileAt, GenAt), and
// what a store reads of the file — its items, name, source, rare parts —
// by position, never by a pointer kept into its items. It is a value: a
// walk of 100,000 files makes none of them on the heap. A store that
// walks every file at each reload (authkeys' rebuild and name counts)
// reads them so, and needs no *File: a file of one key is to have none
// of its own, its item kept in the snapshot's mapped memory and a File
// made only for the caller who asks for one (File), which a walk making
// one a file would leave 4.8 MB of for the collector at each cold load
// of 100,000 keys (docs/design.md, "Memory of a loaded store", step 5).
// Today every file has its File, which a FileRef reads.
//
// A FileRef reads its snapshot: it is valid while the snapshot is, and
// the items Items gives must not be kept past it (copy one out: Item).
type FileRef[T any] struct {
	s   *Snapshot[T] // nil: a File of no snapshot (RefOf)
	f   *File[T]
	num uint32
}

// Refs yields the files of Files, in its order, as FileRefs.
func (s *Snapshot[T]) Refs(yield func(FileRef[T]) bool) {
	for i := range s.rows {
		for num, f := range s.filesOf(i) {
			if !yield(FileRef[T]{s, f, num}) {
				return
			}
		}
	}
}

// RefAt returns the file s numbers num; ok false if none.
func (s *Snapshot[T]) RefAt(num uint32) (r FileRef[T], ok bool) {
	f := s.numbers.at(num)
	return FileRef[T]{s, f, num}, f != nil
}

// ItemAt returns a copy of the item at pos of the file s numbers num,
// which must be one: what a store's lookup reads at each probe, copying
// the item out rather than keep a pointer into the file — a file of one
// key is to keep its item in the snapshot's mapped memory, which lives
// as long as the snapshot that reads it and no longer (docs/design.md,
// "Memory of a loaded store", step 5).
func (s *Snapshot[T]) ItemAt(num uint32, pos int) T { return s.numbers.at(num).Items()[pos] }

// RefOf returns f as a FileRef of no snapshot (numbered 0): for callers
// that hold a File without a loader (NewFile, NewDirFile).
func RefOf[T any](f *File[T]) FileRef[T] { return FileRef[T]{f: f} }

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

// Len is the number of the file's items.
func (r FileRef[T]) Len() int { return len(r.f.Items()) }

// Items are the file's items, in file order: read them while the
// snapshot is held, and keep no pointer into them (Item copies one out).
func (r FileRef[T]) Items() []T { return r.f.Items() }

// Item returns a copy of the file's item at pos.
func (r FileRef[T]) Item(pos int) T { return r.f.Items()[pos] }

// RareAt is what Config.Rare returned for the item at pos: nil for most.
func (r FileRef[T]) RareAt(pos int) any { return r.f.RareAt(pos) }

// Source is the index in Config.Sources of the file's source.
func (r FileRef[T]) Source() int { return r.f.Source() }

// Name is the file's name in its source (File.Name).
func (r FileRef[T]) Name() string { return r.f.Name() }

// Path is the file's path, made on each call (File.Path).
func (r FileRef[T]) Path() string { return r.f.Path() }

// InDir reports whether the file's source is a directory or a feed that
// grants trust (File.InDir).
func (r FileRef[T]) InDir() bool { return r.f.InDir() }

// File returns the file's File: for the callers that need one (the
// admin commands, an Entry's making), which a file of one key is to
// have made when asked for.
func (r FileRef[T]) File() *File[T] { return r.f }
