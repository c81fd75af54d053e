package keydir

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/keytool/keytool/internal/trustfile"
)

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

// compared is what a rescan's comparison found: the hints, the number of
// directory entries it stat-ed, whether any of the files may be written
// through another path than the one it watches (aliased: a symbolic
// link, a hard link, another file system mounted in — whose writes no
// event of the watched directory reports, so that only the rescan finds
// them, as statDir marks such files for a proof), and how long it took.
type compared struct {
	h       hints
	listed  int
	aliased bool
	took    time.Duration
}

// compare is the rescan's first step: the paths a full scan would find
// changed, or all of them when there are more than maxRescanHints (h),
// and what else it found.
func (l *Loader[T]) compare() compared {
	l.mu.Lock()
	// The file lists in it are not edited in place after the reload that
	// made them (only that reload folds rows into its fresh chunks). The
	// numbers that name their files are the loader's, which the next
	// reload would write in place: it writes a copy from now on.
	states := slices.Clone(l.states)
	ns := l.numbers
	l.numbers = ns.clone()
	l.mu.Unlock()
	start := time.Now() // the comparison's own time, not the wait for the lock
	if l.compareStarted != nil {
		l.compareStarted()
	}
	var c compared
	for i := range states {
		c.listed += l.differences(i, &states[i], &ns, &c.h, &c.aliased)
	}
	if len(c.h.paths) > maxRescanHints {
		c.h = hints{all: true}
	}
	c.took = time.Since(start)
	return c
}

// aliasedFile is writtenElsewhere for the file of fi (nil: not a
// regular file stat-ed), found as a symbolic link or not (link), in a
// directory on the device dirDev.
func aliasedFile(fi fs.FileInfo, link bool, dirDev uint64) bool {
	return link || fi != nil && writtenElsewhere(false, trustfile.Links(fi), trustfile.StampOf(fi).Device(), dirDev)
}

// differences adds to h the paths of source i that a full scan would find
// changed since st: the source itself when its own checks answer
// differently, else every name that appeared, vanished, or whose stat data
// moved. It reads only st and ns, the numbers of its files, which no
// reload modifies, and the file system. It returns the number of entries
// it listed, and sets aliased where one of them is (compared.aliased).
func (l *Loader[T]) differences(i int, st *sourceState[T], ns *numbers[T], h *hints, aliased *bool) int {
	src := l.cfg.Sources[i]
	if src.Feed != nil {
		return 0 // a feed tells its changes itself
	}
	if !src.Dir {
		prev := lookupRow(st.files, ns, st.nameAt, src.Path)
		link := isLink(src.Path)
		_, same, fi := l.statFile(i, st, src.Path, src.Path, prev, true, link, false)
		if !same {
			h.add(src.Path)
		}
		*aliased = *aliased || aliasedFile(fi, link, deviceOf(filepath.Dir(src.Path)))
		return 1
	}
	ok, problem := l.checkDir(i)
	if !ok || st.problem != nil {
		if !ok && sameProblem(problem, st.problem) && st.files.n == 0 {
			return 0
		}
		h.add(src.Path)
		return 0
	}
	entries, err := listSorted(src.Path)
	if err != nil {
		h.add(src.Path)
		return 0
	}
	dirDev := deviceOf(src.Path)
	pairListing(entries, st.files, ns, st.nameAt, func(e dirEntry, prev *fileRow[T]) {
		path := pathIn(src.Path, e.name)
		link := e.typ&fs.ModeSymlink != 0
		_, same, fi := l.statFile(i, st, e.name, path, prev, false, link, false)
		if !same {
			h.add(path)
		}
		*aliased = *aliased || aliasedFile(fi, link, dirDev)
	}, func(gone *fileRow[T]) { h.add(gone.path(ns)) })
	return entries.len()
}

// deviceOf is the device of the file system holding path (0: unknown,
// which no file's device matches: every file then counts as aliased).
func deviceOf(path string) uint64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return trustfile.StampOf(fi).Device()
}

// pairListing walks a directory listing (sorted by name, as listSorted
// gives it) beside the rows of the files as they were (sorted too, names
// from nameAt, files numbered by ns): seen gets each visible name with
// its previous row, or nil; gone, if not nil, each previous row whose
// name is no longer listed. The rows are old's own, which no reload
// writes.
func pairListing[T any](entries *sortedListing, old rowList[T], ns *numbers[T], nameAt int, seen func(dirEntry, *fileRow[T]), gone func(*fileRow[T])) {
	ci, k := 0, 0
	var cur fileRow[T]           // one for the walk: seen and gone keep no pointer to it
	next := func() *fileRow[T] { // the first row not yet paired (in cur), nil: none
		if ci == len(old.chunks) {
			return nil
		}
		cur = rowAt(old, at{ci, k})
		return &cur
	}
	advance := func() {
		if k++; k == old.chunks[ci].len() {
			ci, k = ci+1, 0
		}
	}
	drop := func(before string, all bool) {
		for r := next(); r != nil && (all || r.compareName(ns, nameAt, before) < 0); r = next() {
			if gone != nil {
				gone(r)
			}
			advance()
		}
	}
	for i := range entries.len() {
		e := entries.entry(i)
		name := e.name
		if Ignored(name) {
			continue
		}
		drop(name, false)
		var prev *fileRow[T]
		if r := next(); r != nil && r.compareName(ns, nameAt, name) == 0 {
			prev = r
			advance()
		}
		seen(e, prev)
	}
	drop("", true)
}
