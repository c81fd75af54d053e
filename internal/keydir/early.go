package keydir

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A server's first decisions, before its full load has read every file
// (docs/design.md, "Early decisions"): a loader narrowed as an admin
// command's is (LoadFor), whose admin index is proved complete from every
// file's stamp as a removal proves it (verify), and which stops answering
// at the first sign that the files changed since. Where it cannot prove,
// or stops, it says so and the server waits for its full load: an early
// loader never answers from what it has not proved.

// LoadProved narrows the loader to what deciding q needs, as LoadFor does,
// but only where it can prove the admin index complete for the files as
// they are: it first watches the sources (the process's shared inotify
// instance; a change from then on stops it: ExtendProved), then, under
// the index's lock, proves the index of every directory source from every
// file's stamp — revocation directories included, where a removal need
// not: a revocation written in place must be seen before a key is
// admitted — and reads the files it names for q and the skipped ones,
// every single file, and in full the directories too small to have an
// index. It reports false where it cannot: no index directory or terms,
// a feed (no stamps), a directory that cannot be watched, an index
// missing for a directory of IndexMinFiles files or more, stamps from a
// cache (LocalStamps), a proof that fails (verify: no stamps, the
// directory changing meanwhile, many files changed, an index it cannot
// write), or a change seen meanwhile. The loader is then left holding
// nothing to decide on. Close ends its watch.
func (l *Loader[T]) LoadProved(q Query) bool {
	if l.cfg.Index == "" || l.cfg.Terms == nil {
		return false
	}
	sub, err := subscribeShared()
	if err != nil {
		return false
	}
	l.mu.Lock()
	l.fw = sub
	l.ensureWatches()
	failed := len(l.failed) > 0
	l.mu.Unlock()
	if failed {
		l.dropProved()
		return false
	}
	fl := &focusedLoad[T]{l: l, heads: map[int][]byte{}, q: q}
	narrow, ok := fl.prove(q)
	if !ok {
		l.dropProved()
		return false
	}
	l.mu.Lock()
	l.narrow, l.focus = narrow, fl
	fl.proved = true
	l.mu.Unlock()
	l.Reload()
	l.rereadReplaced()
	if !l.quiet() {
		l.dropProved()
		return false
	}
	return true
}

// prove proves, under the index's lock, the index of every directory
// source (LoadProved), and returns the names each indexed directory's
// index gives for q; a directory absent from narrow is read in full.
func (fl *focusedLoad[T]) prove(q Query) (narrow map[int][]string, ok bool) {
	l := fl.l
	unlock, ok := fl.lock(false)
	if !ok {
		return nil, false
	}
	defer unlock()
	narrow = map[int][]string{}
	for i, src := range l.cfg.Sources {
		switch {
		case src.Feed != nil:
			return nil, false // a feed has no stamps to prove it by
		case !src.Dir:
			continue // read whole
		}
		x := fl.index(i)
		head := x.head()
		if head == nil {
			if !fewFiles(src.Path) {
				return nil, false
			}
			continue // below IndexMinFiles: read whole
		}
		if !LocalStamps(src.Path) {
			return nil, false
		}
		fl.heads[i] = head
		x, ok := fl.verify(i)
		if !ok {
			return nil, false
		}
		names, ok := x.lookup(q)
		if !ok {
			return nil, false
		}
		narrow[i] = names
	}
	return narrow, true
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

// ExtendProved adds q to what a loader LoadProved narrowed reads: the
// index, still complete if nothing changed since the proof (no event, the
// directories' stamps and the index's heads as proved), names the files
// that hold q's terms, and they are read. It reports false, for good,
// once anything changed since the proof, or the index cannot be read
// under its lock: the loader then holds nothing to decide on.
func (l *Loader[T]) ExtendProved(q Query) bool {
	l.mu.Lock()
	fl, narrow := l.focus, l.narrow
	l.mu.Unlock()
	if fl == nil || !fl.proved {
		return false
	}
	if !l.quiet() {
		l.dropProved()
		return false
	}
	var add Query
	for _, t := range q.Terms {
		if !slices.Contains(fl.q.Terms, t) {
			add.Terms = append(add.Terms, t)
		}
	}
	for _, p := range q.Prefixes {
		if !slices.ContainsFunc(fl.q.Prefixes, func(b []byte) bool { return bytes.Equal(b, p) }) {
			add.Prefixes = append(add.Prefixes, p)
		}
	}
	if len(add.Terms)+len(add.Prefixes) == 0 {
		return true
	}
	more, ok := fl.lookMore(narrow, add)
	if !ok {
		l.dropProved()
		return false
	}
	l.mu.Lock()
	l.narrow = more
	fl.q.Terms = append(fl.q.Terms, add.Terms...)
	fl.q.Prefixes = append(fl.q.Prefixes, add.Prefixes...)
	l.mu.Unlock()
	l.Reload()
	l.rereadReplaced()
	if !l.quiet() {
		l.dropProved()
		return false
	}
	return true
}

// lookMore returns narrow with the names each index gives for q, under
// the index's lock, if every index and directory is as proved.
func (fl *focusedLoad[T]) lookMore(narrow map[int][]string, q Query) (map[int][]string, bool) {
	unlock, ok := fl.lock(false)
	if !ok {
		return nil, false
	}
	defer unlock()
	more := map[int][]string{}
	for i, names := range narrow {
		x := fl.index(i)
		if head := x.head(); head == nil || !bytes.Equal(head, fl.heads[i]) || !bytes.Equal(x.stamp(), head) {
			return nil, false
		}
		found, ok := x.lookup(q)
		if !ok {
			return nil, false
		}
		more[i] = append(slices.Clone(names), found...)
	}
	return more, true
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
