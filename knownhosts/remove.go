package knownhosts

import (
	"errors"
	"slices"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// Removed describes a pin that Remove took away.
type Removed struct {
	Addr        string // the address unpinned; empty when the whole key was removed
	Fingerprint string
	File        string
}

// Removal is what RemoveAll did for one of its queries: the pins it took
// away, and the error Remove would have returned (nil, *NotFoundError, or
// why a copy could not be removed).
type Removal struct {
	Removed []Removed
	Err     error
}

// Remove unpins addrOrFingerprint. An address (in any form Check takes,
// or a pattern as written) is dropped from every key pinned to exactly it;
// a key left with no address is removed. A fingerprint (any form
// keydir.Loader.Find matches: SPKI hash, key ID, RFC 7638 thumbprint, OpenSSH
// SHA256) removes every copy of that key wherever it is pinned. Files left
// without keys are deleted. It returns what was removed.
//
// The pins the store holds already (in a store LoadFor narrowed, those
// the admin index names) go first, so that a watching client refuses
// them a few milliseconds into the removal — unless the proof that
// follows reads every file (keydir.Loader.ProofReadsAll: a write before
// it would leave the index unusable); then the store is proved to hold
// every copy (keydir.Loader.ReloadComplete: the admin index proved to
// name every file as it is now, including one written in place) and the
// copies that brings in go too. Where neither found anything in a
// narrowed store (a fingerprint in a form the index does not keep), every
// file is read: "not found" is said only of the whole store. Where
// rewriting a file fails, what was removed before, from the files
// rewritten, is returned with the error.
func (s *Store) Remove(addrOrFingerprint string) ([]Removed, error) {
	r := s.RemoveAll([]string{addrOrFingerprint})[0]
	return r.Removed, r.Err
}

// RemoveAll is Remove of each query in turn, on one proof that the store
// holds every copy (keydir.Loader.ReloadComplete): a stat of every file
// once for all of them, where Remove after Remove pays it each time. The
// pins each query matches in the store as loaded go first, for every
// query (as Remove's), then the proof, then the copies it brought in;
// what a query removes is what it matches after the queries before it,
// as in Removes one after the other. Where one query fails, the next are
// removed all the same. A query that meets a file keytool cannot rewrite
// (an OpenSSH file of several keys) stops there, as Remove does: which of
// its copies went before depends on the files the load held, and so may
// differ from Removes in separate loads.
func (s *Store) RemoveAll(queries []string) []Removal {
	match := make([]removalMatch, len(queries))
	for i, q := range queries {
		match[i] = func(snap *keydir.Snapshot[*Entry]) (unpin, error) { return s.matchRemove(snap, q) }
	}
	return s.removeAll(match)
}

// RemoveKey unpins one key of addr, leaving the address's other keys
// pinned: the key fingerprint names (any form keydir.Loader.Find matches) loses
// the address in every entry pinning it exactly there (addr in any form
// Check takes, or a pattern as written); a key left with no address is
// removed, and a file left without keys is deleted. *NotFoundError when
// that key is not pinned for addr. It goes in Remove's steps.
func (s *Store) RemoveKey(addr, fingerprint string) ([]Removed, error) {
	norm, err := NormalizeAddr(addr)
	if err != nil {
		return nil, err
	}
	fp, err := jwk.ParseFingerprint(fingerprint)
	if err != nil {
		return nil, err
	}
	r := s.removeAll([]removalMatch{func(snap *keydir.Snapshot[*Entry]) (unpin, error) {
		return s.matchRemoveKey(snap, norm, fp, fingerprint)
	}})[0]
	return r.Removed, r.Err
}

// A removalMatch finds what one removal takes out of the store as snap
// holds it: *NotFoundError where it finds nothing.
type removalMatch func(snap *keydir.Snapshot[*Entry]) (unpin, error)

// unpin is what a removal matched: the pins it takes away, the files it
// rewrites for them (in order) and how, and the keys whose copies a
// narrowed store must read before (keydir.Loader.Extend): those a
// fingerprint in a form the admin index does not keep matched.
type unpin struct {
	removed []Removed
	files   []string
	edit    func(k *jwk.Key) *jwk.Key
	read    []keydir.Term
	in      map[string]bool // the files already in files
}

// removeAll runs the removals of match in Remove's steps, each step for
// all of them: what each matches in the store as loaded (the keys to read
// first read once for all, before any write); the proof; what each
// matches then (every file read once where one has found nothing yet,
// and the keys to read read once for all, before the second step's
// writes); each removal again, after those before it. The load is
// widened (Extend, Widen) only between the writes of two steps, never
// among them: widened after a write, it would leave the admin index
// stale. (Each removal reads again the files it rewrote, and Find may
// read a file again: neither widens the load.)
func (s *Store) removeAll(match []removalMatch) []Removal {
	r := &removals{s: s, match: match, out: make([]Removal, len(match)), done: make([]bool, len(match))}
	if !s.Loader().ProofReadsAll() {
		r.readFor(false)
		r.removeEach(false)
	}
	if !slices.Contains(r.done, false) {
		return r.out // every removal failed already: nothing for a proof to find
	}
	if removeBeforeProof != nil {
		removeBeforeProof()
	}
	s.Loader().ReloadComplete()
	r.readFor(true)
	r.removeEach(true)
	return r.out
}

// removals is removeAll's work: out[i] is what match[i] removed, done[i]
// that it is over for it (failed, or found nothing in a step after the
// proof).
type removals struct {
	s     *Store
	match []removalMatch
	out   []Removal
	done  []bool
}

// readFor matches each removal not done on the store as it is, and reads
// the keys they need read (Extend), once for all. After the proof
// (proved), a removal that finds nothing and removed nothing before reads
// every file once for all (Widen) and matches again: "not found" is said
// only of the whole store.
func (r *removals) readFor(proved bool) {
	l, widened := r.s.Loader(), false
	var q keydir.Query
	for i, match := range r.match {
		if r.done[i] {
			continue
		}
		u, err := match(l.Snapshot())
		var nf *NotFoundError
		if proved && errors.As(err, &nf) && len(r.out[i].Removed) == 0 && !widened {
			widened = true
			if l.Widen() {
				u, err = match(l.Snapshot())
			}
		}
		switch {
		case proved && errors.As(err, &nf) && len(r.out[i].Removed) == 0:
			r.out[i].Err, r.done[i] = err, true
		case err != nil && !errors.As(err, &nf):
			r.out[i].Err, r.done[i] = err, true // a file the rule now refuses may hold a copy
		}
		q.Terms = append(q.Terms, u.read...)
	}
	if len(q.Terms) > 0 {
		l.Extend(q)
	}
}

// removeEach takes out, for each removal not done, what it matches now:
// after the removals before it, as Removes one after the other. In the
// last step, a removal that finds nothing, nor did before, ends "not
// found".
func (r *removals) removeEach(last bool) {
	for i, match := range r.match {
		if r.done[i] {
			continue
		}
		u, err := match(r.s.Loader().Snapshot())
		var nf *NotFoundError
		switch {
		case errors.As(err, &nf):
			if last && len(r.out[i].Removed) == 0 {
				r.out[i].Err, r.done[i] = err, true
			}
			continue
		case err != nil:
			r.out[i].Err, r.done[i] = err, true
			continue
		}
		removed, err := r.s.unpin(u)
		r.out[i].Removed = append(r.out[i].Removed, removed...)
		if err != nil {
			r.out[i].Err, r.done[i] = err, true
		}
	}
}

// removeBeforeProof, if set, is called by removeAll between its first
// step and the proof: for tests.
var removeBeforeProof func()

// unpin rewrites u's files with its edit (keydir.Loader.EditFile: each
// file read again under the rule it was loaded with) and reads them
// again. Where rewriting one fails, it returns what was removed from the
// files rewritten before, with the error.
func (s *Store) unpin(u unpin) ([]Removed, error) {
	for n, file := range u.files {
		if _, err := s.Loader().EditFile(file, u.edit); err != nil {
			edited := map[string]bool{}
			for _, f := range u.files[:n] {
				edited[f] = true
			}
			var done []Removed
			for _, r := range u.removed {
				if edited[r.File] {
					done = append(done, r)
				}
			}
			s.Loader().Reload(u.files[:n]...)
			return done, err
		}
	}
	s.Loader().Reload(u.files...) // the rest was read a moment ago
	return u.removed, nil
}

// matchRemove is Remove's match: the pins of the address
// addrOrFingerprint, else every copy of the key it is a fingerprint of.
func (s *Store) matchRemove(snap *keydir.Snapshot[*Entry], addrOrFingerprint string) (unpin, error) {
	var u unpin
	if norm, err := NormalizeAddr(addrOrFingerprint); err == nil {
		for _, e := range s.snap.Load().all() {
			if slices.Contains(e.Addresses, norm) {
				u.add(Removed{Addr: norm, Fingerprint: e.Fingerprint, File: e.File})
			}
		}
		if len(u.removed) > 0 {
			u.edit = func(k *jwk.Key) *jwk.Key { return dropAddress(k, norm) }
			return u, nil
		}
	}
	fp, err := jwk.ParseFingerprint(addrOrFingerprint)
	if err != nil {
		return u, &NotFoundError{Query: addrOrFingerprint}
	}
	found, err := s.findPinned(snap, fp)
	if err != nil {
		return u, err
	}
	drop := map[[32]byte]bool{}
	for _, f := range found {
		e := *f.Item
		u.add(Removed{Fingerprint: e.Fingerprint, File: e.File})
		if !drop[e.SPKIHash] {
			// A form the admin index does not keep (ssh-keygen's, a
			// thumbprint) matched on the keys of the files a narrowed
			// store read — a wildcard's, read by every lookup — and not
			// on the copies only their SPKI hash names: now that the
			// key is known, those are read too (before the writes).
			u.read = append(u.read, keydir.KeyTerm(e.SPKIHash))
		}
		drop[e.SPKIHash] = true
	}
	if len(u.removed) == 0 {
		return u, &NotFoundError{Query: addrOrFingerprint}
	}
	u.edit = func(k *jwk.Key) *jwk.Key {
		if drop[k.SPKIHash()] {
			return nil
		}
		return k
	}
	return u, nil
}

// matchRemoveKey is RemoveKey's match: the pins for norm of the key fp
// names.
func (s *Store) matchRemoveKey(snap *keydir.Snapshot[*Entry], norm string, fp jwk.Fingerprint, fingerprint string) (unpin, error) {
	var u unpin
	found, err := s.findPinned(snap, fp)
	if err != nil {
		return u, err
	}
	match := map[[32]byte]bool{}
	for _, f := range found {
		match[(*f.Item).SPKIHash] = true
	}
	for _, e := range s.snap.Load().all() {
		if match[e.SPKIHash] && slices.Contains(e.Addresses, norm) {
			u.add(Removed{Addr: norm, Fingerprint: e.Fingerprint, File: e.File})
		}
	}
	if len(u.removed) == 0 {
		return u, &NotFoundError{Query: norm, Key: fingerprint}
	}
	u.edit = func(k *jwk.Key) *jwk.Key {
		if match[k.SPKIHash()] {
			return dropAddress(k, norm)
		}
		return k
	}
	return u, nil
}

// add records a pin u takes away, and its file among those to rewrite.
func (u *unpin) add(r Removed) {
	u.removed = append(u.removed, r)
	if !u.in[r.File] {
		if u.in == nil {
			u.in = map[string]bool{}
		}
		u.in[r.File] = true
		u.files = append(u.files, r.File)
	}
}

// findPinned finds the pinned copies of the key fp names in snap (not the
// revoked ones), and keydir.Loader.Find's refusal of a file it read
// again: a file the rule now refuses may hold a copy.
func (s *Store) findPinned(snap *keydir.Snapshot[*Entry], fp jwk.Fingerprint) ([]keydir.Found[*Entry], error) {
	srcs := s.Loader().Sources()
	return s.Loader().Find(snap, fp, entrySPKI, func(i int) bool { return !srcs[i].Revocation })
}
