package keydir

import (
	"errors"
	"io/fs"
	"strings"

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
	for f := range snap.All {
		if !keep(f.Source()) || l.isFeed(f.Source()) {
			continue
		}
		data, _, err := l.ReadFile(f.Path())
		var dangling *trustfile.LinkError
		if errors.Is(err, fs.ErrNotExist) && !errors.As(err, &dangling) {
			continue // gone since it was loaded: it holds no key (a dangling link is a problem)
		}
		if err != nil {
			if refused == nil {
				refused = err
			}
			continue
		}
		matched := map[[32]byte]bool{}
		for _, k := range keysOf(data) {
			if fp.Match(k) {
				matched[k.SPKIHash()] = true
			}
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
