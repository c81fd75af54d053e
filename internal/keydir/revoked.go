package keydir

import "slices"

// Revocations is the one revocation set: both stores read the same
// revocation inputs (revoked_keys.*) and decide with this, so that a key
// revoked is refused alike on the server side and the client side. It
// holds, for each revoked key, the entry of the first file that lists it.
// A snapshot's revocation set is immutable.
type Revocations[T any] struct {
	first map[[32]byte]T // nil when nothing is revoked
	list  []T            // the first entry of each key, in file order
	err   error          // Snapshot.RevocationErr
}

// NewRevocations collects the revoked keys of snap: the items of the files
// of revocation sources (isRevocation tells them by source index), keyed
// by spki.
func NewRevocations[T any](snap *Snapshot[T], isRevocation func(src int) bool, spki func(T) [32]byte) *Revocations[T] {
	r := &Revocations[T]{err: snap.RevocationErr}
	for _, f := range snap.Files {
		if !isRevocation(f.Source) {
			continue
		}
		for _, it := range f.Items {
			sum := spki(it)
			if _, dup := r.first[sum]; dup {
				continue
			}
			if r.first == nil {
				r.first = map[[32]byte]T{}
			}
			r.first[sum] = it
			r.list = append(r.list, it)
		}
	}
	return r
}

// Err is set when a revocation input cannot be read completely: every key
// must then be refused (Snapshot.RevocationErr). A nil set has none.
func (r *Revocations[T]) Err() error {
	if r == nil {
		return nil
	}
	return r.err
}

// Get returns the revocation entry of the key with SPKI hash sum. A nil
// set revokes nothing.
func (r *Revocations[T]) Get(sum [32]byte) (T, bool) {
	if r == nil {
		var zero T
		return zero, false
	}
	it, ok := r.first[sum]
	return it, ok
}

// List returns the revoked keys' entries, in file order; the slice is the
// caller's.
func (r *Revocations[T]) List() []T {
	if r == nil {
		return nil
	}
	return slices.Clone(r.list)
}
