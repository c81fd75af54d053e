package keydir

import (
	"errors"
	"io/fs"
	"slices"
	"sync"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// Found is one copy of a key that Find matched: the file that holds it and
// the entry made from it. Item points at the entry in the file's Items,
// never at a copy, as keydir's callbacks (Config.KeyOf, Config.Terms,
// spki) are given pointers into Items: a store finds what it keeps beside
// an entry by where the entry is (File.RareOf), and a store may keep
// state in its entries that it writes while others read them, which a
// copy would read unsynchronized (a data race). A file of one key kept
// without a File of its own (docs/design.md, "Memory of a loaded store",
// step 5) has one made for it (Snapshot.FileAt), and Item points into
// that File's copy of the item, never into the snapshot's mapped pages.
type Found[T any] struct {
	File *File[T]
	Item *T
}

// Find is the one fingerprint matcher behind every removal and lookup by
// fingerprint: it returns every entry, in every loaded file of snap (a
// snapshot of l) from the sources keep accepts, whose key fp names — by
// SPKI hash in any printed form, by libtrust key ID, by RFC 7638
// thumbprint, or by ssh-keygen's own SHA256 fingerprint of an OpenSSH key.
// Duplicates are all returned: a key held by two files is found twice.
//
// SPKI hashes and key IDs are matched from the entries (spki gives an
// entry's hash); only when they match nothing are the files read again to
// compare the other forms, which need the key itself. They are read under
// the rule their source is loaded with (Loader.ReadFile): a file that
// rule now refuses — made writable by others, or another user's, or a
// link into a directory others may write, since it was loaded — is not
// read, and the first such refusal is returned with what the other files
// matched, for the caller to fail closed (a removal that cannot see a
// file cannot say it took every copy). A file gone since the load holds
// nothing and is passed over (a dangling link is refused, as a load
// refuses it); a feed's entries are not files, and are not
// read again.
func (l *Loader[T]) Find(snap *Snapshot[T], fp jwk.Fingerprint, spki func(*T) [32]byte, keep func(src int) bool) ([]Found[T], error) {
	return l.NewFinder([]jwk.Fingerprint{fp}, spki, keep).Find(snap, fp)
}

// A Finder is Find of each of a command's fingerprints (a removal of
// many), with one walk of a snapshot's entries for all of them, and one
// read of its files again for all of those that match no entry: a
// fingerprint of a key a step before took out, or in a form the entries
// do not hold. Find of each fingerprint in turn walked every entry and,
// for those, read every file again: 5,000 fingerprints removed from a
// store of 20,000 read 25 million files, for more than ten minutes.
//
// A file read again is kept for the Finder's life only where its content
// is the one the snapshot loaded (its content sum), by that version of
// the file (its number and generation): a file a reload read anew,
// changed, is read again. A file read as anything else — being written,
// gone a moment, refused by the rule — is unsure: each Find that reads
// the files again reads it again, for the fingerprint asked (what the
// other files hold stands), as Find of each fingerprint in turn did: a
// directory made writable by others, every file of it refused, costs
// again the fingerprints times its files (and fails the removal all the
// same). A command keeps a Finder for as long as it may trust the rule's
// checks of those reads (a removal: one command). A Finder is safe for
// use by several goroutines.
type Finder[T any] struct {
	l    *Loader[T]
	spki func(*T) [32]byte
	keep func(src int) bool
	fps  []jwk.Fingerprint
	set  *jwk.FingerprintSet
	at   map[string]int // a fingerprint's input → its index in fps

	mu    sync.Mutex
	files map[fileVersion]reread // the files read again, kept across snapshots
	// What the Finder found in snap: each fingerprint's finds (found),
	// in its entries or, for those that matched none (pending), once
	// read (read), in its files read again — found where every file
	// read as loaded, else inFiles, by each file's place in the walk,
	// beside the unsure files.
	snap    *Snapshot[T]
	found   [][]Found[T]
	pending []bool
	read    bool
	inFiles [][]placed[T]
	unsure  []unsureFile[T]
}

// placed is a copy found in the file at place at of a walk of the files.
type placed[T any] struct {
	at int
	Found[T]
}

// unsureFile is a file a walk did not read as the snapshot loaded it,
// at place at: its version and loaded content's sum, and the walk's read
// of it (first), which the first call after the walk goes by.
type unsureFile[T any] struct {
	at     int
	v      fileVersion
	loaded contentSumOf
	file   *File[T]
	first  *reread
}

// NewFinder returns a Finder of the fingerprints fps (Find's spki and
// keep).
func (l *Loader[T]) NewFinder(fps []jwk.Fingerprint, spki func(*T) [32]byte, keep func(src int) bool) *Finder[T] {
	f := &Finder[T]{l: l, spki: spki, keep: keep, fps: fps, set: jwk.NewFingerprintSet(fps), at: make(map[string]int, len(fps)), files: map[fileVersion]reread{}}
	for i, fp := range fps {
		if _, ok := f.at[fp.String()]; !ok {
			f.at[fp.String()] = i
		}
	}
	return f
}

// fileVersion names one loaded version of a file across the snapshots of
// a loader: its number and generation (Snapshot.GenAt). A file read anew
// by a reload (changed, its stamp not the one recorded) is another, read
// again anew.
type fileVersion struct{ num, gen uint32 }

// reread is one file read again: its keys' SPKI hashes and Sums, or the
// error of the read (gone: nothing, and no error), and its content's sum.
type reread struct {
	spki []([32]byte)
	sums []jwk.Sums
	err  error
	sum  contentSumOf
	ok   bool // read (no error, not gone), its content's sum in sum
}

// Find returns what Loader.Find returns for fp in snap. A fingerprint the
// Finder was not made with is found alone (its own walk), through the
// files the Finder read again. The caller must not modify what it
// returns: the next Find of fp in snap may return it again.
func (f *Finder[T]) Find(snap *Snapshot[T], fp jwk.Fingerprint) ([]Found[T], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, ok := f.at[fp.String()]
	if !ok {
		one := f.l.NewFinder([]jwk.Fingerprint{fp}, f.spki, f.keep)
		one.files = f.files // under f.mu
		return one.Find(snap, fp)
	}
	if f.snap != snap {
		f.walkEntries(snap)
	}
	if !f.pending[i] {
		return slices.Clip(f.found[i]), nil
	}
	if !f.read {
		f.readFiles(snap)
	}
	if len(f.unsure) == 0 {
		return slices.Clip(f.found[i]), nil
	}
	return f.withUnsure(i)
}

// walkEntries finds, in one walk of snap's entries, the entries each
// fingerprint names by SPKI hash or key ID.
func (f *Finder[T]) walkEntries(snap *Snapshot[T]) {
	f.snap, f.read, f.inFiles, f.unsure = snap, false, nil, nil
	f.found, f.pending = make([][]Found[T], len(f.fps)), make([]bool, len(f.fps))
	var buf []int
	for file := range snap.All {
		if !f.keep(file.Source()) {
			continue
		}
		items := file.Items()
		for k := range items {
			it := &items[k]
			buf = f.set.BySPKI(buf[:0], f.spki(it))
			for _, i := range buf {
				f.found[i] = append(f.found[i], Found[T]{file, it})
			}
		}
	}
	for i := range f.fps {
		f.pending[i] = len(f.found[i]) == 0
	}
}

// readFiles reads snap's files again, once for all the pending
// fingerprints, and finds in them the keys those name: in found where
// every file read as the snapshot loaded it, else in inFiles beside the
// unsure files. A file read as anything else must not stand for the
// snapshot: after a read of a file being written, or gone a moment, a
// reload that finds the file back as loaded keeps the snapshot (found by
// review).
func (f *Finder[T]) readFiles(snap *Snapshot[T]) {
	f.read = true
	inFiles := make([][]placed[T], len(f.fps))
	var buf []int
	at := 0
	for num, loaded := range snap.allSummed {
		file := snap.FileAt(num)
		if !f.keep(file.Source()) || f.l.isFeed(file.Source()) {
			continue
		}
		at++
		v := fileVersion{num, snap.GenAt(num)}
		again := f.readAgain(v, loaded, file.Path())
		if !again.ok || again.sum != loaded {
			f.unsure = append(f.unsure, unsureFile[T]{at, v, loaded, file, &again})
			continue
		}
		var matched map[[32]byte][]int // a key's SPKI hash → the pending fingerprints naming it
		for k, s := range again.sums {
			buf = f.set.Matching(buf[:0], s)
			for _, i := range buf {
				if f.pending[i] && !slices.Contains(matched[again.spki[k]], i) {
					if matched == nil {
						matched = map[[32]byte][]int{}
					}
					matched[again.spki[k]] = append(matched[again.spki[k]], i)
				}
			}
		}
		if matched == nil {
			continue
		}
		items := file.Items()
		for k := range items {
			it := &items[k]
			for _, i := range matched[f.spki(it)] {
				inFiles[i] = append(inFiles[i], placed[T]{at, Found[T]{file, it}})
			}
		}
	}
	if len(f.unsure) > 0 {
		f.inFiles = inFiles
		return
	}
	for i, in := range inFiles {
		for _, p := range in {
			f.found[i] = append(f.found[i], p.Found)
		}
	}
}

// withUnsure returns what fingerprint i finds in the files of the last
// walk, the unsure files read again (each as the Finder keeps it, if it
// read it as loaded since; by the first call after the walk, as the walk
// read it), and the first refusal among them.
func (f *Finder[T]) withUnsure(i int) (out []Found[T], refused error) {
	in := f.inFiles[i]
	for k := range f.unsure {
		u := &f.unsure[k]
		for ; len(in) > 0 && in[0].at < u.at; in = in[1:] {
			out = append(out, in[0].Found)
		}
		var again reread
		if u.first != nil {
			again, u.first = *u.first, nil
		} else {
			again = f.readAgain(u.v, u.loaded, u.file.Path())
		}
		if again.err != nil {
			if refused == nil {
				refused = again.err
			}
			continue
		}
		var matched map[[32]byte]bool
		for k, s := range again.sums {
			if f.fps[i].MatchSums(s) {
				if matched == nil {
					matched = map[[32]byte]bool{}
				}
				matched[again.spki[k]] = true
			}
		}
		if matched == nil {
			continue
		}
		items := u.file.Items()
		for k := range items {
			if it := &items[k]; matched[f.spki(it)] {
				out = append(out, Found[T]{u.file, it})
			}
		}
	}
	for _, p := range in {
		out = append(out, p.Found)
	}
	return out, refused
}

// readAgain returns the file v at path read again, or as the Finder read
// it before. Only a read of the content the snapshot loaded (its sum,
// loaded) is kept: what a reader saw of a file being written, or of one
// gone or refused a moment, would stand for the file the rest of the
// command though a reload found it as loaded and kept its version (found
// by review); such a file is unsure, and such a read counts for one call
// and one fingerprint (withUnsure).
func (f *Finder[T]) readAgain(v fileVersion, loaded contentSumOf, path string) reread {
	if r, ok := f.files[v]; ok {
		return r
	}
	r := f.l.readAgain(path)
	if r.ok && r.sum == loaded {
		f.files[v] = r
	}
	return r
}

// readAgain reads the file at path under the rule its source is loaded
// with, and returns its keys' hashes: a file gone since it was loaded
// holds no key (a dangling link is a problem, returned as one).
func (l *Loader[T]) readAgain(path string) reread {
	data, _, err := l.ReadFile(path)
	var dangling *trustfile.LinkError
	if errors.Is(err, fs.ErrNotExist) && !errors.As(err, &dangling) {
		return reread{}
	}
	if err != nil {
		return reread{err: err}
	}
	r := reread{sum: contentSum(data), ok: true}
	for _, k := range keysOf(data) {
		r.spki, r.sums = append(r.spki, k.SPKIHash()), append(r.sums, k.Sums())
	}
	return r
}

// keysOf is every key of a file's content that a load may have taken an
// entry from: all of them, whatever their "use" (a lookup uses no key, and
// a revocation file is loaded so), or, when the file does not parse
// whole, those of its entries that do — the loader keeps the other
// entries of a file with a skipped one (parse, read.go), and a lookup
// that passed the file over would not find them.
func keysOf(data []byte) []*jwk.Key {
	keys, err := jwk.ParseAnyUse(data)
	if err == nil {
		return keys
	}
	entries, err := jwk.ParseSet(data)
	if err != nil {
		return nil
	}
	keys = keys[:0]
	for _, e := range entries {
		if e.Key != nil {
			keys = append(keys, e.Key)
		}
	}
	return keys
}
