package keydir

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/keytool/keytool/internal/trustfile"
)

// The admin index's file stamps (docs/design.md, "The admin index") let
// a removal prove the index complete without reading every file: beside
// the shards, the index keeps, for each file whose records it holds, the
// stamp of the content those records were made from (trustfile.Stamp:
// inode, size, mtime and ctime to the nanosecond, mode, owner). Any write
// into a file changes its ctime, which no user can set back, and a rename
// over it changes its inode; a file whose stamp is the recorded one holds
// what the index says. A removal stats every file of the directory (one
// listing, one fstatat each, in parallel), reads only those whose stamp
// differs or is not recorded, adds their records, and then trusts the
// index to name every copy of what it removes.
//
// Layout: stamp files s0000 … by the first bits of the FNV-1a hash of a
// file's name (as many as make about 2,048 files a stamp file, so that a
// change rewrites a small one), each of records (name, stamp) and a CRC.

const stampMagic = "keytool admin index stamps 1\n"

// StampRacy is how recent a file's ctime may be for its stamp to go
// unrecorded: on a file system whose timestamps are coarser than a write
// (before Linux 6.13's fine-grained timestamps, a clock tick), a write
// in place just after the read, within the same tick and of the same
// size, would leave the stamp as it was. Such a file is read again by
// the next check instead (as git treats a "racily clean" file). (A
// variable for tests.)
var StampRacy = 2 * time.Second

// stampBits is the number of bits that give n files about 2,048 files a
// stamp file.
func stampBits(n int) int {
	bits := 0
	for bits < 12 && n>>bits > 2048 {
		bits++
	}
	return bits
}

// stampFileOf is the stamp file that holds the stamp of the file name.
func (x *sourceIndex) stampFileOf(name string) int { return x.stampFileOfHash(nameHash(name)) }

// stampFileOfHash is stampFileOf for a name's nameHash.
func (x *sourceIndex) stampFileOfHash(h uint32) int {
	if x.sbits == 0 {
		return 0
	}
	return int(h >> (32 - x.sbits))
}

// nameHash is the FNV-1a hash of a file's name.
func nameHash(name string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return h
}

func stampFileName(n int) string { return fmt.Sprintf("s%04x", n) }

// stampFile is one stamp file as read: its records, in the order of the
// directory's listing when it was written, so that a check walks it
// along a listing (which an unchanged directory gives in the same order)
// without a map; it makes one for a name not at its place (a new file,
// or the order changed).
type stampFile struct {
	body string            // records: name length (2 bytes), stamp length (1), name, stamp
	at   int               // the next record, in listing order
	m    map[string]string // name → stamp; nil until a name is not at its place
	lost bool              // the listing left the records' order: the map only
	out  bool              // to write again: a recorded stamp changed, or the order
}

// stampRecord parses the record at offset at of body (which readStamps
// checked).
func stampRecord(body string, at int) (name, stamp string, next int) {
	nl, sl := int(body[at])|int(body[at+1])<<8, int(body[at+2])
	at += 3
	return body[at : at+nl], body[at+nl : at+nl+sl], at + nl + sl
}

// stamp returns the recorded stamp of the file name.
func (sf *stampFile) stamp(name string) (string, bool) {
	if !sf.lost && sf.at < len(sf.body) {
		n, st, next := stampRecord(sf.body, sf.at)
		if n == name {
			sf.at = next
			return st, true
		}
	}
	if sf.m == nil {
		sf.m = map[string]string{}
		for at := 0; at < len(sf.body); {
			n, st, next := stampRecord(sf.body, at)
			sf.m[n], at = st, next
		}
	}
	st, ok := sf.m[name]
	if ok { // recorded elsewhere than at its place: the order changed
		sf.lost, sf.out = true, true
	}
	return st, ok
}

// done reports whether every record was met in order (else a file is
// gone, or the order changed: the file is written again).
func (sf *stampFile) done() bool { return !sf.lost && sf.at == len(sf.body) }

// readStamps reads every stamp file and checks its records; ok is false
// when one does not read back as written (the index cannot then prove
// itself complete).
func (x *sourceIndex) readStamps() ([]*stampFile, bool) {
	if !x.open() { // before the reads in parallel
		return nil, false
	}
	out := make([]*stampFile, 1<<x.sbits)
	ForEach(len(out), func(n int) {
		body, ok := x.read(stampFileName(n), stampMagic)
		if !ok {
			return
		}
		// The stamp file's records are read in place (body is this
		// stampFile's alone and never written): a copy of the 7 MB of
		// stamps of 100,000 files costs its page faults.
		s := unsafe.String(unsafe.SliceData(body), len(body))
		for at := 0; at < len(s); {
			if len(s)-at < 3 {
				return
			}
			nl, sl := int(s[at])|int(s[at+1])<<8, int(s[at+2])
			if len(s)-at-3 < nl+sl || !listedName(s[at+3:at+3+nl]) {
				return
			}
			at += 3 + nl + sl
		}
		out[n] = &stampFile{body: s}
	})
	if slices.Contains(out, nil) {
		return nil, false
	}
	return out, true
}

// appendStampRecord appends one record of a stamp file.
func appendStampRecord(b []byte, name, stamp string) []byte {
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, byte(len(stamp)))
	b = append(b, name...)
	return append(b, stamp...)
}

// writeStamps writes the stamp files of the records (name, encoded
// stamp), given in the order of a listing of the directory: only the
// stamp files numbered in which, or every one when which is nil.
func (x *sourceIndex) writeStamps(records iter.Seq2[string, string], which map[int]bool) error {
	bodies := make([][]byte, 1<<x.sbits)
	for name, st := range records {
		if n := x.stampFileOf(name); which == nil || which[n] {
			bodies[n] = appendStampRecord(bodies[n], name, st)
		}
	}
	for n, body := range bodies {
		if which != nil && !which[n] {
			continue
		}
		if err := x.write(stampFileName(n), stampMagic, body); err != nil {
			return err
		}
	}
	return nil
}

func encodeStamp(st trustfile.Stamp) string {
	b, _ := st.AppendBinary(make([]byte, 0, 64))
	return string(b)
}

// listedStamp is one entry of a directory and its stamp now.
type listedStamp struct {
	name  string
	hash  uint32 // nameHash(name), by the goroutine that stats it
	stamp trustfile.Stamp
	bad   bool // the stat failed: the file must be read to know
	skip  bool // a directory: not a file a load reads
	same  bool // the stamp is the one recorded (set by verify)
	// aliased: the file may be written through another path than this
	// directory's — a symbolic link, a hard link, another file system
	// mounted or linked in —, which no watch of the directory sees
	// (early.go).
	aliased bool
	link    bool // a symbolic link (the listing's type)
}

// writtenElsewhere reports whether a file of a directory on the device
// home may be written through another path than the directory's, which
// no watch of the directory sees: a symbolic link (link), a file of more
// than one name (links), or one on another device (dev) — a file system
// mounted or linked in. A proof marks such files (listedStamp.aliased);
// the periodic rescan keeps its period for them (rescanWait).
func writtenElsewhere(link bool, links, dev, home uint64) bool {
	return link || links > 1 || dev != home
}

// localElsewhere tells whether the stamp of a file that is not on the
// directory's file system — a symbolic link or a bind mount to another —
// shows every write, as LocalStamps tells for the directory's own: a
// link into NFS must not let a stamp from its attribute cache prove the
// file unchanged (docs/design.md, "The admin index"). The answer is kept
// per file system.
type localElsewhere struct {
	dir   string
	home  uint64 // the directory's device
	mu    sync.Mutex
	local map[uint64]bool // by device
}

func (le *localElsewhere) proves(name string, st trustfile.Stamp) bool {
	key := st.Device()
	if key == le.home {
		return true
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	ok, known := le.local[key]
	if !known {
		ok = LocalStamps(filepath.Join(le.dir, name))
		le.local[key] = ok
	}
	return ok
}

// listDir opens the directory dir and lists the names a load reads, in
// the order the file system gives them.
func listDir(dir string) (*os.File, []string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, slices.DeleteFunc(names, Ignored), nil
}

// listing is a directory's entries and their stamps, in the order of the
// listing, in the batches statDir stats them in (not copied into one).
type listing [][]listedStamp

// aliased are the names of the listed files that may be written through
// another path (listedStamp.aliased), and of the symbolic links to
// directories: a directory is no file a load reads, but the link's
// target may become one, with no event in this directory and no change
// of its stamp (found by review). A real subdirectory is not: it has
// links of its own (its entries' ".."), and becomes a file only by a
// removal here, which changes the directory's stamp.
func (ls listing) aliased() []string {
	var out []string
	for e := range ls.all() {
		if e.aliased && (!e.skip || e.link) {
			out = append(out, e.name)
		}
	}
	return out
}

// all yields every entry, in the order of the listing.
func (ls listing) all() iter.Seq[*listedStamp] {
	return func(yield func(*listedStamp) bool) {
		for _, b := range ls {
			for j := range b {
				if !yield(&b[j]) {
					return
				}
			}
		}
	}
}

// len is the number of entries.
func (ls listing) len() int {
	n := 0
	for _, b := range ls {
		n += len(b)
	}
	return n
}

// statDir lists the directory dir and stats every entry that a load
// would read, relative to the open directory: GOMAXPROCS goroutines stat
// each batch of names as the listing gives it, while it goes on.
func statDir(dir string) (listing, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	elsewhere := localElsewhere{dir: dir, home: trustfile.StampOf(fi).Device(), local: map[uint64]bool{}}
	var (
		batches = make(chan []listedStamp, 64)
		outs    listing
		wg      sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for b := range batches {
				for j := range b {
					e := &b[j]
					e.hash = nameHash(e.name)
					st, mode, links, err := trustfile.StampAt(f, e.name)
					e.stamp, e.bad, e.skip = st, err != nil, err == nil && mode.IsDir()
					e.aliased = writtenElsewhere(e.aliased, links, st.Device(), elsewhere.home)
					if !e.bad && !e.skip && !elsewhere.proves(e.name, st) {
						e.bad = true // its stamp may come from a cache: read it
					}
				}
			}
		})
	}
	for {
		// ReadDir, not Readdirnames: the entry's type (d_type) tells a
		// symbolic link without a stat of its own.
		ents, err := f.ReadDir(256)
		b := make([]listedStamp, 0, len(ents))
		for _, d := range ents {
			if !Ignored(d.Name()) {
				link := d.Type()&fs.ModeSymlink != 0
				b = append(b, listedStamp{name: d.Name(), aliased: link, link: link})
			}
		}
		outs = append(outs, b)
		batches <- b
		if err != nil {
			close(batches)
			wg.Wait()
			if err != io.EOF {
				return nil, err
			}
			return outs, nil
		}
	}
}

// recordable returns the stamp of the row r of this source, and whether
// an index may record it (stampsOf): the file loaded whole, and changed
// StampRacy or more before since.
func (ss *sourceState[T]) recordable(r *fileRow[T], since time.Time) (trustfile.Stamp, bool) {
	st := ss.stamp(r)
	return st, r.num != 0 && r.problem() == nil && len(r.skipped()) == 0 && st.Changed().Before(since.Add(-StampRacy))
}

// stampsOf returns a lookup of the stamps of the content the loader read
// for the files of directory source i that loaded whole, by name: ok is
// false for a file not in snap, skipped (partly or whole), or changed less
// than StampRacy before since, which the next check reads again. The
// stamps are snap's, the snapshot the records written beside them were
// made from (nil: none): not the loader's rows now, which a reload since
// snap may have read anew — a file's new stamp beside its old records,
// which the next proof would trust (IndexAfter's write waits for the
// index's lock; found by review, 2026-12-05). Each is looked up in snap's
// rows when asked for — a search of the sorted rows for a few names, a
// table of their positions by name (rowsByName) for many —: a rebuild
// asks for every file, in the order of a listing, and a map of them all,
// made before, was the peak of a first start's index write (some 100
// bytes a file, where the table is 8 to 16). A row is never written
// once its reload ended, and the source's shared stamp parts (dir, odd)
// never change once set: the loader's lock is held only to copy them.
// The lookup is for one goroutine.
func (l *Loader[T]) stampsOf(snap *Snapshot[T], i int, since time.Time) func(name string) (trustfile.Stamp, bool) {
	var zero trustfile.Stamp
	if snap == nil || i >= len(snap.rows) {
		return func(string) (trustfile.Stamp, bool) { return zero, false }
	}
	l.mu.Lock()
	ss := &l.states[i]
	shared := sourceState[T]{nameAt: ss.nameAt, dir: ss.dir, odd: ss.odd}
	l.mu.Unlock()
	var (
		files   = snap.rows[i]
		asked   int
		byTable *rowsByName[T]
	)
	return func(name string) (trustfile.Stamp, bool) {
		// A few names (a proof's changed files) are searched for; once
		// they pass a thirty-second of the rows (a rebuild asks for every
		// file), a table of the rows by name costs less than the
		// searches left.
		var r *fileRow[T]
		if asked++; byTable == nil && asked > files.n/32 && asked > 64 {
			byTable = newRowsByName(files, &snap.numbers, shared.nameAt)
		}
		if byTable != nil {
			r = byTable.lookup(name)
		} else {
			r = lookupRow(files, &snap.numbers, shared.nameAt, name)
		}
		if r == nil {
			return zero, false
		}
		return shared.recordable(r, since)
	}
}

// stampsIn returns the stamps stampOf gives of names, by name.
func stampsIn(stampOf func(string) (trustfile.Stamp, bool), names map[string]bool) map[string]trustfile.Stamp {
	out := map[string]trustfile.Stamp{}
	for name := range names {
		if st, ok := stampOf(name); ok {
			out[name] = st
		}
	}
	return out
}

// verify proves the index of directory source i complete for the
// directory as it is now, under the index's lock: it stats every file,
// reads through the loader (the trust-file rule, the parsers) those whose
// stamp is not the one recorded, adds their records to the shards, and
// records their stamps and the directory's. Records of what a changed or
// vanished file held before stay: a file the index names that no longer
// holds a term just does not match. It returns the index, and false
// when it cannot prove it complete: no stamps, the directory changed
// during the check, or so many files changed that reading them all is
// as cheap (the caller then reads every file).
func (fl *focusedLoad[T]) verify(i int) (*sourceIndex, bool) {
	x := fl.index(i)
	head := x.head()
	if head == nil || !bytes.Equal(head, fl.heads[i]) {
		return nil, false
	}
	start := time.Now()
	dir := x.stamp()
	recorded, listed, ok := readAndStat(x)
	if !ok {
		return nil, false
	}
	changed := compareStamps(x, recorded, listed)
	if !bytes.Equal(x.stamp(), dir) {
		return nil, false // names came or went during the listing
	}
	if len(changed) > 256 && len(changed) > listed.len()/4 {
		return nil, false
	}
	came, read := fl.reindex(i, changed)
	folded := len(came) > 0 && len(x.pending) > 0 // the log goes into the shards: a head follows
	if x.update(nil, came) != nil {
		return nil, false
	}
	fresh := stampsIn(fl.l.stampsOf(read, i, start), changed)
	which := map[int]bool{}
	for n, sf := range recorded {
		if sf.out || !sf.done() {
			which[n] = true
		}
	}
	for name := range fresh {
		which[x.stampFileOf(name)] = true
	}
	records := func(yield func(string, string) bool) {
		for e := range listed.all() {
			if !which[x.stampFileOfHash(e.hash)] {
				continue // a stamp file not written again
			}
			st, ok := fresh[e.name]
			switch {
			case e.same && !yield(e.name, encodeStamp(e.stamp)):
				return
			case !e.same && ok && !yield(e.name, encodeStamp(st)):
				return
			}
		}
	}
	if len(which) > 0 && x.writeStamps(records, which) != nil {
		return nil, false
	}
	if !bytes.Equal(dir, head) || folded {
		if x.writeHead(dir) != nil {
			return nil, false
		}
		fl.heads[i] = dir
		fl.writes[i].restart()
	}
	fl.noteAliased(i, listed)
	return x, true
}

// noteAliased keeps, for an early load (early.go), the files of source i
// that listed says may be written through another path.
func (fl *focusedLoad[T]) noteAliased(i int, listed listing) {
	if fl.aliased == nil {
		fl.aliased = map[int][]string{}
	}
	fl.aliased[i] = listed.aliased()
}

// readAndStat reads x's stamp files while it lists and stats the
// directory (on one goroutine: the stats keep every core busy).
func readAndStat(x *sourceIndex) ([]*stampFile, listing, bool) {
	var (
		recorded []*stampFile
		ok       bool
		read     = make(chan struct{})
	)
	go func() {
		recorded, ok = x.readStamps()
		close(read)
	}()
	listed, err := statDir(x.src)
	<-read
	return recorded, listed, err == nil && ok
}

// compareStamps compares the listed stamps with the recorded ones,
// walking each stamp file along the listing; it marks the listed entries
// whose stamp is the recorded one (same) and the stamp files that must
// be written again (out: a recorded stamp changed, or the order), and
// returns the names of the others. GOMAXPROCS goroutines share the stamp
// files (each walks its own along the whole listing).
func compareStamps(x *sourceIndex, recorded []*stampFile, listed listing) map[string]bool {
	workers := min(runtime.GOMAXPROCS(0), len(recorded))
	found := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var buf [64]byte
			for e := range listed.all() {
				n := x.stampFileOfHash(e.hash)
				if e.skip || n%workers != w {
					continue
				}
				sf := recorded[n]
				rec, ok := sf.stamp(e.name)
				enc, _ := e.stamp.AppendBinary(buf[:0])
				e.same = ok && !e.bad && rec == string(enc)
				if !e.same {
					found[w] = append(found[w], e.name)
					sf.out = sf.out || ok // a recorded stamp goes
				}
			}
		})
	}
	wg.Wait()
	changed := map[string]bool{}
	for _, names := range found {
		for _, name := range names {
			changed[name] = true
		}
	}
	return changed
}

// reindex reads the files of source i named in changed (through the
// loader) and returns their records, and the snapshot they were made
// from (nil: nothing to read).
func (fl *focusedLoad[T]) reindex(i int, changed map[string]bool) ([]indexRecord, *Snapshot[T]) {
	if len(changed) == 0 {
		return nil, nil
	}
	src := fl.l.cfg.Sources[i].Path
	paths := make([]string, 0, len(changed))
	for name := range changed {
		paths = append(paths, filepath.Join(src, name))
	}
	snap := fl.l.Reload(paths...)
	var files []*File[T]
	for r := range snap.Refs { // a File made only for a file changed
		if r.Source() != i {
			continue
		}
		name, page := r.nameView() // not Name: no copy for each file not changed
		hit := changed[name]
		runtime.KeepAlive(page)
		if hit {
			files = append(files, r.File())
		}
	}
	var recs []indexRecord
	for _, r := range fl.problemRecords(snap, i) {
		if changed[r.name] {
			recs = append(recs, r)
		}
	}
	return append(fl.records(i, files), recs...), snap
}

// writeStamps records, for the index x of source i rebuilt from snap,
// the stamps of the files snap read whole (in the order of a listing of
// the directory: the order the next check walks them in).
func (fl *focusedLoad[T]) writeStamps(x *sourceIndex, i int, snap *Snapshot[T], since time.Time) error {
	f, names, err := listDir(x.src)
	if err != nil {
		return err
	}
	f.Close()
	stampOf := fl.l.stampsOf(snap, i, since)
	x.sbits = stampBits(len(names)) // those recorded, or a few fewer
	return x.writeStamps(func(yield func(string, string) bool) {
		for _, name := range names {
			if st, ok := stampOf(name); ok && !yield(name, encodeStamp(st)) {
				return
			}
		}
	}, nil)
}
