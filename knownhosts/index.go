package knownhosts

import (
	"encoding/binary"
	"hash/maphash"
	"maps"
	"math/bits"
	"net/netip"
	"slices"
	"strings"

	"github.com/keytool/keytool/internal/fewset"
	"github.com/keytool/keytool/internal/keydir"
)

// pinIndex is what Check looks pins up in: the entries of every pin file
// by the exact address of a positive pattern, and by key the entries
// pinned without an address and those with a wildcard pattern. Each list
// is in file order (source, path, position in the file), as a build of
// every file makes it: the first pin of a list names the file of a
// *NeedsNameError, and a *KeyChangedError names the pins in that order.
//
// A published index is never written again, and a reload that changes a
// few files must not cost the whole store (docs/design.md, "From a file
// change to a handshake decision"): each map is split into about √n
// shards, and a reload copies the list of shards and the shards it writes
// to — for one pin file among 100,000, 512 pointers and one shard of some
// 200 addresses, instead of every map. Shards are chosen by hash, so a
// fleet's addresses spread evenly; only admins choose them, so nobody can
// crowd one on purpose (that would only slow reloads). When a table has
// grown far past its shards (four times √n), or a reload changed a quarter
// of the entries, the index is built again from every file: amortized, a
// reload costs what changed.
//
// Why shards rather than an immutable base with a small overlay of the
// changed addresses, merged into a new base when it grows: each reload
// publishes an immutable snapshot, so it copies the overlay, and keeping
// that copy cheap bounds the overlay to about √n, which is what a shard
// costs — but with two lookups on every handshake instead of one, and a
// merge that brings back a full build's pause now and then.
type pinIndex struct {
	exact table[hostKey]  // positive exact patterns
	named table[[32]byte] // keys pinned without an address, by SPKI hash
	wild  table[[32]byte] // entries with a positive wildcard pattern, by SPKI hash
	n     int             // entries indexed
}

// table is a map from a key to the entries that hold it, split into a
// power of two of shards by a hash of the key (see pinIndex).
type table[K comparable] struct {
	shards []map[K][]*Entry // nil when the table has never had a key
	n      int              // keys
}

// hostSeed seeds the hash that spreads addresses over shards.
var hostSeed = maphash.MakeSeed()

// hashHost is the shard hash of an exact address.
func hashHost(k hostKey) uint64 { return hashPort(hashAddr(k.ip, k.name), k.port) }

// hashAddr is the part of hashHost that does not depend on the port
// (Check looks an address up with its port and without: one hash).
func hashAddr(ip netip.Addr, name string) uint64 {
	if !ip.IsValid() {
		return maphash.String(hostSeed, name)
	}
	a := ip.As16()
	return binary.LittleEndian.Uint64(a[:8])*0x9e3779b97f4a7c15 ^
		bits.RotateLeft64(binary.LittleEndian.Uint64(a[8:])*0xc2b2ae3d27d4eb4f, 31)
}

// hashPort completes hashAddr's hash h with a port.
func hashPort(h uint64, port uint16) uint64 {
	h ^= uint64(port) * 0x165667b19e3779f9
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	return h ^ h>>32
}

// hashSPKI is the shard hash of an SPKI hash: already uniform.
func hashSPKI(sum [32]byte) uint64 { return binary.LittleEndian.Uint64(sum[:8]) }

// shardsFor is the number of shards for a table of n keys: the power of
// two nearest above √n, so that a reload copies about as many shard
// pointers as keys of one shard.
func shardsFor(n int) int {
	s := 1
	for s*s < n {
		s <<= 1
	}
	return s
}

// outgrown reports whether t has grown so far past its shards that a
// reload would copy too large a shard: the index is then built again.
func (t *table[K]) outgrown() bool {
	s := len(t.shards)
	return t.n > 4*s*s+64
}

func (t *table[K]) get(h uint64, k K) []*Entry {
	if t.n == 0 {
		return nil
	}
	return t.shards[h&uint64(len(t.shards)-1)][k]
}

// add appends e to k's list, in a table being built (it owns every
// shard).
func (t *table[K]) add(h uint64, k K, e *Entry, hint int) {
	m := &t.shards[h&uint64(len(t.shards)-1)]
	if *m == nil {
		*m = make(map[K][]*Entry, hint)
	}
	list, ok := (*m)[k]
	if !ok {
		t.n++
	}
	(*m)[k] = append(list, e)
}

// tableEdit writes a table copied from a published one: it copies the
// list of shards once and each shard the first time it writes to it.
type tableEdit[K comparable] struct {
	t     *table[K]
	owned []bool // by shard: copied by this edit
}

func (w *tableEdit[K]) set(h uint64, k K, list []*Entry) {
	if w.owned == nil {
		w.t.shards = slices.Clone(w.t.shards)
		w.owned = make([]bool, len(w.t.shards))
	}
	i := h & uint64(len(w.t.shards)-1)
	if !w.owned[i] {
		w.t.shards[i] = maps.Clone(w.t.shards[i])
		if w.t.shards[i] == nil {
			w.t.shards[i] = map[K][]*Entry{}
		}
		w.owned[i] = true
	}
	_, had := w.t.shards[i][k]
	switch {
	case len(list) == 0 && had:
		delete(w.t.shards[i], k)
		w.t.n--
	case len(list) > 0:
		w.t.shards[i][k] = list
		if !had {
			w.t.n++
		}
	}
}

// places returns where e belongs in an index: the exact addresses of its
// positive patterns (each once, appended to buf), and whether it is
// pinned without an address (named) or has a positive wildcard pattern.
func (e *Entry) places(buf []hostKey) (exact []hostKey, named, wild bool) {
	if e.AnyNamedAddress() {
		return buf, true, false
	}
	// Most pins have an address or two; one of 20,000 took a second to
	// index when each was searched for among those before it.
	set := fewset.New(buf)
	for _, p := range e.pos {
		if p.wild {
			wild = true
		} else {
			set.Add(p.key())
		}
	}
	return set.Members(), false, wild
}

// buildIndex indexes every pin file of files, in file order.
func buildIndex(files []*keydir.File[*Entry], isRevocation func(src int) bool) pinIndex {
	var nExact, nNamed, nWild int
	var buf []hostKey
	for _, f := range files {
		if isRevocation(f.Source()) {
			continue
		}
		for _, e := range f.Items() {
			exact, named, wild := e.places(buf[:0])
			nExact += len(exact)
			nNamed += b2i(named)
			nWild += b2i(wild)
			buf = exact
		}
	}
	var x pinIndex
	x.exact.shards = make([]map[hostKey][]*Entry, shardsFor(nExact))
	x.named.shards = make([]map[[32]byte][]*Entry, shardsFor(nNamed))
	x.wild.shards = make([]map[[32]byte][]*Entry, shardsFor(nWild))
	hint := nExact/len(x.exact.shards) + 1
	for _, f := range files {
		if isRevocation(f.Source()) {
			continue
		}
		for _, e := range f.Items() {
			x.n++
			exact, named, wild := e.places(buf[:0])
			for _, k := range exact {
				x.exact.add(hashHost(k), k, e, hint)
			}
			if named {
				x.named.add(hashSPKI(e.SPKIHash), e.SPKIHash, e, 1)
			}
			if wild {
				x.wild.add(hashSPKI(e.SPKIHash), e.SPKIHash, e, 1)
			}
			buf = exact
		}
	}
	return x
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// indexChange is the change of an index that a reload makes: for each
// list that a file gone or come touches, the entries that came into it,
// in file order; and the entries that went.
type indexChange struct {
	exact       map[hostKey][]*Entry
	named, wild map[[32]byte][]*Entry
	gone        map[*Entry]struct{}
}

// touch records e's lists as changed, adding e to them when it came.
func (c *indexChange) touch(e *Entry, came bool, buf []hostKey) []hostKey {
	exact, named, wild := e.places(buf[:0])
	for _, k := range exact {
		c.exact[k] = touched(c.exact[k], e, came)
	}
	if named {
		c.named[e.SPKIHash] = touched(c.named[e.SPKIHash], e, came)
	}
	if wild {
		c.wild[e.SPKIHash] = touched(c.wild[e.SPKIHash], e, came)
	}
	return exact
}

// touched is a list of the entries that came, with e if it came; never nil
// (a key present in the change is a list to write again).
func touched(came []*Entry, e *Entry, add bool) []*Entry {
	if add {
		return append(came, e)
	}
	if came == nil {
		return []*Entry{}
	}
	return came
}

// updateIndex derives the index of a snapshot from prev, the index of the
// snapshot that the files gone (pin files only) left and the files came
// entered (both in file order, as keydir.Diff gives them). It reports
// false when the index must be built from every file instead: so much
// changed that a build is as cheap, a table outgrew its shards, or an
// entry that came is from a file that stayed (mergeFiles).
func updateIndex(prev pinIndex, gone, came []*keydir.File[*Entry]) (pinIndex, bool) {
	changed := 0
	for _, f := range gone {
		changed += len(f.Items())
	}
	for _, f := range came {
		changed += len(f.Items())
	}
	if changed > prev.n/4+64 {
		return pinIndex{}, false
	}
	c := indexChange{exact: map[hostKey][]*Entry{}, named: map[[32]byte][]*Entry{}, wild: map[[32]byte][]*Entry{},
		gone: map[*Entry]struct{}{}}
	var buf []hostKey
	x := prev
	for _, f := range gone {
		for _, e := range f.Items() {
			c.gone[e] = struct{}{}
			buf = c.touch(e, false, buf)
			x.n--
		}
	}
	for _, f := range came {
		for _, e := range f.Items() {
			buf = c.touch(e, true, buf)
			x.n++
		}
	}
	if !applyChange(&x.exact, c.exact, c.gone, hashHost) ||
		!applyChange(&x.named, c.named, c.gone, hashSPKI) ||
		!applyChange(&x.wild, c.wild, c.gone, hashSPKI) {
		return pinIndex{}, false
	}
	return x, true
}

// applyChange writes again, in a copy of t, the lists of change: each
// list without the entries gone, with those that came merged in file
// order.
func applyChange[K comparable](t *table[K], change map[K][]*Entry, gone map[*Entry]struct{}, hash func(K) uint64) bool {
	if len(change) == 0 {
		return true
	}
	w := tableEdit[K]{t: t}
	for k, came := range change {
		h := hash(k)
		list, ok := mergeFiles(t.get(h, k), gone, came)
		if !ok {
			return false
		}
		w.set(h, k, list)
	}
	return !t.outgrown()
}

// mergeFiles returns a new list: the entries of old not gone, with came
// merged in, in file order. It reports false when an entry that came is
// from the same file as one that stayed (which a reload never gives: a
// file that changed is gone and came).
func mergeFiles(old []*Entry, gone map[*Entry]struct{}, came []*Entry) ([]*Entry, bool) {
	out := make([]*Entry, 0, len(old)+len(came))
	i := 0
	for _, e := range old {
		if _, g := gone[e]; g {
			continue
		}
		for i < len(came) && fileBefore(came[i], e) {
			out = append(out, came[i])
			i++
		}
		if i < len(came) && !fileBefore(e, came[i]) {
			return nil, false
		}
		out = append(out, e)
	}
	return append(out, came[i:]...), true
}

// fileBefore reports whether a's file comes before b's in file order:
// by source, then by path, as keydir orders a snapshot's files.
func fileBefore(a, b *Entry) bool {
	if a.src != b.src {
		return a.src < b.src
	}
	return strings.Compare(a.File, b.File) < 0
}
