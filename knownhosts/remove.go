package knownhosts

import (
	"errors"
	"slices"
	"strings"

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
// rewriting a file fails, the removal goes on all the same (the safe
// side): the other files, and the copies the proof finds; what was
// removed is returned with the file's error.
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
// as in Removes one after the other. Each step matches every query on
// one snapshot, through what the queries before it take away, and
// rewrites each file once for all of them. Where one query fails, the
// next are removed all the same. A file keytool cannot rewrite (an
// OpenSSH file of several keys) fails the queries that would rewrite it;
// a query whose match counted on a write to it is made again, alone, on
// the store as written.
func (s *Store) RemoveAll(queries []string) []Removal {
	match, finder := make([]removalMatch, len(queries)), s.finder(jwk.FingerprintsIn(queries))
	for i, q := range queries {
		match[i] = func(snap *keydir.Snapshot[*Entry], v *unpinned) (unpin, error) {
			return s.matchRemove(snap, v, q, finder)
		}
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
	finder := s.finder([]jwk.Fingerprint{fp})
	r := s.removeAll([]removalMatch{func(snap *keydir.Snapshot[*Entry], v *unpinned) (unpin, error) {
		return s.matchRemoveKey(snap, v, norm, fp, fingerprint, finder)
	}})[0]
	return r.Removed, r.Err
}

// A removalMatch finds what one removal takes out of the store as snap
// holds it, after the removals before it in the same step, which v holds
// (nil: none): *NotFoundError where it finds nothing.
type removalMatch func(snap *keydir.Snapshot[*Entry], v *unpinned) (unpin, error)

// unpin is what a removal matched: the pins it takes away (removed, and
// the entry of each, took), the files it rewrites for them (in order) and
// how, and the keys whose copies a narrowed store must read before
// (keydir.Loader.Extend): those a fingerprint in a form the admin index
// does not keep matched.
type unpin struct {
	removed []Removed
	took    []*Entry
	files   []string
	edit    unpinEdit
	read    []keydir.Term
	in      map[string]bool // the files already in files
}

// unpinEdit is how a removal rewrites its files: it takes the address
// addr from their keys, or, with addr "", the keys out; keys nil: every
// key of the file, else those keys only.
type unpinEdit struct {
	addr string
	keys map[[32]byte]bool
}

// applyEdits returns k as the edits es of a file, in their order, leave
// it: nil when one takes it out, or takes its last positive address.
func applyEdits(k *jwk.Key, es []unpinEdit) *jwk.Key {
	sum := k.SPKIHash()
	var drop map[string]bool
	for _, e := range es {
		switch {
		case e.keys != nil && !e.keys[sum]:
		case e.addr == "":
			return nil
		default:
			if drop == nil {
				drop = map[string]bool{}
			}
			drop[e.addr] = true
		}
	}
	if drop == nil {
		return k
	}
	return dropAddresses(k, drop)
}

// unpinned is what the removals of one step matched so far, before any
// is written: the pins they take away, and the addresses they take from
// others. A removal matches through it what it would match once those
// before it were written (Removes one after the other), so that a step
// writes each file once for all its removals.
type unpinned struct {
	left map[*Entry]*pinLeft
	// seen is set when a match looks at a pin an earlier removal
	// changed: its outcome counts on that removal's write.
	seen bool
}

// pinLeft is what is left of a pin the removals of a step change.
type pinLeft struct {
	gone     bool
	dropped  map[string]bool // the addresses taken from it
	positive int             // its positive addresses (no "!") left, each time it is written
}

// pins reports whether e is still pinned after the removals v holds.
func (v *unpinned) pins(e *Entry) bool {
	if v == nil || v.left[e] == nil {
		return true
	}
	v.seen = true
	return !v.left[e].gone
}

// pinsAt reports whether e is still pinned for the address norm after
// the removals v holds.
func (v *unpinned) pinsAt(e *Entry, norm string) bool {
	if !slices.Contains(e.Addresses, norm) || !v.pins(e) {
		return false
	}
	return v == nil || v.left[e] == nil || !v.left[e].dropped[norm]
}

// add records what u takes away: its pins, or an address of each, as
// dropAddresses does (a pin left with no address but negations goes).
func (v *unpinned) add(u unpin) {
	if v.left == nil {
		v.left = map[*Entry]*pinLeft{}
	}
	for i, e := range u.took {
		l := v.left[e]
		if l == nil {
			l = &pinLeft{}
			for _, a := range e.Addresses {
				if !strings.HasPrefix(a, "!") {
					l.positive++
				}
			}
			v.left[e] = l
		}
		addr := u.removed[i].Addr
		switch {
		case l.gone:
		case addr == "":
			l.gone = true
		case !l.dropped[addr]:
			if l.dropped == nil {
				l.dropped = map[string]bool{}
			}
			l.dropped[addr] = true
			if !strings.HasPrefix(addr, "!") {
				l.positive -= countOf(e.Addresses, addr)
			}
			l.gone = l.positive == 0
		}
	}
}

// countOf returns how many times s holds x.
func countOf(s []string, x string) int {
	n := 0
	for _, y := range s {
		if y == x {
			n++
		}
	}
	return n
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
	n := len(match)
	r := &removals{s: s, match: match, out: make([]Removal, n), done: make([]bool, n), failed: make([]keydir.Unwritten, n), gone: make([][][32]byte, n)}
	if !s.Loader().ProofReadsAll() {
		r.readFor(false)
		r.removeEach(false)
	}
	if !slices.Contains(r.done, false) {
		return r.result() // every removal failed already: nothing for a proof to find
	}
	if removeBeforeProof != nil {
		removeBeforeProof()
	}
	s.Loader().ReloadComplete()
	r.readFor(true)
	r.removeEach(true)
	r.keepFailed()
	return r.result()
}

// keepFailed keeps, of the files each removal could not rewrite, those
// that still hold what it matches on the store the last step left
// (proved complete): the admin may have taken the copy out between the
// steps, or another removal's rewrite taken it (set aside for that one,
// it was not tried again). One match for each removal that failed.
func (r *removals) keepFailed() {
	snap := r.s.Loader().Snapshot()
	for i, match := range r.match {
		if r.failed[i].Err() == nil {
			continue
		}
		u, err := match(snap, nil)
		if err != nil && !errors.As(err, new(*NotFoundError)) {
			continue // a file the rule now refuses: say what failed
		}
		r.failed[i].Keep(func(f string) bool { return u.in[f] }, snap.Problems)
	}
}

// result is what the removals did, a file one could not rewrite its
// error.
func (r *removals) result() []Removal {
	for i := range r.failed {
		if err := r.failed[i].Err(); err != nil {
			r.out[i].Err = err
		}
	}
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
	// failed[i] are the files removal i could not rewrite. One does not
	// end it: its second step removes the copies the proof finds all the
	// same (the safe side), and then the error of the first file still
	// unwritten is its outcome.
	failed []keydir.Unwritten
	// gone[i] are the keys whose pins removal i took away whole, whose
	// other copies the proof's step reads (readFor).
	gone [][][32]byte
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
		u, err := match(l.Snapshot(), nil)
		var nf *NotFoundError
		if proved && errors.As(err, &nf) && len(r.out[i].Removed) == 0 && !widened {
			widened = true
			if l.Widen() {
				u, err = match(l.Snapshot(), nil)
			}
		}
		switch {
		case proved && errors.As(err, &nf) && len(r.out[i].Removed) == 0:
			r.out[i].Err, r.done[i] = err, true
		case err != nil && !errors.As(err, &nf):
			r.out[i].Err, r.done[i] = err, true // a file the rule now refuses may hold a copy
		}
		q.Terms = append(q.Terms, u.read...)
		if proved {
			// A fingerprint in a form the index does not keep that
			// matched, in the first step, only a copy another removal's
			// read brought in (it found nothing here then, so read
			// nothing): the key's copies the index names are read now,
			// else they would be left pinned while the removal says
			// nothing went wrong (found by review).
			for _, sum := range r.gone[i] {
				q.Terms = append(q.Terms, keydir.KeyTerm(sum))
			}
		}
	}
	if len(q.Terms) > 0 {
		l.Extend(q)
	}
}

// removeEach takes out, for each removal not done, what it matches now:
// after the removals before it, as Removes one after the other. In the
// last step, a removal that finds nothing, nor did before, ends "not
// found". It matches them all on one snapshot, each through what those
// before it take away (unpinned), and writes each file once for all of
// them (unpinAll): each written and read again in turn, 200 addresses
// taken from a pin of 20,000 took 8 s. Where a file cannot be
// rewritten, the removals whose match counted on a write (unpinned.seen)
// are matched and made again, one at a time, on the store as written.
func (r *removals) removeEach(last bool) {
	var todo []int
	for i := range r.match {
		if !r.done[i] {
			todo = append(todo, i)
		}
	}
	for _, i := range r.removeTogether(todo, last) {
		r.removeTogether([]int{i}, last)
	}
}

// removeTogether is removeEach of the removals todo, and returns those
// to make again, one at a time: where a file could not be rewritten,
// those whose match counted on another's write.
func (r *removals) removeTogether(todo []int, last bool) (again []int) {
	snap, v := r.s.Loader().Snapshot(), &unpinned{}
	us := make([]unpin, len(todo))
	counted := make([]bool, len(todo))
	for n, i := range todo {
		v.seen = false
		u, err := r.match[i](snap, v)
		counted[n] = v.seen
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
		v.add(u)
		us[n] = u
	}
	failed := r.s.unpinAll(us)
	for n, i := range todo {
		for k, rm := range us[n].removed {
			err := failed[rm.File]
			if err == nil {
				r.out[i].Removed = append(r.out[i].Removed, rm)
				if rm.Addr == "" {
					r.gone[i] = append(r.gone[i], us[n].took[k].SPKIHash)
				}
			}
			r.failed[i].Tried(rm.File, err)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	for n, i := range todo {
		if counted[n] && (!r.done[i] || errors.As(r.out[i].Err, new(*NotFoundError))) {
			r.out[i].Err, r.done[i] = nil, false
			again = append(again, i)
		}
	}
	return again
}

// removeBeforeProof, if set, is called by removeAll between its first
// step and the proof: for tests.
var removeBeforeProof func()

// unpinAll rewrites the files of us, each once, with the edits of those
// that rewrite it, in their order (keydir.Loader.EditFiles: each file read
// again under the rule it was loaded with, a file left without keys
// removed durably), and reads them again. A file
// that cannot be rewritten does not stop the others; it returns the
// error of each.
func (s *Store) unpinAll(us []unpin) (failed map[string]error) {
	var files []string
	edits := map[string][]unpinEdit{}
	for _, u := range us {
		for _, f := range u.files {
			if edits[f] == nil {
				files = append(files, f)
			}
			edits[f] = append(edits[f], u.edit)
		}
	}
	failed = s.Loader().EditFiles(files, func(f string) func(*jwk.Key) *jwk.Key {
		es := edits[f]
		return func(k *jwk.Key) *jwk.Key { return applyEdits(k, es) }
	})
	if len(files) > 0 {
		s.Loader().Reload(files...) // the rest was read a moment ago
	}
	return failed
}

// matchRemove is Remove's match: the pins of the address
// addrOrFingerprint, else every copy of the key it is a fingerprint of;
// through v, the removals before it in its step; finder is s.finder of
// the fingerprints among the queries.
func (s *Store) matchRemove(snap *keydir.Snapshot[*Entry], v *unpinned, addrOrFingerprint string, finder *keydir.Finder[*Entry]) (unpin, error) {
	var u unpin
	if norm, err := NormalizeAddr(addrOrFingerprint); err == nil {
		for _, e := range s.snap.Load().holding(norm) {
			if v.pinsAt(e, norm) {
				u.add(e, Removed{Addr: norm, Fingerprint: e.Fingerprint, File: e.File})
			}
		}
		if len(u.removed) > 0 {
			u.edit = unpinEdit{addr: norm}
			return u, nil
		}
	}
	fp, err := jwk.ParseFingerprint(addrOrFingerprint)
	if err != nil {
		return u, &NotFoundError{Query: addrOrFingerprint}
	}
	found, err := finder.Find(snap, fp)
	if err != nil {
		return u, err
	}
	drop := map[[32]byte]bool{}
	for _, f := range found {
		e := *f.Item
		if !v.pins(e) {
			continue
		}
		u.add(e, Removed{Fingerprint: e.Fingerprint, File: e.File})
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
	u.edit = unpinEdit{keys: drop}
	return u, nil
}

// matchRemoveKey is RemoveKey's match: the pins for norm of the key fp
// names (finder: s.finder of fp); through v, the removals before it in
// its step.
func (s *Store) matchRemoveKey(snap *keydir.Snapshot[*Entry], v *unpinned, norm string, fp jwk.Fingerprint, fingerprint string, finder *keydir.Finder[*Entry]) (unpin, error) {
	var u unpin
	found, err := finder.Find(snap, fp)
	if err != nil {
		return u, err
	}
	match := map[[32]byte]bool{}
	for _, f := range found {
		match[(*f.Item).SPKIHash] = true
	}
	for _, e := range s.snap.Load().holding(norm) {
		if match[e.SPKIHash] && v.pinsAt(e, norm) {
			u.add(e, Removed{Addr: norm, Fingerprint: e.Fingerprint, File: e.File})
		}
	}
	if len(u.removed) == 0 {
		return u, &NotFoundError{Query: norm, Key: fingerprint}
	}
	u.edit = unpinEdit{addr: norm, keys: match}
	return u, nil
}

// add records a pin u takes away (or an address of it), e's, and its
// file among those to rewrite.
func (u *unpin) add(e *Entry, r Removed) {
	u.removed, u.took = append(u.removed, r), append(u.took, e)
	if !u.in[r.File] {
		if u.in == nil {
			u.in = map[string]bool{}
		}
		u.in[r.File] = true
		u.files = append(u.files, r.File)
	}
}

// finder returns a keydir.Finder of fps among the pinned keys (not the
// revoked ones): the pinned copies of the key each names, and
// keydir.Loader.Find's refusal of a file it read again (a file the rule
// now refuses may hold a copy).
func (s *Store) finder(fps []jwk.Fingerprint) *keydir.Finder[*Entry] {
	srcs := s.Loader().Sources()
	return s.Loader().NewFinder(fps, entrySPKI, func(i int) bool { return !srcs[i].Revocation })
}
