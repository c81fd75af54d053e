package keydir

import (
	"bytes"
	"errors"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/keytool/keytool/internal/fewset"
	"github.com/keytool/keytool/internal/trustfile"
)

// LoadFor loads what an admin command looking for q needs: every single
// file source in full, and of each directory source only the files the
// admin index names for q's terms (and the files that were skipped), in
// time that does not grow with the directory (docs/design.md, "The admin
// index"). Without an index directory (Config.Index), or without
// Config.Terms, it is Reload.
//
// A stale index (the directory's stamp changed since it was written, or
// it does not read back) is rebuilt from a full load, which this load then
// is. finish records in the index what the command changed in the loaded
// files since; call it once the command is done (its errors only leave
// the index stale, to be rebuilt by the next command).
func (l *Loader[T]) LoadFor(q Query) (finish func()) {
	if l.cfg.Index == "" || l.cfg.Terms == nil {
		l.Reload()
		return func() {}
	}
	fl := &focusedLoad[T]{l: l, heads: map[int][]byte{}, q: q}
	fl.load(q)
	l.mu.Lock()
	l.focus = fl
	l.mu.Unlock()
	return fl.finish
}

// IndexMinFiles is the number of files from which a directory source gets
// an admin index: below it, a full load costs about what the index saves.
// (A variable for tests.)
var IndexMinFiles = 1000

// lockIndex takes the index directory's lock, waiting at most wait for
// it, creating the directory if create is set; ok is false when there is
// no index to use: none, or no lock to be had (lockDir), without which
// two commands could fold the same log into the shards one after the
// other. Why it was not had is
// kept for Unlocked, marked Index: nothing races without it — the index
// is not used, the command loads in full — but every admin command is
// then as slow as a whole load, which its user should hear of.
func (l *Loader[T]) lockIndex(create bool, wait time.Duration) (unlock func(), ok bool) {
	if create {
		if err := os.MkdirAll(l.cfg.Index, 0o700); err != nil {
			return nil, false
		}
	} else if _, err := os.Stat(l.cfg.Index); err != nil {
		return nil, false
	}
	unlock, held, why, err := lockDirWithin(l.cfg.Index, wait)
	if why != nil {
		why.Index = true
		l.noteUnlocked(why)
	}
	return unlock, err == nil && held
}

// Extend adds q to what a loader that LoadFor narrowed reads, and
// reloads: for a command that learns what else it needs from what it read
// (the key of a name it removes). A loader not narrowed is left as it is.
func (l *Loader[T]) Extend(q Query) {
	l.mu.Lock()
	fl, narrow := l.focus, l.narrow
	l.mu.Unlock()
	if len(narrow) == 0 {
		return
	}
	unlock, ok := fl.lock(false)
	if !ok {
		l.Widen()
		return
	}
	more := map[int][]string{}
	for i, names := range narrow {
		x := fl.index(i)
		head := x.head()
		found, ok := x.lookup(q)
		if !ok || head == nil || !fl.unchanged(i, head) || !bytes.Equal(head, fl.heads[i]) {
			unlock()
			l.Widen()
			return
		}
		more[i] = append(slices.Clone(names), found...)
	}
	unlock()
	l.mu.Lock()
	l.narrow = more
	fl.q.Terms = append(fl.q.Terms, q.Terms...)
	fl.q.Prefixes = append(fl.q.Prefixes, q.Prefixes...)
	l.mu.Unlock()
	l.Reload()
}

// Widen loads in full a loader that LoadFor narrowed, for a lookup the
// admin index cannot answer (a fingerprint in a form the index does not
// keep, a name it does not hold); it reports whether the loader was
// narrowed.
func (l *Loader[T]) Widen() bool {
	l.mu.Lock()
	fl, narrowed := l.focus, len(l.narrow) > 0
	l.narrow = nil
	l.mu.Unlock()
	if !narrowed {
		return false
	}
	snap := l.Reload()
	for i, head := range fl.heads {
		if !fl.unchanged(i, head) {
			delete(fl.heads, i) // changed meanwhile: left stale
		}
	}
	fl.base = snap
	return true
}

// ReloadComplete is Reload for a removal, which must take every copy of
// what it removes, including one written into a file in place (which
// leaves the directory's stamp as it was). In a loader LoadFor narrowed,
// the admin index of each narrowed directory of trust is first proved
// complete against the directory as it is now (verify: every file's
// stamp, the files that changed read and indexed again), and then the
// files it names for the query (and Extend's) are read. Where that cannot
// be proved (no stamps yet, a directory changing meanwhile, many files
// changed) every file is read (Widen), and the index written anew from
// them, stamps included, for the next removal; on a file system whose
// stat may answer from a cache (NFS, SMB, FUSE), every file is read
// (docs/design.md, "The admin index").
//
// A file replaced while it was read (*trustfile.ChangedError: another
// keytool's rewrite of it renamed in between the stat and the read) is
// read again at once (rereadReplaced), not left out until the next
// reload: a removal would otherwise not find what it holds.
func (l *Loader[T]) ReloadComplete() *Snapshot[T] {
	l.reloadComplete()
	return l.rereadReplaced()
}

// ProofReadsAll reports whether ReloadComplete, in this loader LoadFor
// narrowed, would read every file rather than prove the admin index
// complete from the files' stamps: a directory of trust on a file
// system whose stat may answer from a cache (LocalStamps). A removal
// then makes its writes after the proof, not before (enforce first,
// docs/design.md "The admin index"): a full read after this process
// wrote drops the index's head, and every command after would load in
// full (review of 9fcc5b4).
func (l *Loader[T]) ProofReadsAll() bool {
	l.mu.Lock()
	narrow := l.narrow
	l.mu.Unlock()
	for i := range narrow {
		if !l.cfg.Sources[i].Revocation && !LocalStamps(l.cfg.Sources[i].Path) {
			return true
		}
	}
	return false
}

// reloadComplete is ReloadComplete before rereadReplaced.
func (l *Loader[T]) reloadComplete() *Snapshot[T] {
	l.mu.Lock()
	fl, narrow := l.focus, l.narrow
	l.mu.Unlock()
	if len(narrow) == 0 {
		return l.Reload()
	}
	unlock, ok := fl.lock(false)
	if !ok {
		l.Widen()
		return l.Snapshot()
	}
	defer unlock()
	more := map[int][]string{}
	for i, names := range narrow {
		more[i] = names
		if l.cfg.Sources[i].Revocation {
			continue // a revoked copy left unseen refuses, the safe side
		}
		if !LocalStamps(l.cfg.Sources[i].Path) {
			l.Widen() // stamps from a cache prove nothing: read every file
			return l.Snapshot()
		}
		x, ok := fl.verify(i)
		var found []string
		if ok {
			found, ok = x.lookup(fl.q)
		}
		if !ok {
			// Read every file, and since they are read, write the index
			// anew, stamps included: else an index with too many files
			// changed (or unstamped) would cost every removal a full load.
			stamp, start := fl.index(i).stamp(), time.Now()
			l.Widen()
			_ = fl.rebuild(i, l.Snapshot(), stamp, start) // failed: stale, and loaded in full
			return l.Snapshot()
		}
		more[i] = append(slices.Clone(names), found...)
	}
	l.mu.Lock()
	l.narrow = more
	l.mu.Unlock()
	return l.Reload()
}

// ReloadCurrent is Reload for a check that another writer must not
// outrun — authkeys.Store.Add's, that a key is not authorized yet and a
// name is free, made under the directory's lock (LockDir). In a loader
// LoadFor narrowed, the files another command added since the load are
// in no index yet (a command records its changes when it ends): where
// the stamp of a narrowed directory changed since the load, it is
// ReloadComplete, which finds them from the files' stamps; where none
// did — or where the one change since the load is this process's making
// of the directory's lock file, which an Add makes before its check the
// first time the directory is locked (ownWrites.lockOnly) —, nothing was
// added, removed or renamed there, and the narrowed files are read again
// (a file written in place is not seen, as by every narrowed load:
// docs/design.md, "The admin index").
func (l *Loader[T]) ReloadCurrent() *Snapshot[T] {
	l.mu.Lock()
	fl, narrow := l.focus, l.narrow
	l.mu.Unlock()
	for i := range narrow {
		if !fl.unchanged(i, fl.loaded[i]) {
			return l.ReloadComplete()
		}
	}
	l.Reload()
	return l.rereadReplaced()
}

// rereadReplaced reads again, at once, the files the last reload found
// replaced while it read them (Problem.Replaced), as often as
// replacedTries: each is stat'ed, checked and read anew, as any reload reads
// a file. One replaced at every try stays a problem (fail closed), as
// does one the rule refuses when read again.
func (l *Loader[T]) rereadReplaced() *Snapshot[T] {
	snap := l.Snapshot()
	for range replacedTries {
		var again []string
		for _, p := range snap.Problems {
			if p.Replaced() {
				again = append(again, p.Path)
			}
		}
		if len(again) == 0 {
			break
		}
		snap = l.Reload(again...)
	}
	return snap
}

// replacedTries bounds rereadReplaced's reads of a file replaced each
// time it is read.
const replacedTries = 8

// LocalStamps reports whether a directory's file system shows every
// write in the files' stamps (trustfile.LocalStamps). (A variable for
// tests.)
var LocalStamps = trustfile.LocalStamps

// focusedLoad is one LoadFor: the heads the index had (or was given) for
// each directory source, and the snapshot they describe.
type focusedLoad[T any] struct {
	l     *Loader[T]
	q     Query          // what the command looks for (LoadFor's, and Extend's)
	heads map[int][]byte // by source: the head the index has; absent: stale and not rebuilt
	// loaded are the stamps of the directory sources at the load, by
	// source: finish looks for changes in each.
	loaded map[int][]byte
	base   *Snapshot[T]
	// locked are the indexes in use while the index is locked (lock), by
	// source: each reads its directory through one open descriptor,
	// closed when the lock is released. nil while unlocked.
	locked map[int]*sourceIndex
	// writes are this process's writes into each directory source since
	// the load (ownwrites.go), the change finish may record; unwatch
	// closes them.
	writes  map[int]*ownWrites
	unwatch []func()
	// proved: a LoadProved load, still as proved; asked, the terms it
	// read for (early.go).
	proved bool
	asked  map[Term]bool
	// aliased are, by source, the files the last verify listed that may
	// be written through another path (listedStamp.aliased).
	aliased map[int][]string
	// revStamps are, for a LoadProved load, the stamps at the proof of
	// the revocation directories read whole then and not at every
	// decision (proveRevocations).
	revStamps map[int][]byte
	// versions are, for a LoadProved load, the versions of the indexes
	// the proof left (sourceIndex.version): an index another process
	// rebuilt since — an admin command, a server's IndexAfter — may hold
	// records older than what the proof read, at the same head, and is no
	// longer the one proved.
	versions map[int][]byte
}

// unchanged reports whether directory source i is as it was at stamp
// (the head or the load): its stamp is still that, or the one change
// since is this process's making of the directory's lock file, which no
// load reads (ownWrites.lockOnly) — the first lock of the directory, by
// an Add before its check or a removal before its rewrite.
func (fl *focusedLoad[T]) unchanged(i int, stamp []byte) bool {
	now := fl.index(i).stamp()
	return bytes.Equal(now, stamp) || fl.writes[i].lockOnly(stamp, now)
}

// onlyOwn reports whether this process's writes into directory source i
// are the whole change from head: the first was made with the directory
// at head, each next one where the last left it; the index then moves
// to the stamp after the last (ownwrites.go).
func (fl *focusedLoad[T]) onlyOwn(i int, head []byte) bool {
	w := fl.writes[i]
	return w != nil && !w.broken && w.writes > 0 && bytes.Equal(w.first, head)
}

// lock takes the index's lock (Loader.lockIndex); the unlock it returns
// also closes the index directories read meanwhile.
func (fl *focusedLoad[T]) lock(create bool) (unlock func(), ok bool) {
	wait := lockWait
	if fl.asked != nil {
		wait = earlyLockWait // LoadProved's: a server's early decision, for which waiting costs more than the full load
	}
	release, ok := fl.l.lockIndex(create, wait)
	if !ok {
		// The lock file may be held even so (the directory's own lock
		// was not: lockDir): let it go. Kept, it made this process's
		// next lock of the index wait for itself, and every other
		// command for it, 10 s a time (found by a hung
		// TestLoadForConcurrentProcesses, 2026-12-03).
		if release != nil {
			release()
		}
		return nil, false
	}
	fl.locked = map[int]*sourceIndex{}
	return func() {
		for _, x := range fl.locked {
			x.close()
		}
		fl.locked = nil
		release()
	}, true
}

// index is the index of directory source i: while the index is locked,
// the same one for every call.
func (fl *focusedLoad[T]) index(i int) *sourceIndex {
	if x := fl.locked[i]; x != nil {
		return x
	}
	x := newSourceIndex(fl.l.cfg.Index, fl.l.cfg.Sources[i].Path, fl.l.indexRule())
	if fl.locked != nil {
		fl.locked[i] = x
	}
	return x
}

// load reads through the index the directory sources whose index is
// current, and the others in full, rebuilding their indexes.
func (fl *focusedLoad[T]) load(q Query) {
	l := fl.l
	narrow := map[int][]string{}
	stamps := map[int][]byte{}
	fl.writes = map[int]*ownWrites{}
	for i, src := range l.cfg.Sources {
		if src.Dir && src.Feed == nil { // a feed has no directory to stamp
			w, unwatch := watchWrites(src.Path)
			fl.writes[i], fl.unwatch = w, append(fl.unwatch, unwatch)
			stamps[i] = fl.index(i).stamp()
		}
	}
	fl.loaded = stamps
	if unlock, ok := fl.lock(false); ok {
		for i := range stamps {
			x, ok := fl.current(i, stamps[i])
			if !ok {
				continue
			}
			if names, ok := x.lookup(q); ok {
				narrow[i] = names
			} else {
				delete(fl.heads, i)
			}
		}
		unlock()
	}
	l.mu.Lock()
	l.narrow = narrow
	l.mu.Unlock()
	start := time.Now()
	snap := l.Reload()
	fl.base = snap
	var stale []int
	for i, src := range l.cfg.Sources {
		if _, ok := narrow[i]; src.Dir && src.Feed == nil && !ok && fl.count(snap, i) >= IndexMinFiles {
			stale = append(stale, i)
		}
	}
	if len(stale) == 0 {
		return
	}
	unlock, ok := fl.lock(true)
	if !ok {
		return
	}
	defer unlock()
	for _, i := range stale {
		_ = fl.rebuild(i, snap, stamps[i], start) // failed: stale, and loaded in full
	}
}

// rebuild writes the index of directory source i anew from snap, a load
// of all its files begun at start when the directory's stamp was stamp,
// and records the head in fl.heads. Called with the index locked. A
// directory changed since stamp is left stale, not an error; a write
// that failed is (the index is then absent or stale).
func (fl *focusedLoad[T]) rebuild(i int, snap *Snapshot[T], stamp []byte, start time.Time) error {
	x := fl.index(i)
	// A directory that changed during the load may have been read half
	// before, half after: its index is left stale.
	if !bytes.Equal(x.stamp(), stamp) {
		return nil
	}
	recs := func(yield func(indexRecord) bool) {
		for r := range fl.eachRecord(i, snap.All) { // a File at a time: no list of them
			if !yield(r) {
				return
			}
		}
		for _, r := range fl.problemRecords(snap, i) {
			if !yield(r) {
				return
			}
		}
	}
	if err := x.rebuild(recs); err != nil {
		return err
	}
	if err := fl.writeStamps(x, i, snap, start); err != nil {
		return err
	}
	if err := x.writeHead(stamp); err != nil {
		return err
	}
	fl.heads[i] = stamp
	fl.writes[i].restart() // the writes before are in it, as after verify
	return nil
}

// readAsIs reports whether the files of source i among came are on disk
// as the loader read them (the same stamp), and those among gone, not
// among came, are still gone. Called with the index locked. (A file
// rewritten in place to the same size within the clock tick of this
// command's read, and checked by another command meanwhile, would pass:
// the racily-clean case the stamp files' StampRacy guards; here the
// command's own writes are among came, and must not leave every index
// stale.)
func (l *Loader[T]) readAsIs(i int, gone, came []*File[T]) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	cameAt := map[string]bool{}
	for _, f := range came {
		if f.Source() != i {
			continue
		}
		cameAt[f.Path()] = true
		ss := &l.states[i]
		r := lookupRow(ss.files, &l.numbers, ss.nameAt, f.Name())
		fi, err := os.Stat(f.Path())
		if r == nil || err != nil || trustfile.StampOf(fi) != ss.stamp(r) {
			return false
		}
	}
	for _, f := range gone {
		if f.Source() != i || cameAt[f.Path()] {
			continue
		}
		if _, err := os.Lstat(f.Path()); !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return true
}

// current returns the index of directory source i if it is current for
// the directory's stamp now, or can be brought up to date from the files'
// stamps (verify: a file added, removed or rewritten by hand, config
// management or the kubelet is read and indexed, not every file); it
// records the head it trusts in fl.heads. Called with the index locked.
func (fl *focusedLoad[T]) current(i int, stamp []byte) (*sourceIndex, bool) {
	x := fl.index(i)
	head := x.head()
	switch {
	case head == nil:
		return nil, false
	case bytes.Equal(head, stamp):
		fl.heads[i] = head
		return x, true
	case !LocalStamps(x.src):
		return nil, false // rebuilt from a full load
	}
	fl.heads[i] = head
	x, ok := fl.verify(i)
	if !ok {
		delete(fl.heads, i)
	}
	return x, ok
}

// count is the number of files (loaded or skipped) of source i in snap.
func (fl *focusedLoad[T]) count(snap *Snapshot[T], i int) int {
	n := len(fl.problemRecords(snap, i))
	for r := range snap.Refs { // no File made for a file of one key
		if r.Source() == i {
			n++
		}
	}
	return n
}

// records are the index records of the files of source i among files.
func (fl *focusedLoad[T]) records(i int, files []*File[T]) []indexRecord {
	return slices.Collect(fl.eachRecord(i, slices.Values(files)))
}

// eachRecord yields the index records of the files of source i among
// files, each (term, file) once.
func (fl *focusedLoad[T]) eachRecord(i int, files iter.Seq[*File[T]]) iter.Seq[indexRecord] {
	return func(yield func(indexRecord) bool) {
		var seen fewset.Set[Term] // a file's terms so far: most files hold one key, a JWK Set thousands
		for f := range files {
			if f.Source() != i {
				continue
			}
			name := f.Name()
			seen = fewset.New(seen.Members())
			for j := range f.Items() {
				for _, t := range fl.termsOf(f, j) {
					if seen.Add(t) && !yield(indexRecord{t, name}) {
						return
					}
				}
			}
		}
	}
}

// problemRecords are the records of source i's skipped files in snap.
func (fl *focusedLoad[T]) problemRecords(snap *Snapshot[T], i int) []indexRecord {
	dir := fl.l.cfg.Sources[i].Path
	var out []indexRecord
	seen := map[indexRecord]bool{} // a search of out made 30,000 skipped files take 10 s
	for _, p := range snap.Problems {
		if r := (indexRecord{problemTerm, filepath.Base(p.Path)}); filepath.Dir(p.Path) == dir && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// minus returns the records of a that are not in b.
func minus(a, b []indexRecord) []indexRecord {
	inB := make(map[indexRecord]bool, len(b))
	for _, r := range b {
		inB[r] = true
	}
	return slices.DeleteFunc(slices.Clone(a), func(r indexRecord) bool { return inB[r] })
}

// termsOf is what indexes an entry: in a revocation source only its key
// (both stores read the same revocation directories, and share their
// index), else what the store's Terms says.
func (fl *focusedLoad[T]) termsOf(f *File[T], i int) []Term {
	if fl.l.cfg.Sources[f.Source()].Revocation {
		if fl.l.cfg.KeyOf == nil {
			return nil
		}
		return []Term{KeyTerm(fl.l.cfg.KeyOf(&f.Items()[i]))}
	}
	return fl.l.cfg.Terms(f, i)
}

// finish records what changed since the load in each source directory
// whose index was current, under the index's lock. The directory's stamp
// tells that it changed, not who changed it: a record from the head this
// command had to the stamp now is right only if no other command wrote
// into the directory meanwhile, and one that did (and is still running,
// or ended first and could not record) would have its change taken in
// without its records. So a command that changed a directory and cannot
// record its change — another command recorded since this one loaded,
// a file is no longer as it read it, or the index was not current at
// its load — makes the index stale (staleStamp): the next command brings
// it up to date from the files' stamps, where a record from that head
// would have left the other's file out of every narrowed load (docs/design.md,
// "The admin index").
func (fl *focusedLoad[T]) finish() {
	l := fl.l
	defer func() {
		for _, unwatch := range fl.unwatch {
			unwatch()
		}
		fl.unwatch = nil
	}()
	// A directory whose stamp is still the one the index had (or, not
	// current, the one it had at the load) was not changed, by this
	// command or another: nothing to record, nor to lock and read for.
	changed := false
	for i := range fl.loaded {
		changed = changed || !bytes.Equal(fl.index(i).stamp(), fl.since(i))
	}
	if !changed {
		return
	}
	unlock, ok := fl.lock(false)
	if !ok {
		return
	}
	defer unlock()
	now := l.Snapshot()
	gone, came := Diff(fl.base, now)
	for i := range fl.loaded {
		x := fl.index(i)
		stamp := x.stamp()
		if bytes.Equal(stamp, fl.since(i)) {
			continue // nothing changed in the directory
		}
		pb, pn := fl.problemRecords(fl.base, i), fl.problemRecords(now, i)
		oldRecs := append(fl.records(i, gone), minus(pb, pn)...)
		newRecs := append(fl.records(i, came), minus(pn, pb)...)
		if !slices.ContainsFunc(gone, func(f *File[T]) bool { return f.Source() == i }) &&
			!slices.ContainsFunc(came, func(f *File[T]) bool { return f.Source() == i }) && len(oldRecs)+len(newRecs) == 0 {
			// The directory changed, but in no file this command loaded:
			// someone else changed it, and the index cannot say what —
			// unless the one change is this command's making of the
			// directory's lock file, which holds no records: the index
			// moves to the directory's stamp (a command that locked the
			// directory first, and wrote nothing).
			if head, ok := fl.heads[i]; ok && fl.writes[i].lockOnly(head, stamp) && bytes.Equal(x.head(), head) {
				x.record(head, stamp, nil, nil)
			}
			continue
		}
		cur := x.head()
		if cur == nil || bytes.Equal(cur, staleStamp) {
			continue // no index, or one already stale
		}
		// A file changed since this command read it (readAsIs): its
		// records may be older than those another command's check wrote
		// meanwhile, and "gone" would hide a copy they hold. And the
		// change recorded is this process's writes alone (onlyOwn), up to
		// the stamp after the last: a file another writer added before,
		// between or after them is not taken in without its records
		// (after them, the index's stamp is not the directory's, and the
		// next command finds the file from the files' stamps).
		if head, ok := fl.heads[i]; ok && bytes.Equal(cur, head) && fl.onlyOwn(i, head) && l.readAsIs(i, gone, came) {
			x.record(head, fl.writes[i].last, oldRecs, newRecs)
		} else {
			x.record(cur, staleStamp, nil, nil)
		}
	}
}

// since is the stamp from which finish looks for changes in directory
// source i: the head the index had, else the stamp at the load.
func (fl *focusedLoad[T]) since(i int) []byte {
	if head, ok := fl.heads[i]; ok {
		return head
	}
	return fl.loaded[i]
}

// staleStamp is the stamp of no directory: finish records it as the
// index's when it cannot record a change it made, so that no command
// records a change of its own from the stamp the index had, which would
// take this one's in without its records.
var staleStamp = []byte("stale") // keydirtest.IndexLeftStale looks for it in a log
