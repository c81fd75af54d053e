package cli

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keytool/keytool/jwk"
)

// A key held by several authorization files takes the rights of the
// first, in file order (name order in authorized_keys.d), that holds it;
// the others are shadowed (authkeys.SharedKey). sync writes one file at a
// time, and a server may read the home between two writes: in name order,
// vanished files first, a change that moves a key from a file that
// restricts it to another left the key's first holder, in between, an
// entry in effect in neither state — the shadowed one, found once the
// first was removed, or the new one of a later file before the new
// first's — and the key admitted from addresses, or under a name, that
// neither state of the store admits (TestSyncKeyInTwoFilesNeverWidens).
//
// authOrder orders the authorization files apply writes and removes so
// that none does (docs/fleet.md, "Order"). For each key, the files whose
// change adds it or changes its entry (A) are written in file order, and
// those that drop it (R) after every A, in reverse file order: at each
// moment the key's first holder is then its entry before or its entry
// after. Proof: while A-files are written, a written A-file holds the key
// and precedes every file not yet changed that holds it, so a first
// holder that is an A-file written is the first in the new state, and one
// that is not has only files of the old state before it; once every A is
// written, an R-file not yet changed that is the first holder has none
// before it in either state (the later R-files go first). A file holding
// the key alike before and after counts for neither.
//
// Two keys may ask opposite orders of two files (crossed); there, the keys
// of the files in question are held revoked (revoked_keys.d/keytool-sync-
// held-…, written before and removed after every authorization file): a
// moment's refusal, never a wider grant.

// syncStep is one step of apply's authorization phase: f written, or its
// file removed (gone).
type syncStep struct {
	f    syncFile
	gone bool
}

// authOrder returns the steps that write writes and remove the files of
// gone in an order in which no key is ever admitted with rights neither
// the state before nor the one after gives it (above), the removals first
// where nothing asks otherwise; and the keys to hold revoked meanwhile
// where no order is.
func (s *syncer) authOrder(m *syncManifest, writes []syncFile, gone []string) (steps []syncStep, hold []*jwk.Key) {
	for _, rel := range gone {
		steps = append(steps, syncStep{f: syncFile{rel: rel}, gone: true})
	}
	for _, f := range writes {
		steps = append(steps, syncStep{f: f})
	}
	before, changes, anyBefore := s.authBefore(m, steps)
	if !anyBefore {
		return steps, nil // nothing is dropped from a file: name order is the order
	}
	per := authRoles(steps, before, changes)
	// Steps are in name order within gone and within writes; a file is in
	// one of them only.
	byName := func(a, b int) int { return strings.Compare(steps[a].f.rel, steps[b].f.rel) }
	edges := make([][]int, len(steps))
	var constrained [][32]byte
	for sum, r := range per {
		if len(r.add)+len(r.drop) < 2 {
			continue
		}
		constrained = append(constrained, sum)
		slices.SortFunc(r.add, byName)
		slices.SortFunc(r.drop, func(a, b int) int { return byName(b, a) })
		chain := slices.Concat(r.add, r.drop)
		for j := 1; j < len(chain); j++ {
			edges[chain[j-1]] = append(edges[chain[j-1]], chain[j])
		}
	}
	if order, ok := topoOrder(edges); ok {
		sorted := make([]syncStep, len(order))
		for j, i := range order {
			sorted[j] = steps[i]
		}
		return sorted, nil
	}
	// Crossed: every key whose steps must be ordered is held revoked.
	slices.SortFunc(constrained, func(a, b [32]byte) int { return strings.Compare(string(a[:]), string(b[:])) })
	for _, sum := range constrained {
		k := per[sum].key.PublicKey()
		k.Attrs = nil
		hold = append(hold, k)
	}
	return steps, hold
}

// authBefore returns what each step's file holds now (authHolds), where
// sync will change it (changes), and whether any holds a key: a file that
// is not sync's (place and unplace leave it) or that already holds what it
// will holds the same before and after.
func (s *syncer) authBefore(m *syncManifest, steps []syncStep) (before []authHeld, changes []bool, anyBefore bool) {
	before, changes = make([]authHeld, len(steps)), make([]bool, len(steps))
	for i, st := range steps {
		path := filepath.Join(string(s.home), st.f.rel)
		if _, was := m.Was[st.f.rel]; !st.gone && !was && m.Files[st.f.rel] == contentSum(st.f.val) {
			// What sync wrote and will write: unchanged, unless removed
			// by hand meanwhile (place writes it again).
			if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
				changes[i] = true
			}
			continue
		}
		cur, _, err := readRegular(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			changes[i] = !st.gone
		case err != nil || !m.owns(st.f.rel, contentSum(cur)):
		default:
			changes[i] = true
			before[i].entries, before[i].keys = authHolds(cur)
			anyBefore = anyBefore || len(before[i].entries) > 0
		}
	}
	return before, changes, anyBefore
}

// authHeld is what an authorization file holds (authHolds).
type authHeld struct {
	entries map[[32]byte]string
	keys    map[[32]byte]*jwk.Key
}

// authRole is a key's steps: those whose file adds it or changes its
// entry, and those whose file drops it.
type authRole struct {
	add, drop []int
	key       *jwk.Key
}

// authRoles returns each key's steps (authRole) among the steps that
// change their file, before holding what each file holds now.
func authRoles(steps []syncStep, before []authHeld, changes []bool) map[[32]byte]*authRole {
	per := map[[32]byte]*authRole{}
	role := func(sum [32]byte, k *jwk.Key) *authRole {
		r := per[sum]
		if r == nil {
			r = &authRole{key: k}
			per[sum] = r
		}
		return r
	}
	for i, st := range steps {
		if !changes[i] {
			continue
		}
		var after authHeld
		if !st.gone {
			after.entries, after.keys = authHolds(st.f.val)
		}
		for sum, entry := range after.entries {
			if before[i].entries[sum] != entry {
				r := role(sum, after.keys[sum])
				r.add = append(r.add, i)
			}
		}
		for sum := range before[i].entries {
			if _, kept := after.entries[sum]; !kept {
				r := role(sum, before[i].keys[sum])
				r.drop = append(r.drop, i)
			}
		}
	}
	return per
}

// authHolds returns the keys an authorization file's bytes hold, read
// entry by entry as the stores read such a file (jwk.ParseSet: an entry
// that does not read is skipped, the others load), each with its
// entries' attributes (its rights: from, expires, name, …) as one string,
// and the keys themselves; none if the file does not read. Whether an
// entry whose key reads but whose members a store cannot take counts as
// held here matters not: the stores refuse its key everywhere while it is
// there (keydir.Problem.Key).
func authHolds(data []byte) (map[[32]byte]string, map[[32]byte]*jwk.Key) {
	entries, err := jwk.ParseSet(data)
	if err != nil {
		return nil, nil // the file is the problem: none of it loads
	}
	holds, byKey := map[[32]byte]string{}, map[[32]byte]*jwk.Key{}
	for _, e := range entries {
		if e.Key == nil {
			continue
		}
		attrs, err := json.Marshal(e.Key.Attrs)
		if err != nil {
			attrs = fmt.Appendf(nil, "%p", e.Key) // unlike any other
		}
		sum := e.Key.SPKIHash()
		holds[sum] += string(attrs) + "\n"
		byKey[sum] = e.Key
	}
	return holds, byKey
}

// topoOrder orders the nodes 0…len(edges)-1 so that each edge's source
// comes before its target, the lowest node first among those free to go;
// false if the edges make a cycle.
func topoOrder(edges [][]int) ([]int, bool) {
	in := make([]int, len(edges))
	for _, to := range edges {
		for _, j := range to {
			in[j]++
		}
	}
	var ready intHeap
	for i, n := range in {
		if n == 0 {
			ready = append(ready, i)
		}
	}
	heap.Init(&ready)
	order := make([]int, 0, len(edges))
	for ready.Len() > 0 {
		i := heap.Pop(&ready).(int)
		order = append(order, i)
		for _, j := range edges[i] {
			if in[j]--; in[j] == 0 {
				heap.Push(&ready, j)
			}
		}
	}
	return order, len(order) == len(edges)
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// holdRevoked writes, before any authorization file is written, a
// revocation file of sync's holding keys (authOrder's crossed keys), and
// returns its name, which apply removes last of all.
func (s *syncer) holdRevoked(m *syncManifest, keys []*jwk.Key) (string, error) {
	val, err := jwk.MarshalPublicSet(keys, jwk.JWK)
	if err != nil {
		return "", err
	}
	h := syncFile{rel: heldCopy(StoreRevoked + ".d/" + syncOwnPrefix + "authorizations"), val: val}
	k, err := s.placeOwn(m, h)
	switch {
	case err != nil:
		return "", err
	case k > 0:
		return "", fmt.Errorf("%s is not sync's: the keys that move between authorization files cannot be held revoked while they move, and nothing of them was written (remove it)", s.shown(h.rel))
	}
	return h.rel, nil
}
