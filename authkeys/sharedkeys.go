package authkeys

import (
	"fmt"
	"strings"

	"github.com/keytool/keytool/internal/termtext"
)

// A key may be held by several authorized entries: a file written by
// hand, config management or a feed beside the one authorize wrote. Only
// the first, in file order, takes effect (its name, its "from" and
// "expires"); the others are shadowed, seen by no listing of the keys in
// effect — until the first is removed, when the next takes effect with
// its own name and restrictions, wider maybe. Such a key is reported, as
// a shared name is (SharedKeys), so that nobody believes a key held to
// 10.0.0.0/8 when a second file lets it in from anywhere once the first
// goes (found by review).

// SharedKey is a key that more than one authorized entry holds.
type SharedKey struct {
	Fingerprint string
	// Entries are every entry holding the key, in file order: the first
	// is in effect, the others are shadowed by it.
	Entries []*Entry
}

// Error makes a shared key one of a store's problems (SharedKeys).
func (s SharedKey) Error() string {
	if len(s.Entries) < 2 { // not one SharedKeys returns
		return fmt.Sprintf("authkeys: key %s is authorized by %d entries", s.Fingerprint, len(s.Entries))
	}
	// The next few, in order, then a count: a key copied into 4,000
	// files made a message of 4,000 names, on one line.
	shadowed := namedFew(s.Entries[1:], func(e *Entry) string { return fmt.Sprintf("%q (%s)", e.Name, termtext.Safe(e.File)) }, "%d more")
	first := s.Entries[0]
	return fmt.Sprintf("authkeys: key %s is authorized by %d entries, of which only the first takes effect, %q (%s); removing it puts %s in effect, with its own name and restrictions",
		s.Fingerprint, len(s.Entries), first.Name, termtext.Safe(first.File), strings.Join(shadowed, ", then "))
}

// SharedKeys returns the keys that more than one authorized entry holds
// in the current snapshot, in the file order of their first entries. It
// reads every entry only when there is such a key.
func (s *Store) SharedKeys() []SharedKey {
	s.waitLoaded()
	sn := s.snap.Load()
	if len(sn.dups) == 0 {
		return nil
	}
	var order [][32]byte
	groups := map[[32]byte][]*Entry{}
	for f, at := range s.authorizedItems(sn.files) {
		sum := f.Item(int(at.pos)).sum
		if _, dup := sn.dups[sum]; !dup {
			continue
		}
		if groups[sum] == nil {
			order = append(order, sum)
		}
		e := entryOf(f, int(at.pos))
		if g := groups[sum]; sn.keys.holds(at) && len(g) > 0 {
			// The one the index holds is the one in effect: first.
			groups[sum] = append([]*Entry{e}, g...)
			continue
		}
		groups[sum] = append(groups[sum], e)
	}
	var out []SharedKey
	for _, sum := range order {
		// dups may keep a key its copies have left since (a reload
		// that removed one keeps the set): only two or more count.
		if es := groups[sum]; len(es) > 1 {
			out = append(out, SharedKey{Fingerprint: es[0].Fingerprint, Entries: es})
		}
	}
	return out
}
