package keydir

import (
	"errors"
	"io/fs"
	"strings"
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
	return l.FindAgain(snap, fp, spki, keep, nil)
}

// Rereads are the files Find read again for one command (a removal of
// many fingerprints): each file's keys as hashes (jwk.Sums) or the error
// of its read, so that a file is read again once for all the
// fingerprints, not once for each. A fingerprint that matches no entry —
// one in a form the entries do not hold, or a key a step before took
// out — reads every loaded file: 5,000 of them removed from a store of
// 20,000 read 25 million files, for more than ten minutes (46 s with
// Rereads: each fingerprint still walks every loaded file's hashes). A
// read is kept only where its content is the one the snapshot loaded
// (its content sum), by that version of the file (its number and
// generation): a file a reload read anew, changed, is read again, and a
// read of anything else — a file being written, gone a moment — counts
// for its call alone. A command keeps Rereads for as long as it may
// trust the rule's checks of that read (a removal: one command).
type Rereads struct {
	mu    sync.Mutex
	files map[fileVersion]reread
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

// FindAgain is Find, reading a file again at most once for all the
// calls given the same rr (nil: each reads it).
func (l *Loader[T]) FindAgain(snap *Snapshot[T], fp jwk.Fingerprint, spki func(*T) [32]byte, keep func(src int) bool, rr *Rereads) ([]Found[T], error) {
	var out []Found[T]
	sum, full := fp.SPKIHash()
	for f := range snap.All {
		if !keep(f.Source()) {
			continue
		}
		items := f.Items()
		for i := range items {
			it := &items[i]
			h := spki(it)
			if full && h == sum || !full && strings.EqualFold(jwk.FormatKeyID(h), fp.String()) {
				out = append(out, Found[T]{f, it})
			}
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	var refused error
	for num, loaded := range snap.allSummed {
		f := snap.FileAt(num)
		if !keep(f.Source()) || l.isFeed(f.Source()) {
			continue
		}
		again := rr.read(fileVersion{num, snap.GenAt(num)}, loaded, func() reread { return l.readAgain(f.Path()) })
		if again.err != nil {
			if refused == nil {
				refused = again.err
			}
			continue
		}
		var matched map[[32]byte]bool
		for i, s := range again.sums {
			if fp.MatchSums(s) {
				if matched == nil {
					matched = map[[32]byte]bool{}
				}
				matched[again.spki[i]] = true
			}
		}
		if matched == nil {
			continue
		}
		items := f.Items()
		for i := range items {
			if it := &items[i]; matched[spki(it)] {
				out = append(out, Found[T]{f, it})
			}
		}
	}
	return out, refused
}

// read returns the file f read again (with read), or as rr read it
// before (nil rr: never). Only a read of the content the snapshot loaded
// (its sum, loaded) is kept: what a reader saw of a file being written,
// or of one gone or refused a moment, would stand for the file the rest
// of the command though a reload found it as loaded and kept its
// version (found by review); such a read counts for the call alone.
func (rr *Rereads) read(f fileVersion, loaded contentSumOf, read func() reread) reread {
	if rr == nil {
		return read()
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if r, ok := rr.files[f]; ok {
		return r
	}
	r := read()
	if r.ok && r.sum == loaded {
		if rr.files == nil {
			rr.files = map[fileVersion]reread{}
		}
		rr.files[f] = r
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
