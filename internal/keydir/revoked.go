package keydir

import "slices"

// Revocations is the one revocation set: both stores read the same
// revocation inputs (revoked_keys.*) and decide with this, so that a key
// revoked is refused alike on the server side and the client side. It
// holds, for each revoked key, the entry of the first file that lists it.
// A snapshot's revocation set is immutable.
type Revocations[T any] struct {
	first map[[32]byte]Found[T] // nil when nothing is revoked
	list  []Found[T]            // the first entry of each key, in file order
	err   error                 // Snapshot.RevocationErr
}

// NewRevocations collects the revoked keys of snap: the items of the files
// of revocation sources (isRevocation tells them by source index), keyed
// by spki.
func NewRevocations[T any](snap *Snapshot[T], isRevocation func(src int) bool, spki func(*T) [32]byte) *Revocations[T] {
	r := &Revocations[T]{err: snap.RevocationErr}
	for src := range snap.rows {
		if !isRevocation(src) {
			continue
		}
		for num := range snap.numsOf(src) {
			// A revocation source's files keep their Files (leanNumbers):
			// the set holds one for each of its entries (Found).
			f := snap.FileAt(num)
			items := f.Items()
			for i := range items {
				it := &items[i]
				sum := spki(it)
				if _, dup := r.first[sum]; dup {
					continue
				}
				if r.first == nil {
					r.first = map[[32]byte]Found[T]{}
				}
				r.first[sum] = Found[T]{f, it}
				r.list = append(r.list, Found[T]{f, it})
			}
		}
	}
	return r
}

// NextRevocations is NewRevocations for snap, published by the loader
// after prevSnap, whose set was prev: prev itself where no revocation
// source changed between them — the same rows, and no RevocationErr — so
// that a reload of a store with many revocations (or an early decision,
// authkeys.OpenEarly, where they are in a large directory) costs what it
// changed, not a pass over every revocation. (A reload that lists a
// source anew, or finds a single file changed, makes that source's rows
// anew: a pass, as before; a single file examined and unchanged keeps
// its list, Loader.examineFile.) prev's entries are snap's: the same rows
// are the same files.
func NextRevocations[T any](prev *Revocations[T], prevSnap, snap *Snapshot[T], isRevocation func(src int) bool, spki func(*T) [32]byte) *Revocations[T] {
	if prev != nil && prevSnap != nil && prev.err == nil && snap.RevocationErr == nil && len(prevSnap.rows) == len(snap.rows) {
		same := true
		for src := range snap.rows {
			if isRevocation(src) && !prevSnap.rows[src].same(snap.rows[src]) {
				same = false
				break
			}
		}
		if same {
			return prev
		}
	}
	return NewRevocations(snap, isRevocation, spki)
}

// Err is set when a revocation input cannot be read completely: every key
// must then be refused (Snapshot.RevocationErr). A nil set has none.
func (r *Revocations[T]) Err() error {
	if r == nil {
		return nil
	}
	return r.err
}

// Get returns the revocation entry of the key with SPKI hash sum, a copy
// (for a store whose entries are pointers; see Found). A nil set revokes
// nothing.
func (r *Revocations[T]) Get(sum [32]byte) (T, bool) {
	found, ok := r.Lookup(sum)
	if !ok {
		var zero T
		return zero, false
	}
	return *found.Item, true
}

// Lookup is Get with the file of the entry.
func (r *Revocations[T]) Lookup(sum [32]byte) (Found[T], bool) {
	if r == nil {
		return Found[T]{}, false
	}
	found, ok := r.first[sum]
	return found, ok
}

// List returns copies of the revoked keys' entries (see Get), in file
// order; the slice is the caller's.
func (r *Revocations[T]) List() []T {
	if r == nil {
		return nil
	}
	out := make([]T, len(r.list))
	for i, f := range r.list {
		out[i] = *f.Item
	}
	return out
}

// Found is List with the file of each entry.
func (r *Revocations[T]) Found() []Found[T] {
	if r == nil {
		return nil
	}
	return slices.Clone(r.list)
}
