package keydir

import (
	"hash/maphash"
	"iter"
	"sync/atomic"
)

// FeedSet is an immutable set of a feed's entries by name that remembers
// what changed: Put, Reject and Delete return a new set and leave the
// receiver as it was, at a cost that grows with the logarithm of the
// set's size, not with the size (a hash trie whose versions share every
// node a change did not touch). Each set has a generation, unique in the
// process; ChangedSince(g) names the entries changed since the set of
// generation g, if this set descends from it. A feed that hands its views
// as FeedSets lets the loader re-read only what changed: one change to a
// feed of a million entries costs what a change to a feed of ten does
// (docs/design.md, "Trust from elsewhere than files"). A nil *FeedSet is
// an empty set.
type FeedSet struct {
	root *trieNode
	n    int
	gen  uint64
	// log is the changes since base, newest first. It is cut (base moves
	// up) once it is longer than a quarter of the set (64 at least), so
	// that a set does not keep every change it ever had alive (a set
	// built by 100,000 Puts keeps at most 25,000): a reader that far
	// behind reads the whole set, at about the cost of those changes.
	log  *changeNode
	base uint64
}

// FeedEntry is one entry of a FeedSet: its content, or why the feed could
// not hand it on (FeedView.Rejected's meaning).
type FeedEntry struct {
	Data []byte
	Err  error
}

type changeNode struct {
	gen  uint64 // the generation this change made
	name string
	prev *changeNode
	n    int // changes in the log up to this one
}

// feedGen hands out generations: unique in the process, so that a
// generation names one set of one lineage.
var feedGen atomic.Uint64

// NewFeedSet returns an empty set with a generation of its own and no
// history: a reader that last read another set reads this one whole.
func NewFeedSet() *FeedSet {
	g := feedGen.Add(1)
	return &FeedSet{gen: g, base: g}
}

// Len is the number of entries.
func (s *FeedSet) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Gen is the set's generation (0 for a nil set).
func (s *FeedSet) Gen() uint64 {
	if s == nil {
		return 0
	}
	return s.gen
}

// Get returns the entry named name.
func (s *FeedSet) Get(name string) (FeedEntry, bool) {
	if s == nil {
		return FeedEntry{}, false
	}
	h := hashName(name)
	n := s.root
	for depth := 0; n != nil; depth++ {
		if n.kids == nil {
			for _, it := range n.items {
				if it.name == name {
					return it.FeedEntry, true
				}
			}
			return FeedEntry{}, false
		}
		n = n.kids[slot(h, depth)]
	}
	return FeedEntry{}, false
}

// All yields every entry, in no particular order.
func (s *FeedSet) All() iter.Seq2[string, FeedEntry] {
	return func(yield func(string, FeedEntry) bool) {
		if s != nil {
			s.root.all(yield)
		}
	}
}

// Put returns the set with name holding data.
func (s *FeedSet) Put(name string, data []byte) *FeedSet {
	return s.with(name, FeedEntry{Data: data}, false)
}

// Reject returns the set with name rejected for err.
func (s *FeedSet) Reject(name string, err error) *FeedSet {
	return s.with(name, FeedEntry{Err: err}, false)
}

// Delete returns the set without name (the same set if it has none).
func (s *FeedSet) Delete(name string) *FeedSet {
	if _, ok := s.Get(name); !ok {
		return s
	}
	return s.with(name, FeedEntry{}, true)
}

// ChangedSince returns the names of the entries put, rejected or deleted
// since the set of generation gen (a name may come more than once), and
// true; or false if this set does not descend from it within its
// remembered history, when the reader must read the whole set.
// The set just before this one is always within it; an older one is
// unless the history was cut since (once every quarter of the set's size
// in changes, so that a reader following every change reads the whole
// set that seldom).
func (s *FeedSet) ChangedSince(gen uint64) ([]string, bool) {
	if s == nil || gen == 0 {
		return nil, false
	}
	var names []string
	c := s.log
	for c != nil && c.gen > gen {
		names = append(names, c.name)
		c = c.prev
	}
	if (c != nil && c.gen == gen) || (c == nil && s.base == gen) {
		return names, true
	}
	return nil, false
}

// with returns the set with name holding e (deleted: without name).
func (s *FeedSet) with(name string, e FeedEntry, deleted bool) *FeedSet {
	if s == nil {
		s = NewFeedSet()
	}
	it := feedItem{name: name, hash: hashName(name), FeedEntry: e}
	root, delta := s.root.with(it, 0, deleted)
	ns := &FeedSet{root: root, n: s.n + delta, gen: feedGen.Add(1), base: s.base}
	prev := s.log
	if prev != nil && prev.n >= max(ns.n/4, 64) {
		prev, ns.base = nil, s.gen
	}
	ns.log = &changeNode{gen: ns.gen, name: name, prev: prev, n: 1}
	if prev != nil {
		ns.log.n = prev.n + 1
	}
	return ns
}

// trieNode is a node of the hash trie: a leaf holding up to leafMax items
// (more at the deepest level, where hashes are used up), or an interior
// node of 16 children chosen by 4 bits of the name's hash.
type trieNode struct {
	kids  *[16]*trieNode
	items []feedItem
}

type feedItem struct {
	name string
	hash uint64
	FeedEntry
}

const (
	leafMax  = 8
	maxDepth = 16 // 64 bits of hash, 4 a level
)

var hashSeed = maphash.MakeSeed()

func hashName(name string) uint64 { return maphash.String(hashSeed, name) }

func slot(h uint64, depth int) int { return int(h>>(4*depth)) & 15 }

// with returns a copy of n with it put in (deleted: taken out), and by
// how much the count of entries changed. Only the path to it is copied.
func (n *trieNode) with(it feedItem, depth int, deleted bool) (*trieNode, int) {
	if n != nil && n.kids != nil {
		kids := *n.kids
		var delta int
		kids[slot(it.hash, depth)], delta = kids[slot(it.hash, depth)].with(it, depth+1, deleted)
		return &trieNode{kids: &kids}, delta
	}
	var items []feedItem
	if n != nil {
		items = make([]feedItem, 0, len(n.items)+1)
		for _, x := range n.items {
			if x.name != it.name {
				items = append(items, x)
			}
		}
	}
	delta := len(items)
	if n != nil {
		delta -= len(n.items)
	}
	if !deleted {
		items = append(items, it)
		delta++
	}
	if len(items) <= leafMax || depth >= maxDepth-1 {
		return &trieNode{items: items}, delta
	}
	var kids [16]*trieNode
	for _, x := range items {
		kids[slot(x.hash, depth)], _ = kids[slot(x.hash, depth)].with(x, depth+1, false)
	}
	return &trieNode{kids: &kids}, delta
}

func (n *trieNode) all(yield func(string, FeedEntry) bool) bool {
	if n == nil {
		return true
	}
	if n.kids != nil {
		for _, k := range n.kids {
			if !k.all(yield) {
				return false
			}
		}
		return true
	}
	for _, it := range n.items {
		if !yield(it.name, it.FeedEntry) {
			return false
		}
	}
	return true
}
