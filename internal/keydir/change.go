package keydir

import (
	"cmp"
	"time"
)

// Change is what one reload changed, for a log line: the keys of the
// files that came and went, counted without looking at the files that
// stayed (an unchanged file keeps its number and generation), so that it
// costs what changed, not what the store holds.
type Change struct {
	Generation uint64 // the new snapshot's
	// Added and Removed count the keys that came and went in the trust
	// sources (authorized keys, host keys); Revoked and Unrevoked, in the
	// revocation sources. A file that changed counts only the keys it
	// gained and lost (by Config.KeyOf; without it, all its keys go and
	// come back).
	Added, Removed     int
	Revoked, Unrevoked int
	// Keys is the number of entries of the trust sources in the new
	// snapshot (a key held by two files counts twice).
	Keys int
	// Skipped is the number of files and directories skipped in the new
	// snapshot (Snapshot.Problems); RevocationFailed, whether a
	// revocation input is among them (every key is refused).
	Skipped          int
	RevocationFailed bool
	Took             time.Duration // the reload's time
}

// changeHook is one OnChange registration.
type changeHook struct{ fn func(Change) }

// OnChange calls fn with what changed after each reload that published a
// new snapshot, until stop is called. fn runs inside the reload, once the
// new snapshot is in effect: it must return soon, and must not reload
// (Reload, nor a store's Add, Remove, Revoke, …) or it deadlocks.
func (l *Loader[T]) OnChange(fn func(Change)) (stop func()) {
	h := &changeHook{fn: fn}
	l.subMu.Lock()
	if l.hooks == nil {
		l.hooks = map[*changeHook]struct{}{}
	}
	l.hooks[h] = struct{}{}
	l.subMu.Unlock()
	return func() {
		l.subMu.Lock()
		delete(l.hooks, h)
		l.subMu.Unlock()
	}
}

// change counts what changed from prev to next, and updates the loader's
// count of trust entries. It runs under the reload lock.
func (l *Loader[T]) change(prev, next *Snapshot[T], took time.Duration) Change {
	c := Change{Generation: next.Generation, Skipped: len(next.Problems), RevocationFailed: next.RevocationErr != nil, Took: took}
	count := func(f FileRef[T], sign int) {
		switch rev := l.cfg.Sources[f.Source()].Revocation; {
		case rev && sign > 0:
			c.Revoked += f.Len()
		case rev:
			c.Unrevoked += f.Len()
		case sign > 0:
			c.Added += f.Len()
			l.keys += f.Len()
		default:
			c.Removed += f.Len()
			l.keys -= f.Len()
		}
	}
	// FileRefs, not Files: a cold load's change is every file, and a file
	// of one key has no File of its own to count (docs/design.md, "Memory
	// of a loaded store", step 5). Nor a list of them, at a cold load:
	// every file came, and none went to pair with one (sameKeys).
	if prev.numFiles() == 0 {
		for f := range next.Refs {
			count(f, +1)
		}
	} else {
		gone, came := DiffRefs(prev, next)
		for _, f := range gone {
			count(f, -1)
		}
		for _, f := range came {
			count(f, +1)
		}
		if l.cfg.KeyOf != nil {
			l.sameKeys(gone, came, &c)
		}
	}
	c.Keys = l.keys
	return c
}

// sameKeys takes out of c's counts the keys that a file that changed
// lost and got back: a file of gone and one of came with the same path.
// Both lists are in the loader's order. The files of such a pair are
// read as Files (FileRef.File), since KeyOf is given an item in its
// file's Items: made for a file of one key, which has none of its own.
func (l *Loader[T]) sameKeys(gone, came []FileRef[T], c *Change) {
	for len(gone) > 0 && len(came) > 0 {
		x, y := gone[0], came[0]
		switch o := refOrder(x, y); {
		case o < 0:
			gone = gone[1:]
			continue
		case o > 0:
			came = came[1:]
			continue
		}
		gone, came = gone[1:], came[1:]
		xItems := x.File().Items()
		was := make(map[[32]byte]int, len(xItems))
		for i := range xItems {
			was[l.cfg.KeyOf(&xItems[i])]++
		}
		kept := 0
		yItems := y.File().Items()
		for i := range yItems {
			if k := l.cfg.KeyOf(&yItems[i]); was[k] > 0 {
				was[k]--
				kept++
			}
		}
		if l.cfg.Sources[x.Source()].Revocation {
			c.Revoked, c.Unrevoked = c.Revoked-kept, c.Unrevoked-kept
		} else {
			c.Added, c.Removed = c.Added-kept, c.Removed-kept
		}
	}
}

// DiffFiles returns the files of a that are not in b and those of b that
// are not in a, comparing *File pointers. Both lists must be in the
// loader's order (source, then path), where an unchanged file keeps its
// *File, so that one merging pass finds them: a file that changed is in
// both results. A file of one key kept without a File of its own (T
// holding no pointer: docs/design.md, "Memory of a loaded store", step 5
// (c)) gets a new *File at each call of Files, FileAt or Diff, so that
// DiffFiles of two snapshots' Files reports it gone and come though it is
// unchanged: compare snapshots with Diff or DiffRefs, which tell a file
// by its number and generation.
func DiffFiles[T any](a, b []*File[T]) (gone, came []*File[T]) {
	return diffFiles(a, b, fileOrder[T], func(x, y *File[T]) bool { return x == y })
}

// diffFiles is DiffFiles of lists of anything that is a file, order
// the loader's order of them, same telling whether two elements are one
// file (DiffRefs: by number and generation).
func diffFiles[E any](a, b []E, order func(x, y E) int, same func(x, y E) bool) (gone, came []E) {
	for len(a) > 0 && len(b) > 0 {
		x, y := a[0], b[0]
		switch o := order(x, y); {
		case same(x, y):
			a, b = a[1:], b[1:]
		case o < 0:
			gone, a = append(gone, x), a[1:]
		case o == 0:
			gone, came, a, b = append(gone, x), append(came, y), a[1:], b[1:]
		default:
			came, b = append(came, y), b[1:]
		}
	}
	return append(gone, a...), append(came, b...)
}

// fileOrder is the loader's order of files: by source, then by path,
// which within a source is by name (its files' paths share the rest).
func fileOrder[T any](x, y *File[T]) int {
	return cmp.Or(cmp.Compare(x.Source(), y.Source()), cmp.Compare(x.Name(), y.Name()))
}
