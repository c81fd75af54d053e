package authkeys

import (
	"cmp"
	"fmt"
	"hash/maphash"
	"iter"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/jwk"
)

// An entry's name is the identity a server hands on (handlers, logs, the
// proxy's X-Keytool-Name). Add keeps it to one client, but a file written
// by other means may give a second key a name already held. Such a name
// is reported — in the store's log when it appears, and by SharedNames —
// but neither key is refused: both were authorized by whoever wrote their
// files, and refusing would let anyone who adds a file lock another
// client out. Authorization decisions should use the key's fingerprint,
// which is unique (docs/design.md, "Names").

// SharedName is a name that entries of more than one client hold.
type SharedName struct {
	Name    string
	Entries []*Entry // the entries in effect holding it, in file order
}

// nameCount is how many entries in effect hold a name: n outside
// rotation files, canon of them in the name's own file of a directory
// (NAME.json), rot in rotation files (NAME+KEYID.json, written by Add with
// AddBeside for the client's next key, KEYID part of its own: isBesideName).
type nameCount struct{ n, canon, rot uint32 }

// add adds d to the counts an entry of kind (nameKind) adds to.
func (c *nameCount) add(kind byte, d uint32) {
	switch kind {
	case 'r':
		c.rot += d
	case 'c':
		c.n, c.canon = c.n+d, c.canon+d
	default:
		c.n += d
	}
}

// shared reports whether the name stands for more than one client: two
// entries outside rotation files, or one that is not the name's own file
// beside the rotation files of a client (whose first entry, NAME.json, a
// rotation leaves or whose removal ends it).
func (c nameCount) shared() bool { return c.n >= 2 || c.n == 1 && c.canon == 0 && c.rot > 0 }

// nameCounts counts the names of the entries in effect, so that a reload
// finds the names that became shared from the files that changed alone.
// Names are kept as 64-bit hashes (no pointer for the collector to read);
// a collision can only make SharedNames look again, which recounts by the
// names themselves. Only build uses it, under the loader's lock.
//
// Nearly every name is held by one entry, named after its own file (a
// directory of single-key files) or by its member (a JWK Set): those
// names are kept as a hash alone, 8 bytes in a hashSet, and only the
// others with their counts (24 bytes a slot): at 100,000 keys a map of
// counts for every name cost about 35 bytes a key, and a Go map of their
// hashes 23 (docs/design.md, "Memory of a loaded store").
type nameCounts struct {
	seed maphash.Seed
	// own and member are the names of count ownOnly and memberOnly; count
	// holds the others.
	own, member hashSet
	count       map[uint64]nameCount
	shared      map[uint64]string // the names whose count is shared, by hash
	// unprintable counts the entries in effect holding each name that is
	// not shown as it is (keydir.PrintableName): nearly always none, so
	// that a reload finds the names that came from the files that changed
	// alone, and UnprintableNames reads no entry when there is none. Kept
	// by the names themselves, which are few, so that no hash collision
	// with another name can hide one.
	unprintable map[string]uint32
	dirty       bool // shared or unprintable changed since the last snapshot
}

// The counts of nearly every name (nameCounts.own and .member).
var (
	ownOnly    = nameCount{n: 1, canon: 1}
	memberOnly = nameCount{n: 1}
)

// get is the count of the name of hash h.
func (nc *nameCounts) get(h uint64) nameCount {
	if nc.own.has(h) {
		return ownOnly
	}
	if nc.member.has(h) {
		return memberOnly
	}
	return nc.count[h]
}

// set makes c the count of the name of hash h, whose count was was.
func (nc *nameCounts) set(h uint64, was, c nameCount) {
	switch was {
	case ownOnly:
		nc.own.remove(h)
	case memberOnly:
		nc.member.remove(h)
	case nameCount{}:
	default:
		delete(nc.count, h)
	}
	switch c {
	case ownOnly:
		nc.own.add(h)
	case memberOnly:
		nc.member.add(h)
	case nameCount{}:
	default:
		nc.count[h] = c
	}
}

// nameKind is the name of the entry at pos of f, and says how it counts
// toward its name: 'r' rotation file, 'c' the name's own file, 'n' any
// other; 0: no name. It reads the file as a FileRef: the name counts
// read every entry at each rebuild, and make no File for it.
func nameKind(f keydir.FileRef[item], pos int) (name string, kind byte) {
	m := rareMore(f.RareAt(pos))
	fileName := f.Name()
	if name = nameWith(f.InDir(), fileName, m); name == "" {
		return "", 0
	}
	switch base := fileEntryName(fileName); {
	case m == nil || m.nameFromFile:
		return name, 'c'
	case isBesideName(base, name, f.Item(pos).sum):
		return name, 'r'
	}
	return name, 'n'
}

// logSharedNames logs the names that became shared, and those no longer
// shared, between prev and sn, in name order. Only a name that became
// shared needs its entries, read from sn; one no longer shared is known
// by prev's set.
func (s *Store) logSharedNames(prev, sn *snapshot) {
	log := s.opts.Logger
	if log == nil {
		return
	}
	came := false
	for h := range sn.shared {
		if _, was := prev.shared[h]; !was {
			came = true
			break
		}
	}
	if came {
		for _, sh := range s.sharedNames(sn) {
			if _, was := prev.shared[maphash.String(s.names.seed, sh.Name)]; !was {
				log.Warn("entries of several keys share a name: each is authorized, but the name does not tell their clients apart; decide by the key's fingerprint, and rename or remove all but one",
					"name", sh.Name, "entries", describeEntries(sh.Entries))
			}
		}
	}
	var gone []string
	for h, name := range prev.shared {
		if _, ok := sn.shared[h]; !ok {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		log.Info("a name shared by several keys is now held by one client", "name", name)
	}
}

// describeEntries names entries in a message: fingerprint (file), …,
// and past maxEntriesNamed, how many more.
func describeEntries(es []*Entry) string {
	return strings.Join(namedFew(es, func(e *Entry) string { return e.Fingerprint + " (" + e.File + ")" }, "and %d more"), ", ")
}

// namedFew is name of each of the first maxEntriesNamed of es, then, if
// there are more, how many (more, a format of the count).
func namedFew(es []*Entry, name func(*Entry) string, more string) []string {
	var parts []string
	for i, e := range es {
		if i == maxEntriesNamed {
			return append(parts, fmt.Sprintf(more, len(es)-i))
		}
		parts = append(parts, name(e))
	}
	return parts
}

// maxEntriesNamed is how many entries a message about several of them
// names before it counts the rest (SharedName, SharedKey): one name on
// 2,000 keys made a line of 188 KB.
const maxEntriesNamed = 5

// besideName is the file name, without extension, of the entry Add with
// AddBeside writes for a client's next key: NAME+ and the first
// besideIDLen characters of the key's ID.
func besideName(name string, sum [32]byte) string { return besideNameOf(name, sum, besideIDLen) }

// How many characters (5 bits each) of a next key's ID its rotation file
// name keeps: 32, 160 bits, so that no client can make two keys of its
// own whose files are one (it would take about 2^80 keys). Earlier
// versions kept 8, 40 bits: a client that made about a million keys (a
// minute of one core) had a pair, and its second next key was refused as
// a name taken (TestAcceptRotationKeysSharingShortIDs). Their files are
// still read as rotation files (isBesideName), so that homes they wrote
// keep counting them.
const (
	besideIDLen    = 32
	oldBesideIDLen = 8
)

func besideNameOf(name string, sum [32]byte, n int) string {
	return name + "+" + strings.ReplaceAll(jwk.FormatKeyID(sum), ":", "")[:n]
}

// isBesideName reports whether base, a file name without extension, is
// the name of a rotation file of name for the key sum: besideName's, or
// the shorter one of earlier versions. It compares the lengths first: a
// set of a million named members makes no key IDs.
func isBesideName(base, name string, sum [32]byte) bool {
	n := len(base) - len(name) - 1
	if n != besideIDLen && n != oldBesideIDLen || base[len(name)] != '+' || base[:len(name)] != name {
		return false
	}
	return base == besideNameOf(name, sum, n)
}

// add counts the entry at pos of f, in effect, with delta (+1 or -1).
func (nc *nameCounts) add(f keydir.FileRef[item], pos int, delta int) {
	name, kind := nameKind(f, pos)
	if kind == 0 {
		return
	}
	h := maphash.String(nc.seed, name)
	prev := nc.get(h)
	c := prev
	c.add(kind, uint32(delta)) // -1 wraps: a count never falls below what was added
	nc.set(h, prev, c)
	if now, was := c.shared(), prev.shared(); now != was {
		nc.dirty = true
		if now {
			nc.shared[h] = name
		} else {
			delete(nc.shared, h)
		}
	}
	if !keydir.PrintableName(name) {
		nc.dirty = true
		if nc.unprintable == nil {
			nc.unprintable = map[string]uint32{}
		}
		if n := nc.unprintable[name] + uint32(delta); n != 0 {
			nc.unprintable[name] = n
		} else {
			delete(nc.unprintable, name)
		}
	}
}

// recount counts anew the names of the entries in effect that each
// yields (about n of them), as add would one by one from empty counts:
// for a rebuild. It hashes them all into one array and sorts it, so that
// each name's count comes from its run of equal hashes and the sets of
// names held once from the runs in order. Added one by one (add: a
// lookup in both sets and an insertion into one, and some 60 merges of
// the sets' sorted arrays on the way to 100,000 names), they made most
// of the 83–89 ms of CPU a cold load of 100,000 keys spent publishing on
// one core while the other waited; counted so, with the entries in
// effect taken from the index's insertions (rebuild), 58–59 ms
// (docs/benchmarks.md, "Cold start to the first admitted handshake").
func (nc *nameCounts) recount(n int, each iter.Seq2[keydir.FileRef[item], ref]) {
	type named struct {
		h    uint64
		kind byte
	}
	all := make([]named, 0, n)
	nc.unprintable = nil
	for f, at := range each {
		if name, kind := nameKind(f, int(at.pos)); kind != 0 {
			all = append(all, named{maphash.String(nc.seed, name), kind})
			if !keydir.PrintableName(name) {
				if nc.unprintable == nil {
					nc.unprintable = map[string]uint32{}
				}
				nc.unprintable[name]++
			}
		}
	}
	slices.SortFunc(all, func(a, b named) int { return cmp.Compare(a.h, b.h) })
	var own, member []uint64
	nc.count, nc.shared, nc.dirty = map[uint64]nameCount{}, map[uint64]string{}, true
	for i := 0; i < len(all); {
		h, c := all[i].h, nameCount{}
		for ; i < len(all) && all[i].h == h; i++ {
			c.add(all[i].kind, 1)
		}
		switch c {
		case ownOnly:
			own = append(own, h)
		case memberOnly:
			member = append(member, h)
		default:
			nc.count[h] = c
			if c.shared() {
				nc.shared[h] = ""
			}
		}
	}
	nc.own, nc.member = sortedHashSet(own), sortedHashSet(member)
	if len(nc.shared) == 0 {
		return
	}
	// The names of the few shared hashes, from the entries again.
	for f, at := range each {
		name, kind := nameKind(f, int(at.pos))
		if kind == 0 {
			continue
		}
		if h := maphash.String(nc.seed, name); nc.shared[h] == "" {
			if _, ok := nc.shared[h]; ok {
				nc.shared[h] = name
			}
		}
	}
}

// files counts the items of files, all in effect, with delta.
func (nc *nameCounts) files(files []keydir.FileRef[item], delta int) {
	for _, f := range files {
		for pos := range f.Len() {
			nc.add(f, pos, delta)
		}
	}
}

// publish sets sn's shared names from the counts: prev's set while it is
// the same, else a copy (a snapshot is never written again).
func (nc *nameCounts) publish(prev, sn *snapshot) {
	if !nc.dirty {
		sn.shared, sn.unprintable = prev.shared, prev.unprintable
		return
	}
	nc.dirty = false
	sn.shared, sn.unprintable = nil, nil
	if len(nc.shared) > 0 {
		sn.shared = maps.Clone(nc.shared)
	}
	if len(nc.unprintable) > 0 {
		sn.unprintable = maps.Clone(nc.unprintable)
	}
}

// SharedNames returns the names that entries of more than one client hold
// in the current snapshot, sorted, each with its entries in effect in file
// order (see SharedName). It reads every entry only when there is such a
// name.
func (s *Store) SharedNames() []SharedName {
	s.waitLoaded()
	return s.sharedNames(s.snap.Load())
}

func (s *Store) sharedNames(sn *snapshot) []SharedName {
	if len(sn.shared) == 0 {
		return nil
	}
	type group struct {
		entries []*Entry
		count   nameCount
	}
	groups := map[string]*group{}
	for f, at := range s.authorizedItems(sn.files) {
		name, kind := nameKind(f, int(at.pos))
		if kind == 0 || !sn.keys.holds(at) {
			continue
		}
		if _, ok := sn.shared[maphash.String(s.names.seed, name)]; !ok {
			continue
		}
		g := groups[name]
		if g == nil {
			g = &group{}
			groups[name] = g
		}
		g.entries = append(g.entries, entryOf(f, int(at.pos)))
		g.count.add(kind, 1)
	}
	var out []SharedName
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		if g := groups[name]; g.count.shared() {
			out = append(out, SharedName{Name: name, Entries: g.entries})
		}
	}
	return out
}

// UnprintableName is an entry in effect whose name is not shown as it is
// (keydir.PrintableName): it holds an invisible format character, a bidi
// control, another space than U+0020, or one Unicode does not assign, and
// so may display as another client's name ("ad\u200bmin" as "admin") or
// reversed. Add refuses such a name (keydir.CheckName); a file written by
// hand or by an earlier version may hold one. The key stays authorized,
// as a shared name's do: the name is for people, and refusing the key
// would lock its client out for a name an admin gave (docs/design.md,
// "Names").
type UnprintableName struct {
	Entry *Entry
}

// Error makes such a name one of a store's problems: the name quoted with
// the character escaped, what the character is, and the entry.
func (u UnprintableName) Error() string {
	return fmt.Sprintf("authkeys: the name %q of key %s (%s) holds %s: written as it is, it would pass for another name",
		u.Entry.Name, u.Entry.Fingerprint, termtext.Safe(u.Entry.File), unprintableWhat(u.Entry.Name))
}

// unprintableWhat says which character of name, one that is not shown as
// it is, makes it so.
func unprintableWhat(name string) string {
	r, pos, _ := keydir.FirstUnprintable(name)
	if r == utf8.RuneError {
		return fmt.Sprintf("a byte that is not UTF-8 at character %d", pos)
	}
	return fmt.Sprintf("%U at character %d, %s", r, pos, keydir.CharKind(r))
}

// UnprintableNames returns the entries in effect whose name is not shown
// as it is, in file order (see UnprintableName). It reads every entry's
// name only when the store counts such a name (nameCounts.unprintable),
// and makes an Entry of those alone.
func (s *Store) UnprintableNames() []UnprintableName {
	s.waitLoaded()
	return s.unprintableNames(s.snap.Load(), nil)
}

// unprintableNames is UnprintableNames of sn; only those of the names
// only holds, if it is not nil.
func (s *Store) unprintableNames(sn *snapshot, only map[string]bool) []UnprintableName {
	if len(sn.unprintable) == 0 {
		return nil
	}
	var out []UnprintableName
	for f, at := range s.authorizedItems(sn.files) {
		name, kind := nameKind(f, int(at.pos))
		if kind == 0 || keydir.PrintableName(name) || !sn.keys.holds(at) {
			continue
		}
		if only == nil || only[name] {
			out = append(out, UnprintableName{Entry: entryOf(f, int(at.pos))})
		}
	}
	return out
}

// logUnprintableNames logs the entries whose names, not shown as they are,
// sn holds and prev did not: each such name once, when it appears, as a
// shared name is (logSharedNames). Its key stays authorized.
func (s *Store) logUnprintableNames(prev, sn *snapshot) {
	log := s.opts.Logger
	if log == nil {
		return
	}
	came := map[string]bool{}
	for name := range sn.unprintable {
		if _, was := prev.unprintable[name]; !was {
			came[name] = true
		}
	}
	if len(came) == 0 {
		return
	}
	for _, u := range s.unprintableNames(sn, came) {
		log.Warn("an entry's name is not shown as it is and could pass for another client's: its key is authorized; decide by the key's fingerprint, and give the entry a name of printable characters",
			"name", u.Entry.Name, "fingerprint", u.Entry.Fingerprint, "file", u.Entry.File, "character", unprintableWhat(u.Entry.Name))
	}
}
