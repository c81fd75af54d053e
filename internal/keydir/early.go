package keydir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A server's first decisions, before its full load has read every file
// (docs/design.md, "Early decisions"): a loader narrowed as an admin
// command's is (LoadFor), whose admin index is proved complete from every
// file's stamp as a removal proves it (verify), and which stops answering
// at the first sign that the files changed since. Where it cannot prove,
// or stops, it says so and the server waits for its full load: an early
// loader never answers from what it has not proved.

// LoadProved narrows the loader to what deciding q needs, as LoadFor does,
// but only where it can prove what it reads is what a full load would:
//
//   - It first watches the sources (the process's shared inotify
//     instance): a change from then on stops it (ExtendProved).
//   - Under the index's lock it proves the index of every directory of
//     trust complete from every file's stamp (verify), and reads the files
//     the index names for q, the skipped ones, and those a watch of the
//     directory cannot see written (symbolic links, hard links, other
//     file systems: listedStamp.aliased), at most maxAliased of them.
//   - Revocation directories, single files and directories of fewer than
//     IndexMinFiles names with no index are read whole, at every read: a
//     revocation is never judged from an index, which another user's
//     trust-file rule may have written. A revocation directory of
//     IndexMinFiles names or more is read whole at the proof, and after
//     through its aliased files, its stamp checked (proveRevocations).
//   - After reading, still under the lock, every directory's stamp must
//     be the one proved.
//
// It returns a *NotProvedError where it cannot: no index directory or
// terms, a feed (no stamps), a directory that cannot be watched, an
// index missing for a directory of IndexMinFiles names or more, stamps
// from a cache (LocalStamps), a proof that fails (verify: no stamps, the
// directory changing meanwhile, many files changed, an index it cannot
// write), too many aliased files, or a change seen meanwhile. The loader
// is then left holding nothing to decide on. Close ends its watch.
func (l *Loader[T]) LoadProved(q Query) error {
	if err := l.loadProved(q); err != nil {
		l.dropProved()
		err.Large = l.large()
		return err
	}
	return nil
}

// loadProved is LoadProved but for what a failure leaves.
func (l *Loader[T]) loadProved(q Query) *NotProvedError {
	if l.cfg.Index == "" || l.cfg.Terms == nil {
		return &NotProvedError{Reason: "no admin index for this store"}
	}
	for _, src := range l.cfg.Sources {
		if src.Feed != nil {
			return &NotProvedError{Dir: src.Path, Reason: "a feed has no stamps to prove its entries by"}
		}
	}
	sub, err := subscribeShared()
	if err != nil {
		return &NotProvedError{Reason: "cannot watch the trust files", Err: err}
	}
	l.mu.Lock()
	l.fw = sub
	l.ensureWatches()
	var failed []string
	for d := range l.failed {
		failed = append(failed, d)
	}
	l.mu.Unlock()
	if len(failed) > 0 {
		slices.Sort(failed)
		return &NotProvedError{Dir: failed[0], Reason: "cannot watch it"}
	}
	fl := &focusedLoad[T]{l: l, heads: map[int][]byte{}, asked: map[Term]bool{}, revStamps: map[int][]byte{}, aliased: map[int][]string{}, versions: map[int][]byte{}}
	if err := fl.proveAndRead(q); err != nil {
		return err
	}
	if !l.quiet() {
		return &NotProvedError{Reason: "a trust file changed during the proof"}
	}
	return nil
}

// large reports whether a directory of trust (not of revocations) holds
// IndexMinFiles files or more (names a load does not ignore): one whose
// full load takes long enough that deciding nothing before it is worth
// a word, and that IndexAfter indexes.
func (l *Loader[T]) large() bool {
	return slices.ContainsFunc(l.cfg.Sources, func(src Source) bool {
		if !src.Dir || src.Feed != nil || src.Revocation {
			return false
		}
		f, err := os.Open(src.Path)
		if err != nil {
			return false // the full load says what is wrong with it
		}
		defer f.Close()
		n := 0
		for n < IndexMinFiles {
			names, err := f.Readdirnames(1024)
			for _, name := range names {
				if !Ignored(name) {
					n++
				}
			}
			if err != nil {
				break
			}
		}
		return n >= IndexMinFiles
	})
}

// NotProvedError says why LoadProved could not prove the admin index
// complete, so that a server decides nothing before its full load: for
// its log, where that makes the start of a large store slow.
type NotProvedError struct {
	Dir    string // the directory it is about; "" for the store
	Reason string
	Err    error // the system's error, if any
	// Large is set where a directory of trust holds IndexMinFiles files
	// or more: its full load is slow, and the reason worth telling. A
	// smaller store loads in full about as fast as it would prove.
	Large bool
	// Unproved is set where Dir's index exists but the proof could not
	// bring it up to date from the files' stamps (none recorded, many
	// files changed since, the directory changing meanwhile): the next
	// proof would fail the same way, so the full load writes it anew
	// (IndexAfter's rewrite), unless another process wrote it since the
	// proof (version: the index's, under the proof's lock).
	Unproved bool
	version  []byte
}

func (e *NotProvedError) Error() string {
	msg := "keydir: no early decisions"
	if e.Dir != "" {
		msg += " for " + e.Dir
	}
	msg += ": " + e.Reason
	if e.Err != nil {
		msg += ": " + strings.TrimPrefix(e.Err.Error(), "keydir: ")
	}
	return msg
}

func (e *NotProvedError) Unwrap() error { return e.Err }

// maxAliased bounds the files of a directory read at every early
// decision because no watch sees them written (LoadProved); maxAsked,
// the keys one early loader reads for (ExtendProved): each adds its
// files to the narrowed list every decision copies, and that many
// decisions, at about half a millisecond each, take a third of the time
// a full load of 100,000 files takes to come, while slowing it.
const (
	maxAliased = 256
	maxAsked   = 1024
)

// earlyLockWait bounds an early load's wait for the index's lock: an
// admin command holding it (a removal with a stale index holds it through
// a full load) must not hold a server's handshakes back longer than its
// own full load would. Not had: no early decision.
var earlyLockWait = 50 * time.Millisecond

// proveAndRead is LoadProved's proof and read, under the index's lock.
func (fl *focusedLoad[T]) proveAndRead(q Query) *NotProvedError {
	l := fl.l
	if mountedIn(l.cfg.Sources) {
		return &NotProvedError{Reason: "a file system is mounted inside a trust directory (or " + mountInfo + " is unreadable): a file there is written with no event"}
	}
	unlock, ok := fl.lock(false)
	if !ok {
		err := fl.indexLockFailure(false)
		if errors.Is(err, fs.ErrNotExist) {
			if err := writable(existingAbove(l.cfg.Index)); err != nil {
				return &NotProvedError{Reason: "no admin index (" + l.cfg.Index + "), and this user may not make one", Err: err}
			}
			return &NotProvedError{Reason: "no admin index yet (" + l.cfg.Index + "): the full load writes one for the next start"}
		}
		return &NotProvedError{Reason: "the admin index could not be locked", Err: err}
	}
	defer unlock()
	narrow := map[int][]string{}
	for i, src := range l.cfg.Sources {
		switch {
		case !src.Dir:
			continue // read whole
		case src.Revocation && fewFiles(src.Path):
			continue // read whole, at every decision
		case src.Revocation:
			names, err := fl.proveRevocations(i)
			if err != nil {
				return err
			}
			narrow[i] = names
			continue
		}
		x := fl.index(i)
		head := x.head()
		if head == nil {
			refused := x.refused()
			switch {
			case fewFiles(src.Path):
			case refused != nil:
				return &NotProvedError{Dir: src.Path, Reason: fmt.Sprintf("its admin index in %s cannot be used", l.cfg.Index), Err: refused}
			default:
				return &NotProvedError{Dir: src.Path, Reason: fmt.Sprintf("its admin index in %s is missing or unreadable; the full load writes one where none is", l.cfg.Index)}
			}
			continue // no index, and too small for one: read whole
		}
		if !LocalStamps(src.Path) {
			return cachedStamps(src.Path)
		}
		fl.heads[i] = head
		x, ok := fl.verify(i)
		switch {
		case !ok:
			return &NotProvedError{Dir: src.Path, Reason: "its admin index could not be proved complete (no stamps, files changed during the proof or many since, or an index this user may not write)", Unproved: true, version: fl.index(i).version()}
		case len(fl.aliased[i]) > maxAliased:
			return tooManyAliased(src.Path)
		}
		names, ok := x.lookup(q)
		if !ok {
			return &NotProvedError{Dir: src.Path, Reason: "its admin index could not be read"}
		}
		fl.versions[i] = x.version() // after the proof's own writes
		narrow[i] = append(names, fl.aliased[i]...)
	}
	fl.proved = true
	for _, t := range q.Terms {
		fl.asked[t] = true
	}
	if !fl.read(narrow, nil) {
		return &NotProvedError{Reason: "a trust directory changed during the proof"}
	}
	return nil
}

// proveRevocations readies revocation directory i, of IndexMinFiles
// names or more, to be read whole by the proof's read and, at each
// decision after, only through its files no watch sees written: it
// records the directory's stamp first (asProved compares it at every
// decision: a file added, removed or renamed in changes it; a write into
// a file in place is an event of the watch), then lists and stats every
// entry (statDir) for the aliased ones, at most maxAliased. It returns
// the names to read. The admin index is not used: a revocation is never
// judged from it (it may have been written under another user's rule,
// or by a parser of another version), every file is read through this
// server's rule and parsers.
func (fl *focusedLoad[T]) proveRevocations(i int) ([]string, *NotProvedError) {
	src := fl.l.cfg.Sources[i]
	if !LocalStamps(src.Path) {
		return nil, cachedStamps(src.Path)
	}
	stamp := fl.index(i).stamp()
	ls, err := statDir(src.Path)
	if err != nil || stamp == nil {
		return nil, &NotProvedError{Dir: src.Path, Reason: "cannot list it", Err: err}
	}
	aliased := ls.aliased()
	if len(aliased) > maxAliased {
		return nil, tooManyAliased(src.Path)
	}
	// Every entry, its subdirectories too: the read makes each of those
	// a problem (ErrRevocationSubdirectory), as a full load does.
	var names []string
	for e := range ls.all() {
		names = append(names, e.name)
	}
	fl.revStamps[i], fl.aliased[i] = stamp, aliased
	return names, nil
}

// existingAbove is the nearest directory above path that exists: the one
// MkdirAll of path would write into (a server's own index directory,
// --index-dir, may be missing with its parent).
func existingAbove(path string) string {
	dir := filepath.Dir(path)
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}

// cachedStamps and tooManyAliased are the NotProvedErrors of directory
// dir that indexed and revocation directories share.
func cachedStamps(dir string) *NotProvedError {
	return &NotProvedError{Dir: dir, Reason: "its file system may answer stat from a cache (NFS, SMB, FUSE): a write from another machine may not show"}
}

func tooManyAliased(dir string) *NotProvedError {
	return &NotProvedError{Dir: dir, Reason: fmt.Sprintf("more than %d of its files are links or on other file systems (each decision would read them)", maxAliased)}
}

// indexLockFailure says why fl.lock(create) failed: the index directory
// missing (or, where create, not made), a lock file this user may not use
// (the loader's UnlockedError), this user unable to write the index
// directory, or another process holding its lock (unlockedWhy).
func (fl *focusedLoad[T]) indexLockFailure(create bool) error {
	dir := fl.l.cfg.Index
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	} else if fi, err := os.Stat(dir); err != nil {
		return err
	} else if !fi.IsDir() {
		return &fs.PathError{Op: "open", Path: dir, Err: syscall.ENOTDIR}
	}
	for _, why := range slices.Backward(fl.l.Unlocked()) {
		if why.Index {
			return why
		}
	}
	return unlockedWhy(dir)
}

// read narrows the loader to the files narrow names and reads them (and
// every source it does not narrow, whole), and reports whether every
// narrowed directory is still as proved: its stamp, and its index's
// head, those of the proof. Where only is not nil, only the narrowed
// names it holds are examined again (stat'ed, and read if changed); the
// others keep what was read of them. Called with the index locked, so
// that no admin command records a change in the index meanwhile; one
// that writes a file changes the directory's stamp, or sends an event.
func (fl *focusedLoad[T]) read(narrow, only map[int][]string) bool {
	l := fl.l
	for _, m := range []map[int][]string{narrow, only} {
		for i, names := range m {
			slices.Sort(names)
			m[i] = slices.Compact(names)
		}
	}
	func() {
		l.mu.Lock()
		l.narrow, l.focus, l.only = narrow, fl, only
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.only = nil
			l.mu.Unlock()
		}()
		l.Reload()
	}()
	l.rereadReplaced()
	return fl.asProved(narrow)
}

// asProved reports whether each narrowed directory's stamp and index
// head are the ones the proof left, and the index is the one it proved
// (not rebuilt since: fl.versions) — a large revocation directory's
// stamp, the one proveRevocations recorded. Called with the index
// locked.
func (fl *focusedLoad[T]) asProved(narrow map[int][]string) bool {
	for i := range narrow {
		x := fl.index(i)
		if st, ok := fl.revStamps[i]; ok {
			if !bytes.Equal(x.stamp(), st) {
				return false
			}
			continue
		}
		if head := x.head(); head == nil || !bytes.Equal(head, fl.heads[i]) || !bytes.Equal(x.stamp(), head) || !bytes.Equal(x.version(), fl.versions[i]) {
			return false
		}
	}
	return true
}

// fewFiles reports whether directory dir holds fewer than IndexMinFiles
// names (none if it does not exist): few enough to be read whole.
func fewFiles(dir string) bool {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(IndexMinFiles + 1)
	return (err == nil || err == io.EOF) && len(names) < IndexMinFiles
}

// ExtendProved reads, for a loader LoadProved narrowed, what deciding q
// needs as well: under the index's lock, if every narrowed directory is
// as proved (its stamp, its index's head) and no event came since the
// proof began, the index names the files that hold q's terms; those
// files, the aliased ones, every single file and every whole-read
// directory are examined again (a file written in place since, through
// a path no watch sees, is read as it is now), and the directories must
// still be as proved after. The other files read for earlier queries
// are not: a write into any of them since the proof is an event of the
// watch, which began before it, and ends early decisions — stat'ing them
// again at every decision would make each cost as much as all before it
// (docs/design.md, "Early decisions"). It reports false, for good, once
// anything changed, the index cannot be locked or read, or more than
// maxAsked keys were asked: the loader then holds nothing to decide on.
func (l *Loader[T]) ExtendProved(q Query) bool {
	l.mu.Lock()
	fl, narrow := l.focus, l.narrow
	l.mu.Unlock()
	if fl == nil || !fl.proved {
		return false
	}
	if !l.quiet() || !fl.extend(narrow, q) || !l.quiet() {
		l.dropProved()
		return false
	}
	return true
}

// extend is ExtendProved's check, lookup and read, under the index's
// lock.
func (fl *focusedLoad[T]) extend(narrow map[int][]string, q Query) bool {
	var add []Term
	for _, t := range q.Terms {
		if !fl.asked[t] {
			add = append(add, t)
		}
	}
	if len(fl.asked)+len(add) > maxAsked || mountedIn(fl.l.cfg.Sources) {
		return false
	}
	unlock, ok := fl.lock(false)
	if !ok {
		return false
	}
	defer unlock()
	// asProved reads each index's head, which lookup needs too (the
	// shard bits).
	if !fl.asProved(narrow) {
		return false
	}
	more, only := map[int][]string{}, map[int][]string{}
	for i, names := range narrow {
		if _, rev := fl.revStamps[i]; rev {
			more[i], only[i] = names, slices.Clone(fl.aliased[i])
			continue
		}
		found, ok := fl.index(i).lookup(q)
		if !ok {
			return false
		}
		more[i] = append(slices.Clone(names), found...)
		only[i] = append(found, fl.aliased[i]...)
	}
	for _, t := range add {
		fl.asked[t] = true
	}
	return fl.read(more, only)
}

// quiet reports whether no event that could change a source came to the
// proved load's watch since it began (an overflow or a watch error
// counts as one), reading them all; once one came, it reports false for
// good.
func (l *Loader[T]) quiet() bool {
	l.mu.Lock()
	fw := l.fw
	l.mu.Unlock()
	if fw == nil {
		return false
	}
	for {
		select {
		case ev, ok := <-fw.Events():
			if !ok || l.stirs(ev.Name) {
				return false
			}
		case <-fw.Errors():
			return false
		default:
			return true
		}
	}
}

// stirs reports whether an event about name can change what the sources
// hold: a source itself, a name in a source directory that may be a key
// file (not irrelevant), a directory on a source's path, or a
// Kubernetes ".." name beside a source. The others — the home's own
// files beside its sources, the admin index's directory — cannot.
func (l *Loader[T]) stirs(name string) bool {
	if l.irrelevant(name) {
		return false
	}
	dir := filepath.Dir(name)
	for _, s := range l.cfg.Sources {
		if s.Feed != nil {
			continue
		}
		if name == s.Path || (s.Dir && dir == s.Path) || strings.HasPrefix(s.Path, name+string(filepath.Separator)) {
			return true
		}
	}
	return strings.HasPrefix(filepath.Base(name), "..")
}

// dropProved ends a proved load for good (ExtendProved then reports
// false): what it read may be out of date, and is not to be decided on;
// it stops watching.
func (l *Loader[T]) dropProved() {
	l.mu.Lock()
	if l.focus != nil {
		l.focus.proved = false
	}
	fw := l.fw
	l.fw = nil
	l.mu.Unlock()
	if fw != nil {
		fw.Close()
	}
}

// IndexAfter is for a watching server's full load, so that its next
// start can decide early: call it just before the load, and the function
// it returns once the load is published. That writes, from the loaded
// snapshot, the admin index of each directory of trust of IndexMinFiles
// files or more that has none — what an admin command's LoadFor makes of
// a full load (rebuild: the records, the stamps of the files older than
// StampRacy, the head) — under the index's lock, where the directory's
// stamp is still the one from before the load. An index that exists is
// left to the next proof to bring up to date (verify), unless proof —
// LoadProved's error, if any — says it could not (NotProvedError.
// Unproved): the next proof would fail the same way, and the index of a
// server that keeps its own (keytool proxy --index-dir), which no admin
// command rebuilds, would never serve again. Its records and its stamps
// come from one snapshot, taken before the wait for the lock (stampsOf:
// a reload meanwhile put a file's new stamp beside its old records, found
// by review, 2026-12-05); one written while a reload published another
// snapshot is marked stale at once: what that reload read anew is in
// neither, and a head at the directory's stamp is trusted without the
// files' stamps. Revocation directories get none
// (early decisions read them whole). Nothing is written without an index
// directory or terms, and an error leaves the index absent or stale: a
// cache, never trusted wrong. write returns the first such error, an
// *IndexNotWrittenError, where a directory that large is left with no
// index (its next start reads every file before deciding), and goes on
// to the next directory; nothing where the index directory exists and
// its lock was not had (LoadProved said why), or a directory changed
// during the load (left stale: the next proof or admin command brings
// it up to date).
func (l *Loader[T]) IndexAfter(proof error) (write func() error) {
	if l.cfg.Index == "" || l.cfg.Terms == nil {
		return func() error { return nil }
	}
	var (
		rewrite string // the directory whose index the proof could not bring up to date
		version []byte // that index's version at the proof
	)
	if np := (*NotProvedError)(nil); errors.As(proof, &np) && np.Unproved {
		rewrite, version = np.Dir, np.version
	}
	fl := &focusedLoad[T]{l: l, heads: map[int][]byte{}}
	stamps := map[int][]byte{}
	for i, src := range l.cfg.Sources {
		if src.Dir && src.Feed == nil && !src.Revocation {
			if st := fl.index(i).stamp(); st != nil {
				stamps[i] = st
			}
		}
	}
	start := time.Now()
	return func() error {
		snap := l.Snapshot()
		var todo []int
		files := map[int]int{}
		for i := range stamps {
			if files[i] = fl.count(snap, i); files[i] >= IndexMinFiles {
				todo = append(todo, i)
			}
		}
		slices.Sort(todo)
		// An index that exists, and that the proof did not fail on, is
		// left as it is (writeAfter): looked at before the lock too, so
		// that a server waiting for this write as it stops (keytool
		// proxy) does not wait up to lockWait for an admin command's
		// lock with nothing to write. Looked at again under the lock.
		todo = slices.DeleteFunc(todo, func(i int) bool {
			if l.cfg.Sources[i].Path == rewrite {
				return false
			}
			x := fl.index(i) // not locked: one of its own, closed here
			defer x.close()
			return x.head() != nil
		})
		if len(todo) == 0 {
			return nil
		}
		fi, err := os.Stat(l.cfg.Index)
		existed := err == nil && fi.IsDir()
		unlock, ok := fl.lock(true)
		switch {
		case !ok && existed:
			// An index directory another command made, whose lock this
			// user could not take: LoadProved said why at the start.
			return nil
		case !ok:
			return &IndexNotWrittenError{Dir: l.cfg.Sources[todo[0]].Path, Index: l.cfg.Index, Err: fl.indexLockFailure(true)}
		}
		written := 0
		defer func() {
			if written >= releaseFiles {
				// The write's records and stamps are garbage now, as a
				// large load's parsing is when it ends (returnMemory):
				// given back at once, a server's resident set is what its
				// store keeps, not this write's peak, for the minutes
				// until the runtime's next collection (docs/benchmarks.md,
				// "keytool proxy's own resident set"). After the unlock
				// (deferred before it): admin commands wait for the lock.
				releaseMemory()
			}
		}()
		defer unlock()
		var first error
		for _, i := range todo {
			again := l.cfg.Sources[i].Path == rewrite
			if err := fl.writeAfter(i, snap, stamps[i], start, again, version); err != nil && first == nil {
				first = &IndexNotWrittenError{Dir: l.cfg.Sources[i].Path, Index: l.cfg.Index, Err: err}
			}
			written += files[i]
		}
		return first
	}
}

// writeAfter is IndexAfter's write of directory source i's index from
// snap, a full load begun at start with the directory at stamp, under
// the index's lock. An index that exists is written anew only where the
// proof failed on it (rewrite) and no one wrote it since that proof
// (its version still version): one an admin command or another server
// wrote meanwhile is newer than snap, or as new, and may already be
// proved by a server deciding from it early, which would then read
// records older than the files at the same head (found by review). A
// directory the trust-file rule refuses (others may write it) gets
// nothing: an index there is never read.
func (fl *focusedLoad[T]) writeAfter(i int, snap *Snapshot[T], stamp []byte, start time.Time, rewrite bool, version []byte) error {
	x := fl.index(i)
	if x.head() != nil && (!rewrite || !bytes.Equal(x.version(), version)) {
		return nil
	}
	if err := x.refused(); err != nil {
		return err
	}
	if err := fl.rebuild(i, snap, stamp, start); err != nil {
		return err // the next directory may still get one
	}
	if head := x.head(); head != nil && fl.l.Snapshot() != snap {
		x.record(head, staleStamp, nil, nil)
	}
	return nil
}

// IndexNotWrittenError says why a server's full load left a directory
// of IndexMinFiles files or more with no admin index (IndexAfter): each
// start then reads every file before it decides.
type IndexNotWrittenError struct {
	Dir   string // the directory of trust
	Index string // the index directory
	Err   error
}

func (e *IndexNotWrittenError) Error() string {
	return fmt.Sprintf("keydir: no admin index written for %s in %s, so the next start reads every file before deciding: %s", e.Dir, e.Index, strings.TrimPrefix(e.Err.Error(), "keydir: "))
}

func (e *IndexNotWrittenError) Unwrap() error { return e.Err }

// mountedIn reports whether a file system is mounted inside a source
// directory (/proc/self/mountinfo), or it cannot tell: a file
// bind-mounted from the same file system shows neither another device
// nor a second link, and is written with no event in the directory (the
// file's own directory is elsewhere). A mount on a source directory
// itself (a Kubernetes volume) or on the way to it is the directory's
// file system, whose files' writes its watch sees, by any path.
func mountedIn(srcs []Source) bool {
	data, err := os.ReadFile(mountInfo)
	if err != nil {
		return true
	}
	// The prefixes of a mount inside a source directory: the path, and
	// the real one mountinfo names (a source may be reached through a
	// link; a missing one has nothing mounted in it).
	var inside []string
	for _, src := range srcs {
		if !src.Dir || src.Feed != nil {
			continue
		}
		inside = append(inside, src.Path+string(filepath.Separator))
		if real, err := filepath.EvalSymlinks(src.Path); err == nil && real != src.Path {
			inside = append(inside, real+string(filepath.Separator))
		}
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 5 {
			return true
		}
		at := unescapeMount(f[4])
		if slices.ContainsFunc(inside, func(dir string) bool { return strings.HasPrefix(at, dir) }) {
			return true
		}
	}
	return false
}

// mountInfo is the process's table of mounts (a variable for tests).
var mountInfo = "/proc/self/mountinfo"

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, and
// tab, newline and backslash likewise).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
