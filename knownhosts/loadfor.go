package knownhosts

import (
	"strconv"
	"strings"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// Lookups are what an admin command is about to look up in a store: the
// keys it pins, revokes or removes, and the addresses it pins or unpins.
type Lookups struct {
	Keys         [][32]byte        // SPKI hashes
	Fingerprints []jwk.Fingerprint // keys as the user gave them (any form keydir.Loader.Find matches)
	Addrs        []string          // addresses, in any form NormalizeAddr takes
}

// LoadFor is Load for an admin command that looks up only what l lists:
// of each directory it reads only the files the admin index
// (docs/design.md, "The admin index") says pin those keys or addresses
// exactly, every file with a wildcard (or no exact) pattern, and the
// files that were skipped — so that it takes the same time with one host
// or a million. The store decides for those addresses as a full one does;
// Entries lists only what was read. A fingerprint the index cannot find
// reads everything before it says "not found". Remove and RemoveKey first
// prove the index complete from every file's stamp (a stat each; the
// files that changed, even in place, are read and indexed again), so that
// they take every copy. Call finish when done: it records the command's
// changes in the index.
func LoadFor(opts Options, l Lookups) (s *Store, finish func()) {
	s = newStore(opts)
	s.IndexBy(entryTerms)
	return s, s.LoadFor(l.query())
}

// Extend reads, in a store LoadFor made, the files for l too: for a
// command that learns what it needs as it goes (the key a server
// presents). A store loaded in full is left as it is.
func (s *Store) Extend(l Lookups) { s.Loader().Extend(l.query()) }

func (l Lookups) query() keydir.Query {
	q := keydir.Query{Terms: []keydir.Term{wildTerm}}
	for _, k := range l.Keys {
		q.Terms = append(q.Terms, keydir.KeyTerm(k))
	}
	for _, fp := range l.Fingerprints {
		q.Prefixes = append(q.Prefixes, fp.SPKIPrefix())
	}
	for _, a := range l.Addrs {
		norm, err := NormalizeAddr(a)
		if err != nil {
			continue
		}
		p, err := parsePattern(norm)
		if err != nil {
			continue
		}
		k := p.key()
		q.Terms = append(q.Terms, hostTerms(k)...)
		if name, rooted := strings.CutSuffix(k.name, "."); rooted {
			// An index made by an earlier version recorded a rooted
			// name's pins under the name without its dot, when the
			// two were one (docs/design.md, "Rooted and relative
			// names"), and a file it has not seen change keeps its
			// records: read those files too. A relative name's files
			// read besides decide nothing for the rooted one.
			k.name = name
			q.Terms = append(q.Terms, hostTerms(k)...)
		}
	}
	return q
}

// hostTerms are the terms of an exact address k: with its port, and
// without (a pin for every port of the host).
func hostTerms(k hostKey) []keydir.Term {
	withPort := hostTerm(k)
	k.port = 0
	return []keydir.Term{withPort, hostTerm(k)}
}

// wildTerm indexes every entry that a lookup by exact address cannot
// find: one with a wildcard pattern, or without an exact one.
var wildTerm = keydir.StringTerm("wild", "")

func hostTerm(k hostKey) keydir.Term {
	return keydir.StringTerm("host", k.ip.String()+"|"+k.name+"|"+strconv.Itoa(int(k.port)))
}

// entrySPKI is an entry's key, for keydir (which hands its callbacks
// pointers into a file's Items).
func entrySPKI(e **Entry) [32]byte { return (*e).SPKIHash }

// entryTerms is what the admin index maps to an entry's file.
func entryTerms(f *keydir.File[*Entry], i int) []keydir.Term {
	e := f.Items()[i]
	t := []keydir.Term{keydir.KeyTerm(e.SPKIHash)}
	wild := !e.exact
	for _, ps := range [][]pattern{e.pos, e.neg} {
		for _, p := range ps {
			if p.wild {
				wild = true
			} else {
				t = append(t, hostTerm(p.key()))
			}
		}
	}
	if wild {
		t = append(t, wildTerm)
	}
	return t
}
