package authkeys

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"iter"
	"maps"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// Options say where the keys are: the files and directories of client
// keys and of revoked keys, the home whose strict modes apply, and how to
// watch. They are the same options as knownhosts.Options.
//
// Its fields (documented on the type it names, internal to this module:
// go doc github.com/keytool/keytool/internal/keydir Options):
//
//	Files, Dirs                []string // client keys: single files, directories
//	RevokedFiles, RevokedDirs  []string // refused keys: single files, directories
//	Feeds, RevokedFeeds        []Feed   // entries from elsewhere than files (etcd)
//	Home                       string   // the top of the trust tree, for strict modes
//	NoStrictModes              bool     // only where permissions mean nothing
//	Logger                     *slog.Logger
//	Debounce, Rescan           time.Duration
//	Index                      string   // the admin index's directory
//
// Set Logger: a trust file refused for its permissions or content is
// skipped (Problems lists it), and with no Logger nothing says so — a
// client whose file was skipped is simply not authorized.
type Options = keydir.Options

// Feed is a source of entries other than files (Options.Feeds,
// Options.RevokedFeeds): a consistent view of named key files, and a
// notification when it changes. The etcd module's Source is one.
type Feed = keydir.Feed

// FeedView is one consistent state of a Feed.
type FeedView = keydir.FeedView

// HomeOptions returns the Options for a keytool home directory:
// authorized_keys.{json,jwk,pem} and authorized_keys.d, with
// revoked_keys.{json,pem} and revoked_keys.d.
func HomeOptions(dir string) Options {
	h := home.Dir(dir)
	return keydir.HomeOptions(dir, h.AuthorizedFiles(), h.AuthorizedDir())
}

// Entry is one authorized key, with everything a lookup needs computed
// when the file was loaded.
type Entry struct {
	Name        string         // the "name" attribute, else the file name without extension (.d files), else the comment
	Comment     string         // the "comment" attribute
	File        string         // the file the key was read from
	Fingerprint string         // "SHA256:…" of the key's SPKI
	SPKIHash    [32]byte       // the key's identity
	Expires     time.Time      // zero: never
	From        []netip.Prefix // nil: from anywhere
	// AcceptRotation: the next key this client announces is authorized
	// under the same name and attributes (AcceptRotation, the
	// "accept_rotation" attribute).
	AcceptRotation bool
}

// item is how a store keeps one key: its SPKI hash, and nothing else.
// Its file is the one whose Items hold it; the rest of its Entry, when
// there is a rest (a name the file name does not give, a comment,
// "expires", "from", "accept_rotation"), is kept by that file beside its
// items (itemMore, keydir.File.RareOf). Items are values in one array per
// file (File.Items()) and hold no pointer, so that the garbage collector
// finds one object per file, not one per key, and never reads it: a
// collection costs the same at a million keys as at one. An *Entry is
// made from an item only when one is asked for — once per key for
// handshakes (Store.made) — so that a key no client presents never costs
// an Entry (docs/design.md, "Memory of a loaded store").
type item struct {
	sum [32]byte
}

// itemMore is the part of an Entry that most keys of a directory lack
// (keydir.Config.Rare).
type itemMore struct {
	name, comment string
	expires       time.Time
	from          []netip.Prefix
	nameFromFile  bool // Entry.Name is the file name without extension (name is empty)
	rotation      bool // Entry.AcceptRotation
}

// moreOf is the rare part of it, read from file f: nil when it has none.
func moreOf(f *keydir.File[item], it *item) *itemMore { return rareMore(f.RareOf(it)) }

// rareMore is an item's rare part (keydir.Config.Rare: rare) as it is
// kept, nil or an *itemMore.
func rareMore(rare any) *itemMore {
	m, _ := rare.(*itemMore)
	return m
}

// itemName is the name of it, read from file f, without making the
// Entry. An item with no rare part is named after its file in a
// directory (rare gives it one otherwise), and has no name in a file of
// its own or a revocation source.
func itemName(f *keydir.File[item], it *item) string {
	return nameWith(f.InDir(), f.Name(), moreOf(f, it))
}

// nameWith is itemName for an item whose rare part is m, of the file
// named fileName, in a directory that grants trust or not (inDir). (Its
// file's parts, not the file: the item is read from a File or from a
// keydir.FileRef.)
func nameWith(inDir bool, fileName string, m *itemMore) string {
	switch {
	case m == nil && inDir, m != nil && m.nameFromFile:
		return fileEntryName(fileName)
	case m == nil:
		return ""
	default:
		return m.name
	}
}

// fileEntryName is the name a file of a directory gives its entries: the
// file name without extension.
func fileEntryName(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// entry returns it, read from file f, as a new Entry (callers must not
// modify it: a handshake's Entry is shared, Store.made). (The file, not
// its path: a File makes its path when asked.)
func (it *item) entry(f *keydir.File[item]) *Entry {
	return newEntry(it.sum, moreOf(f, it), f.InDir(), f.Name(), f.Path())
}

// entryOf is the entry at pos of f as a new Entry, as item.entry makes
// it, read without f's File: what walks every file (keydir.FileRef).
func entryOf(f keydir.FileRef[item], pos int) *Entry {
	return newEntry(f.Item(pos).sum, rareMore(f.RareAt(pos)), f.InDir(), f.Name(), f.Path())
}

// newEntry makes the Entry of key sum whose rare part is m, of the file
// at path, named fileName, in a directory that grants trust or not.
func newEntry(sum [32]byte, m *itemMore, inDir bool, fileName, path string) *Entry {
	e := &Entry{Name: nameWith(inDir, fileName, m), File: path, Fingerprint: jwk.FormatFingerprint(sum), SPKIHash: sum}
	if m != nil {
		e.Comment, e.Expires, e.From, e.AcceptRotation = m.comment, m.expires, m.from, m.rotation
	}
	return e
}

// entries returns the Entries of found items.
func entries(found []keydir.Found[item]) []*Entry {
	out := make([]*Entry, len(found))
	for i, f := range found {
		out[i] = f.Item.entry(f.File)
	}
	return out
}

// Problem is a file that was skipped, and why: Line or Member locate the
// fault inside the file when known.
type Problem = keydir.Problem

// Status sums up the store's current snapshot (Store.Status): keys,
// revoked keys, skipped files, a revocation input failing closed.
type Status = keydir.Status

// Change is what a reload changed (OnChange): the keys authorized and
// revoked that came and went, the keys and skipped files now.
type Change = keydir.Change

// snapshot is the immutable state lookups read.
type snapshot struct {
	files   *keydir.Snapshot[item]
	keys    index
	revoked *keydir.Revocations[item] // the one revocation set, shared with knownhosts' rule
	dups    keySet                    // keys held by more than one authorized entry
	shared  map[uint64]string         // the names entries of several clients hold, by hash (nameCounts)
	// unprintable counts the entries in effect holding each name that is
	// not shown as it is (nameCounts.unprintable).
	unprintable map[string]uint32
	skipped     bool // an authorized-keys file (not a revocation one) was skipped
	// hidden counts the authorized-keys problems (not revocation ones)
	// whose key is not known (a file that cannot be read or parsed, a
	// feed whose view is stale), and firstHidden is the first: an unknown
	// key may be in one of them (NotAuthorizedError says so).
	hidden      int
	firstHidden *Problem
	// skippedKeys are the keys of authorized-keys entries that were
	// skipped, where known (Problem.Key), each with its first problem:
	// such a key is refused even where another entry holds it.
	skippedKeys map[[32]byte]*Problem
}

// keySet is a set of SPKI hashes (nil: empty).
type keySet map[[32]byte]struct{}

// Store answers "may this key connect in?" from a snapshot of the key
// files. Its methods are safe for concurrent use; Close, Reload,
// Subscribe and Problems are the lifecycle both stores share.
type Store struct {
	keydir.Lifecycle[item]
	opts Options
	rev  []bool // by source index: a revocation source
	snap atomic.Pointer[snapshot]
	// How often build edited the previous index, and rebuilt it (for
	// tests; written only under the loader's lock).
	updates, rebuilds int
	names             nameCounts // build's, under the loader's lock (the seed is set once, here)
	made              madeEntries
	rotating          sync.Mutex // AcceptRotation's: its count of a name's next keys holds until it adds
	// OpenEarly's: its decisions before the full load (nil once it is
	// published), a channel closed when it is published, and one closed
	// when the loading goroutine ends (both nil: not OpenEarly's).
	early          atomic.Pointer[early]
	loaded, opened chan struct{}
}

func newStore(opts Options) *Store {
	s := &Store{opts: opts, names: nameCounts{seed: maphash.MakeSeed()}}
	s.made.numbered = s.numbered
	s.snap.Store(&snapshot{files: &keydir.Snapshot[item]{}})
	s.Lifecycle = keydir.NewLifecycle(opts, convert, entrySPKI, s.build)
	s.KeepRare(rare)
	for _, src := range s.Loader().Sources() {
		s.rev = append(s.rev, src.Revocation)
	}
	return s
}

// Load reads the key files once. The store does not follow later changes
// (but its own Add and Remove are reflected at once).
func Load(opts Options) *Store {
	s := newStore(opts)
	s.Start(context.Background(), false)
	return s
}

// Open reads the key files and keeps the store current as they change,
// until ctx is cancelled or Close is called: directories are watched
// (fsnotify), bursts of events are debounced, only changed files are
// re-read, and everything is rescanned periodically in case an event was
// lost.
func Open(ctx context.Context, opts Options) *Store {
	s := newStore(opts)
	s.Start(ctx, true)
	return s
}

// Lookups are what an admin command is about to look up in a store: the
// keys it adds, revokes or removes, and the names it adds or removes.
type Lookups struct {
	Keys         [][32]byte        // SPKI hashes
	Fingerprints []jwk.Fingerprint // keys as the user gave them (any form keydir.Loader.Find matches)
	Names        []string          // entry names
}

// LoadFor is Load for an admin command that looks up only what l lists:
// of each directory it reads only the files the admin index
// (docs/design.md, "The admin index") says hold those keys or names, and
// the files that were skipped, so that it takes the same time with one
// key or a million. Add, Remove, Revoke and Unrevoke work as on a full
// store; Entries and Revoked list only what was read. A lookup the index
// cannot answer (a fingerprint in a form it does not keep, a name or key
// it does not hold) reads everything before it says "not found". Remove
// first proves the index complete from every file's stamp (a stat each;
// the files that changed, even in place, are read and indexed again), so
// that it takes every copy. The index never decides: the files it names
// are read and checked as any load reads them. Call finish when done: it records the command's
// changes in the index.
func LoadFor(opts Options, l Lookups) (s *Store, finish func()) {
	s = newStore(opts)
	s.IndexBy(entryTerms)
	var q keydir.Query
	for _, k := range l.Keys {
		q.Terms = append(q.Terms, keydir.KeyTerm(k))
	}
	for _, fp := range l.Fingerprints {
		q.Prefixes = append(q.Prefixes, fp.SPKIPrefix())
	}
	for _, n := range l.Names {
		q.Terms = append(q.Terms, nameTerm(n))
	}
	return s, s.LoadFor(q)
}

// entryTerms is what the admin index maps to an entry's file.
func entryTerms(f *keydir.File[item], i int) []keydir.Term {
	it := &f.Items()[i]
	t := []keydir.Term{keydir.KeyTerm(it.sum)}
	if name := itemName(f, it); name != "" {
		t = append(t, nameTerm(name))
	}
	return t
}

func nameTerm(name string) keydir.Term { return keydir.StringTerm("name", name) }

func convert(_ keydir.SourceRef, _ string, k *jwk.Key) (item, error) {
	return item{sum: k.SPKIHash()}, nil
}

// rare is the rest of k's Entry (keydir.Config.Rare): an *itemMore, or
// nil when there is none — no comment, and no name but the file's in a
// directory, nor any other attribute (itemName).
func rare(src keydir.SourceRef, path string, k *jwk.Key) (any, error) {
	var m itemMore
	m.comment = k.Attrs.Comment()
	if src.Revocation {
		return m.orNil(), nil
	}
	name, err := k.Attrs.String(jwk.AttrName)
	if err != nil {
		return nil, &jwk.ParseError{File: path, Member: jwk.AttrName, Err: err}
	}
	if src.Dir && (name == "" || name == fileEntryName(path)) {
		m.nameFromFile = true
	} else if name == "" {
		m.name = m.comment
	} else {
		m.name = name
	}
	if m.expires, err = k.Attrs.Expires(); err != nil {
		return nil, &jwk.ParseError{File: path, Member: jwk.AttrExpires, Err: err}
	}
	if m.from, err = k.Attrs.From(); err != nil {
		return nil, &jwk.ParseError{File: path, Member: jwk.AttrFrom, Err: err}
	}
	switch raw, ok := k.Attrs[jwk.AttrAcceptRotation]; {
	case !ok || string(raw) == "false":
	case string(raw) == "true":
		m.rotation = true
	default:
		return nil, &jwk.ParseError{File: path, Member: jwk.AttrAcceptRotation, Err: errors.New("must be true or false")}
	}
	return m.orNil(), nil
}

// orNil is m as a rare part: nil when it holds nothing but what an item
// with none means (itemName). The copy is made only when it is kept:
// returning &m would move m to the heap on every call, 96 bytes of
// garbage for each key of a cold load.
func (m itemMore) orNil() any {
	if m.name != "" || m.comment != "" || !m.expires.IsZero() || m.from != nil || m.rotation {
		p := new(itemMore)
		*p = m
		return p
	}
	return nil
}

// build indexes a new loader snapshot; it runs before the loader tells
// subscribers, so they see the new state. A reload usually changes a few
// files out of many: their entries are then removed from and added to a
// copy of the previous index, and only when that cannot be done exactly
// is every key inserted again.
func (s *Store) build(ks *keydir.Snapshot[item]) {
	prev := s.snap.Load()
	sn := &snapshot{files: ks,
		revoked: keydir.NextRevocations(prev.revoked, prev.files, ks, func(src int) bool { return s.rev[src] }, entrySPKI)}
	for i, p := range ks.Problems {
		if p.Revocation {
			continue
		}
		sn.skipped = true
		if p.Key == nil {
			if sn.hidden++; sn.firstHidden == nil {
				sn.firstHidden = &ks.Problems[i]
			}
			continue
		}
		if sn.skippedKeys == nil {
			sn.skippedKeys = map[[32]byte]*Problem{}
		}
		if _, ok := sn.skippedKeys[*p.Key]; !ok {
			sn.skippedKeys[*p.Key] = &ks.Problems[i]
		}
	}
	gone, came, freed, updated := s.update(prev, sn)
	if updated {
		s.names.files(gone, -1)
		s.names.files(came, +1)
		s.updates++
	} else {
		s.rebuild(sn)
		s.rebuilds++
	}
	s.names.publish(prev, sn)
	if !maps.Equal(prev.shared, sn.shared) {
		s.logSharedNames(prev, sn)
	}
	if !maps.Equal(prev.unprintable, sn.unprintable) {
		s.logUnprintableNames(prev, sn)
	}
	s.snap.Store(sn)
	if s.early.Swap(nil) != nil {
		close(s.loaded) // OpenEarly's full load is published: it decides from now on
	}
	// The Entries of the files gone are dropped after sn is published,
	// not before: a handshake still deciding on prev that keeps an Entry
	// after this drop then finds sn published and takes it back
	// (madeEntries.numbered), and one that kept it before is undone here.
	if updated {
		for _, num := range freed {
			s.made.forget(num)
		}
	} else {
		s.made.forgetAll()
	}
}

// numbered reports whether the store's current snapshot numbers a file
// num of generation gen (madeEntries.numbered): the file a number and
// generation name in one of the loader's snapshots, they name in every
// other that numbers it so.
func (s *Store) numbered(num, gen uint32) bool {
	files := s.snap.Load().files
	_, ok := files.RefAt(num) // no File made: a file of one key has none of its own
	return ok && files.GenAt(num) == gen
}

func entrySPKI(it *item) [32]byte { return it.sum }

// rebuild indexes every authorized-keys file of sn.files (the revoked
// keys are sn.revoked). Where several entries hold the same key, the first
// file (in source and name order) wins.
func (s *Store) rebuild(sn *snapshot) {
	n := 0
	for f := range sn.files.Refs {
		if !s.rev[f.Source()] {
			n += f.Len()
		}
	}
	sn.keys, sn.dups = newIndex(sn.files, n), nil
	// The first file holding a key wins, so an entry is in effect unless
	// its insertion found its key: shadowed (few), the others. Asking the
	// index for each entry (has) cost a cold load of 100,000 keys 23 ms
	// of random reads.
	var shadowed map[ref]bool
	dup := func(at ref, sum [32]byte) {
		if sn.dups == nil {
			sn.dups, shadowed = keySet{}, map[ref]bool{}
		}
		sn.dups[sum] = struct{}{}
		shadowed[at] = true
	}
	// The names are counted on another core while the keys are indexed:
	// the two are independent but for the entries an insertion finds
	// shadowed, which are few and after which the names are counted again.
	// On a cold load of 100,000 keys the two were 60 ms on one core while
	// the other waited (docs/benchmarks.md, "Cold start to the first
	// admitted handshake").
	var counting sync.WaitGroup
	counted := n >= parallelCount && runtime.GOMAXPROCS(0) > 1
	if counted {
		// Every entry: the insertions have not said yet which are shadowed.
		counting.Go(func() { s.names.recount(n, s.authorizedItems(sn.files)) })
	}
	for f := range sn.files.Refs {
		if !s.rev[f.Source()] {
			sn.keys.insertFile(f.Num(), f.Len(), dup)
		}
	}
	counting.Wait()
	if !counted || shadowed != nil {
		s.names.recount(n, func(yield func(keydir.FileRef[item], ref) bool) {
			for f, at := range s.authorizedItems(sn.files) {
				if !shadowed[at] && !yield(f, at) {
					return
				}
			}
		})
	}
}

// parallelCount is the number of keys from which a rebuild counts the
// names beside the index's insertions.
const parallelCount = 4096

// authorizedItems yields the entries of the authorized-keys files of
// files (not the revocation sources'), each as its file and where it is
// (its file's number in files and its position in the file's Items: ref),
// in file order: in effect or not (an entry whose key an earlier file
// holds is not: snapshot.keys.holds). It reads the files as FileRefs,
// making no File (keydir.Snapshot.Refs): the rebuild and the name counts
// walk every file at each rebuild.
func (s *Store) authorizedItems(files *keydir.Snapshot[item]) iter.Seq2[keydir.FileRef[item], ref] {
	return func(yield func(keydir.FileRef[item], ref) bool) {
		for f := range files.Refs {
			if s.rev[f.Source()] {
				continue
			}
			for pos := range f.Len() {
				if !yield(f, ref{f.Num(), uint32(pos)}) {
					return
				}
			}
		}
	}
}

// update derives sn's indexes from prev's by applying the files that
// changed between the two loader snapshots, and returns those files: the
// authorized-keys files that went (read from prev) and came (from sn),
// every entry of which was and is in effect, and the numbers the files
// that went had (freed). It
// reports false, leaving the indexes to rebuild, when that would not give
// the same result: a changed entry's key is held by another entry too
// (which one wins depends on the order of all files), a table would grow
// past half full; or when a rebuild is better: so much changed that
// starting afresh is cheaper, or a table has become far larger than its
// keys need (every reload copies it).
func (s *Store) update(prev, sn *snapshot) (gone, came []keydir.FileRef[item], freed []uint32, ok bool) {
	limit := prev.keys.n/4 + 64
	if prev.keys.oversized() {
		return nil, nil, nil, false
	}
	if prev.keys.n == 0 {
		// Every entry of sn came (prev had none; a file unchanged has
		// none either): counted from sn itself, not from the list of the
		// files that came — at a cold load, every file, 24 bytes each
		// made at the very end of the load, where its peak is.
		n := 0
		for range s.authorizedItems(sn.files) {
			if n++; n > limit {
				return nil, nil, nil, false
			}
		}
	}
	// FileRefs, not Files: a file of one key has no File of its own
	// (docs/design.md, "Memory of a loaded store", step 5).
	goneR, cameR := keydir.DiffRefs(prev.files, sn.files)
	goneR, cameR = s.authorizedFiles(goneR), s.authorizedFiles(cameR)
	changed := 0
	for _, f := range goneR {
		changed += f.Len()
	}
	for _, f := range cameR {
		changed += f.Len()
	}
	if changed > limit {
		return nil, nil, nil, false
	}
	sn.keys, sn.dups = prev.keys, prev.dups
	if len(goneR)+len(cameR) == 0 {
		sn.keys.files = sn.files // the same numbers: none went or came
		// prev's pages are published: sn owns none of them, so that a
		// write to its index copies the page first (review, 2026-12-06:
		// the copied bits said otherwise, though nothing wrote).
		sn.keys.ownSlots = make([]uint64, len(sn.keys.ownSlots))
		return nil, nil, nil, true
	}
	// The files gone are removed while the index reads prev's numbers,
	// which are theirs (a number sn gives another file names it only in
	// sn), and those that came inserted once it reads sn's.
	sn.keys = sn.keys.clone()
	for _, f := range goneR {
		for pos := range f.Len() {
			if _, dup := sn.dups[f.Item(pos).sum]; dup {
				return nil, nil, nil, false
			}
		}
		if !sn.keys.removeFile(f.Num(), f.Len()) {
			return nil, nil, nil, false
		}
		freed = append(freed, f.Num())
	}
	sn.keys.files = sn.files
	for _, f := range cameR {
		// A key of dups is always in the index (removing one of its
		// entries rebuilds), so insert refuses it like any present key.
		if !sn.keys.roomFor(f.Len()) || !sn.keys.insertFile(f.Num(), f.Len(), nil) {
			return nil, nil, nil, false
		}
	}
	return goneR, cameR, freed, true
}

// authorizedFiles returns the files of files that are not revocation
// files (filtering in place).
func (s *Store) authorizedFiles(files []keydir.FileRef[item]) []keydir.FileRef[item] {
	out := files[:0]
	for _, f := range files {
		if !s.rev[f.Source()] {
			out = append(out, f)
		}
	}
	return out
}

// Entries returns the authorized keys in effect, in file order: for each
// key, the entry of the first file that holds it.
func (s *Store) Entries() []*Entry {
	s.waitLoaded()
	out := make([]*Entry, 0, s.snap.Load().keys.n)
	for e := range s.All() {
		out = append(out, e)
	}
	return out
}

// Len is the number of entries Entries returns (each key once), counted
// without making them: keytool proxy, which counted its keys for a log
// line with Entries, held 320 MB more at a million keys until the
// runtime gave them back, a minute or more later (docs/benchmarks.md,
// "keytool proxy's own resident set").
func (s *Store) Len() int {
	s.waitLoaded()
	return s.snap.Load().keys.n
}

// All yields the entries Entries returns, one at a time, each made as it
// is yielded: a caller that looks at each key in turn (keytool bundle)
// holds one Entry, where the list of them all was most of its heap — some
// 30 MB at 100,000 keys, twice that in its resident set. (The entries
// are those of the snapshot All began with, whatever reloads meanwhile.)
func (s *Store) All() iter.Seq[*Entry] {
	return func(yield func(*Entry) bool) {
		s.waitLoaded()
		sn := s.snap.Load()
		for f, at := range s.authorizedItems(sn.files) {
			if sn.keys.holds(at) && !yield(entryOf(f, int(at.pos))) {
				return
			}
		}
	}
}

// Revoked returns the revoked keys in file order.
func (s *Store) Revoked() []*Entry {
	s.waitLoaded()
	return entries(s.snap.Load().revoked.Found())
}

// Lookup is Decide as an entry and an error: the entry when the key is
// Authorized, else the decision's error — a *RevokedError,
// *NotAuthorizedError, *ExpiredError or *SourceNotAllowedError.
//
// Lookup takes no lock and, when the key is accepted, allocates nothing
// but the key's Entry the first time one is asked for. The returned Entry
// must not be modified.
func (s *Store) Lookup(sum [32]byte, remote netip.Addr) (*Entry, error) {
	d := s.Decide(sum, remote)
	if d.Verdict != Authorized {
		return nil, d.Err
	}
	return d.Entry, nil
}

// LookupKey is Lookup for a parsed key.
func (s *Store) LookupKey(k *jwk.Key, remote netip.Addr) (*Entry, error) {
	return s.Lookup(k.SPKIHash(), remote)
}

// AddMode says what Add does with a name or key already stored.
type AddMode int

const (
	// AddNew adds the key only if neither the name nor the key is taken.
	AddNew AddMode = iota
	// Replace rewrites the name's entry with the key given.
	Replace
	// AddBeside adds the key under a name that is taken, beside the
	// name's keys, in a file of its own: NAME+KEYID.json (the first 32
	// characters, 160 bits, of the key's ID; earlier versions wrote 8,
	// and their files still count as the client's). A client's next key
	// goes there (AcceptRotation). A name holds at most MaxNextKeys such
	// files, counted under the directory's lock with the write
	// (*NextKeysLimitError).
	AddBeside
)

// Add authorizes k under name: it writes the public key, with its
// attributes (comment, expires, from, …) and "name", to NAME.json in the
// first directory of Options.Dirs, atomically and with mode 0644.
//
// With AddNew, a different key already stored under name is never
// replaced (*NameExistsError), a key already authorized under another name
// is reported (*AlreadyAuthorizedError), and adding the same key under the
// same name again changes nothing. With Replace, the name's file is
// rewritten with k and its attributes whatever it held. Either mode
// refuses a name that an entry of another file holds with another key —
// a "name" member, a member of a JWK Set — (*NameExistsError naming that
// file), since a name must stand for one client (NameHolder).
// Names that could escape the directory or hide the file are refused.
// Two processes adding different names at once both succeed; adding the
// same name at once, exactly one does; adding one key under two names at
// once, one writes it and the other gets *AlreadyAuthorizedError: the
// checks and the write are made under one lock, on the files read again
// under it (docs/design.md, "Concurrent writers"). The directory is made
// first, if missing, even for an Add then refused.
func (s *Store) Add(k *jwk.Key, name string, mode AddMode) (*Entry, error) {
	s.waitLoaded()
	overwrite := mode == Replace
	// A name given is checked for what it shows (keydir.CheckName); a
	// client's next key takes the name its entry has, which a store of
	// an earlier version may hold with an invisible character: its
	// rotation is not refused for it (docs/design.md, "Names").
	check := keydir.CheckName
	if mode == AddBeside {
		check = keydir.CheckFileName
	}
	if err := check(name); err != nil {
		return nil, err
	}
	if len(s.opts.Dirs) == 0 {
		return nil, errors.New("authkeys: no authorized-keys directory configured to add keys to")
	}
	dir := s.opts.Dirs[0]
	path := filepath.Join(dir, name+".json")
	if mode == AddBeside {
		beside := besideName(name, k.SPKIHash())
		if err := check(beside); err != nil {
			return nil, err
		}
		path = filepath.Join(dir, beside+".json")
	}
	// The checks below and the write are one step for every writer of
	// the directory (docs/design.md, "Concurrent writers"): in this
	// process under adding, across processes under the directory's lock
	// (keydir.Loader.LockDir, the one EditFile takes), and the checks are made
	// on what the files hold now, read again under it — in a store
	// LoadFor narrowed, the files another command added since the load
	// too (keydir.Loader.ReloadCurrent), which are in no index until that
	// command ends. Else two Adds of one key under two names both found
	// it unauthorized and both wrote it: one key, two names.
	if err := s.Loader().MakeDir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("authkeys: %w", err)
	}
	adding.Lock()
	defer adding.Unlock()
	unlock, _, err := s.Loader().LockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("authkeys: %w", err)
	}
	defer unlock()
	s.Loader().ReloadCurrent()
	sn := s.snap.Load()
	sum := k.SPKIHash()
	if r, ok := sn.revoked.Lookup(sum); ok {
		return nil, revokedError(r)
	}
	absPath, _ := filepath.Abs(path)
	if f, pos, ok := sn.keys.get(&sum); ok {
		if f.Path() == absPath && !overwrite {
			return entryOf(f, pos), nil
		}
		if !overwrite {
			return nil, &AlreadyAuthorizedError{Entry: entryOf(f, pos), Name: name}
		}
	}
	// The name is the client's identity (handlers, logs, the proxy's
	// X-Keytool-Name): a second key under it, in a file of another name
	// or a member of a set, would let one client pass for the other. Only
	// the client's own next keys (AddBeside) share it.
	if mode != AddBeside {
		if e := s.NameHolder(name, sum, absPath); e != nil {
			return nil, &NameExistsError{Name: name, File: e.File, Fingerprint: e.Fingerprint}
		}
	} else if held := s.nextKeys(name); len(held) >= MaxNextKeys {
		// Counted here, on the files as they are under the lock: a
		// count before it (AcceptRotation's, on its store's last load)
		// let servers sharing the directory each find room (found by
		// review, 2026-12-05: TestAcceptRotationBoundAcrossStores).
		return nil, &NextKeysLimitError{Name: name, Fingerprint: k.Fingerprint(), Held: held}
	}
	pk := k.PublicKey()
	if pk.Attrs == nil {
		pk.Attrs = jwk.Attributes{}
	}
	pk.Attrs.SetString(jwk.AttrName, name)
	data, err := pk.MarshalPublic(jwk.JWK)
	if err != nil {
		return nil, err
	}
	if err := writeEntry(path, name, data, sum, overwrite); err != nil {
		return nil, err
	}
	snap := s.Loader().Reload(path)
	if f, pos, ok := s.snap.Load().keys.get(&sum); ok {
		return entryOf(f, pos), nil
	}
	for _, p := range snap.Problems {
		if p.Path == absPath {
			return nil, fmt.Errorf("authkeys: added %s, but it does not load: %w", path, p)
		}
	}
	return nil, fmt.Errorf("authkeys: added %s, but it does not load", path)
}

// adding serialises this process's Adds (Store.Add): the directory's
// lock serialises them too where flock(2) is had, since each takes it on
// a descriptor of its own, but not where it is not (keydir.Loader.LockDir's held
// false), and one process's Adds must not race even there.
var adding sync.Mutex

// writeEntry writes data, the entry of the key whose SPKI hash is sum
// under name, to path: over what is there (overwrite), or only where
// nothing is (*NameExistsError, unless another process has just written
// the same key there).
func writeEntry(path, name string, data []byte, sum [32]byte, overwrite bool) error {
	if overwrite {
		return keydir.WriteFile(path, data, 0o644)
	}
	err := keydir.CreateFile(path, data, 0o644)
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	other, rerr := jwk.ReadFile(path)
	if rerr == nil && len(other) == 1 && other[0].SPKIHash() == sum {
		return nil // someone else added the same key under the same name
	}
	fp := ""
	if rerr == nil && len(other) > 0 {
		fp = other[0].Fingerprint()
	}
	return &NameExistsError{Name: name, File: path, Fingerprint: fp}
}

// Remove deletes the authorized keys named nameOrFingerprint — an entry
// name, or a fingerprint in any form keydir.Loader.Find matches — and returns
// what it removed. Every copy is removed: a key held by several files is
// taken out of each. A file left without keys is deleted; a file holding
// other keys too is rewritten without the removed ones.
//
// The copies the store holds already (in a store LoadFor narrowed, those
// the admin index names) are removed first, so that a watching server
// refuses the key a few milliseconds into the removal; then the store is
// proved to hold every copy (keydir.Loader.ReloadComplete: in a narrowed
// store, a stat of every file, which finds a copy written into a file in
// place) and the copies that brings in are removed too. (Where the proof
// reads every file instead — keydir.Loader.ProofReadsAll: NFS and the
// like — everything goes after it.) Where rewriting a file fails, the
// removal goes on all the same (the safe side): the other files, and
// the copies the proof finds; what was removed is returned with the
// file's error.
//
// After a successful Remove by fingerprint, Lookup of that key misses; if
// a copy could not be removed (a file changed meanwhile, or one keytool
// cannot rewrite), Remove returns *StillAuthorizedError. Removing a name
// leaves the key's entries under other names, which StillAuthorizedError
// reports too, so that nobody believes a key gone that still gets in.
func (s *Store) Remove(nameOrFingerprint string) ([]*Entry, error) {
	r := s.RemoveAll([]string{nameOrFingerprint})[0]
	return r.Removed, r.Err
}

// Removal is what RemoveAll did for one of its queries: the entries it
// removed, and the error Remove would have returned (nil,
// *NotFoundError, *StillAuthorizedError, or why a copy could not be
// removed).
type Removal struct {
	Removed []*Entry
	Err     error
}

// RemoveAll is Remove of each query in turn, on one proof that the store
// holds every copy (keydir.Loader.ReloadComplete): a stat of every file
// once for all of them, where Remove after Remove pays it each time. The
// copies each query matches in the store as loaded go first, for every
// query (as Remove's), then the proof, then the copies it brought in; the
// entries of a query are those of the store after the queries before it,
// as in Removes one after the other. Each step matches every query on one
// snapshot and rewrites each file once for all of them, then reads the
// files again once. Where one query fails, the next are removed all the
// same. The keys' copies under other names are read once
// every removal is made, for each query's StillAuthorizedError.
func (s *Store) RemoveAll(queries []string) []Removal {
	s.waitLoaded()
	r := &removals{s: s, queries: queries, out: make([]Removal, len(queries)), done: make([]bool, len(queries)), failed: make([]keydir.Unwritten, len(queries)), finder: s.finder(jwk.FingerprintsIn(queries), false)}
	r.removeHeld()
	if !slices.Contains(r.done, false) {
		return r.out // every query failed already: nothing for a proof to find
	}
	if removeBeforeProof != nil {
		removeBeforeProof()
	}
	// A removal must be complete: in a store LoadFor narrowed, the admin
	// index is then proved to name every file as it is now, including
	// one written in place (keydir.Loader.ReloadComplete).
	s.Loader().ReloadComplete()
	// Read before anything more is written: Extend of a narrowed store
	// whose directory changed since its proof reads every file.
	s.Loader().Extend(r.matchProved())
	r.removeProved()
	r.keepFailed()
	sn := s.snap.Load()
	for i := range queries {
		if r.done[i] {
			continue
		}
		for _, e := range r.out[i].Removed {
			if f, pos, ok := sn.keys.get(&e.SPKIHash); ok {
				r.out[i].Err = &StillAuthorizedError{Entry: entryOf(f, pos)}
				break
			}
		}
	}
	for i := range r.failed {
		if err := r.failed[i].Err(); err != nil {
			r.out[i].Err = err
		}
	}
	return r.out
}

// removals is RemoveAll's work: out[i] is what it did for queries[i],
// done[i] that it is over for it (failed, or found nothing), failed[i]
// the files it could not rewrite. One does not end it: its second step
// removes the copies the proof finds all the same (the safe side: else a
// copy written in place elsewhere stayed once the admin had mended the
// file the error named), and then the error of the first file still
// unwritten is its outcome.
type removals struct {
	s       *Store
	queries []string
	out     []Removal
	done    []bool
	failed  []keydir.Unwritten
	// finder finds the keys of the queries that are fingerprints, all
	// of them in one walk of a snapshot (keydir.Finder).
	finder *keydir.Finder[item]
}

// keepFailed keeps, of the files each query could not rewrite, those
// that still hold what it matches on the store the last step left
// (proved complete): the admin may have taken the copy out between the
// steps, or another query's rewrite taken it (set aside for that one, it
// was not tried again). One match for each query that failed.
func (r *removals) keepFailed() {
	snap := r.s.Loader().Snapshot()
	var names map[string][]*Entry
	for i, q := range r.queries {
		if r.failed[i].Err() == nil {
			continue
		}
		if names == nil {
			names = r.s.namedAll(snap, r.queries)
		}
		match, err := r.s.matchRemove(snap, names, q, nil, r.finder)
		if err != nil && !errors.As(err, new(*NotFoundError)) {
			continue // a file the rule now refuses: say what failed
		}
		files := filesOf(match)
		r.failed[i].Keep(func(f string) bool { return slices.Contains(files, f) }, snap.Problems)
	}
}

// removeHeld removes, for each query, the entries the store holds as
// loaded (enforce first, docs/design.md "The admin index"), where the
// proof goes by the files' stamps (keydir.Loader.ProofReadsAll: else a
// write before it would leave the index unusable). A refusal by the rule
// here is left to the proof's reload, which reads that file again.
func (r *removals) removeHeld() {
	for i, q := range r.queries {
		if q == "" {
			// Unnamed entries (keys of a single file) have the empty name:
			// removing "" would remove every one of them.
			r.out[i].Err, r.done[i] = &NotFoundError{Query: q}, true
		}
	}
	if r.s.Loader().ProofReadsAll() {
		return
	}
	match, _, _ := r.matchEach(r.s.Loader().Snapshot())
	r.remove(match)
}

// matchProved matches each query on the store proved complete, reading
// every file once where one finds nothing (a fingerprint in a form the
// index does not keep: "not found" is said only of the whole store), and
// returns the keys of what the queries removed and matched, whose copies
// under other names StillAuthorizedError is about.
func (r *removals) matchProved() keydir.Query {
	s, widened := r.s, false
	snap := s.Loader().Snapshot()
	names := s.namedAll(snap, r.queries)
	var terms keydir.Query
	for i, q := range r.queries {
		for _, e := range r.out[i].Removed {
			terms.Terms = append(terms.Terms, keydir.KeyTerm(e.SPKIHash))
		}
		if r.done[i] {
			continue
		}
		match, err := s.matchRemove(snap, names, q, nil, r.finder)
		if err == nil && len(match) == 0 && len(r.out[i].Removed) == 0 && !widened {
			widened = true
			if s.Loader().Widen() {
				snap = s.Loader().Snapshot()
				names = s.namedAll(snap, r.queries)
				match, err = s.matchRemove(snap, names, q, nil, r.finder)
			}
		}
		r.settle(i, match, err)
		for _, e := range match {
			terms.Terms = append(terms.Terms, keydir.KeyTerm(e.SPKIHash))
		}
	}
	return terms
}

// removeProved removes, for each query, what it matches now: after the
// queries before it, as Removes one after the other. Where a file cannot
// be rewritten, a query whose match counted on its rewrite (it set aside
// copies an earlier query was to take out) is matched and removed again,
// alone, on the store as written: else it would say "not found", or
// nothing, of a key or a name still authorized in that file, where
// Remove after Remove fails it with the file's error (found by review).
// (The first step needs no such care: the second matches every query
// again.)
func (r *removals) removeProved() {
	match, errs, counted := r.matchEach(r.s.Loader().Snapshot())
	for i := range r.queries {
		if !r.done[i] && r.settle(i, match[i], errs[i]) {
			match[i] = nil
		}
	}
	if !r.remove(match) {
		return
	}
	for i, q := range r.queries {
		if !counted[i] || (r.done[i] && !errors.As(r.out[i].Err, new(*NotFoundError))) {
			continue
		}
		r.out[i].Err, r.done[i] = nil, false
		snap := r.s.Loader().Snapshot()
		m, err := r.s.matchRemove(snap, r.s.namedAll(snap, r.queries[i:i+1]), q, nil, r.finder)
		if !r.settle(i, m, err) {
			one := make([][]*Entry, len(r.queries))
			one[i] = m
			r.remove(one)
		}
	}
}

// matchEach matches each query not done on snap, in turn, each without
// the copies the queries before it matched — a file's copies of a key,
// which removeEntries takes out together — so that each matches what it
// would after the removals before it, as Removes one after the other;
// errs[i] is query i's error (matchRemove's), counted[i] whether it set
// copies aside. It reads every name in one pass over snap (namedAll): a
// pass for each query made removing 5,000 names from a store of 20,000
// take 10 s (docs/benchmarks.md, "Many of one thing").
func (r *removals) matchEach(snap *keydir.Snapshot[item]) (match [][]*Entry, errs []error, counted []bool) {
	names := r.s.namedAll(snap, r.queries)
	taken := &takenCopies{set: map[copyOf]bool{}}
	match, errs, counted = make([][]*Entry, len(r.queries)), make([]error, len(r.queries)), make([]bool, len(r.queries))
	for i, q := range r.queries {
		if r.done[i] {
			continue
		}
		taken.seen = false
		if match[i], errs[i] = r.s.matchRemove(snap, names, q, taken, r.finder); errs[i] != nil {
			match[i] = nil
		}
		counted[i] = taken.seen
		taken.add(match[i])
	}
	return match, errs, counted
}

// takenCopies are the copies the queries of a step matched so far (set),
// which the next one's match leaves out; seen is set when it left one
// out.
type takenCopies struct {
	set  map[copyOf]bool
	seen bool
}

// without returns es without the copies t holds (nil t: none).
func (t *takenCopies) without(es []*Entry) []*Entry {
	if t == nil {
		return es
	}
	return slices.DeleteFunc(slices.Clone(es), func(e *Entry) bool {
		taken := t.set[copyOf{e.File, e.SPKIHash}]
		t.seen = t.seen || taken
		return taken
	})
}

// add records es as taken.
func (t *takenCopies) add(es []*Entry) {
	for _, e := range es {
		t.set[copyOf{e.File, e.SPKIHash}] = true
	}
}

// copyOf names a key's copies in one file: what removeEntries takes out
// together.
type copyOf struct {
	file string
	sum  [32]byte
}

// remove takes every query's match out of the files at once (takeOut);
// a file that cannot be rewritten is the error (removals.failed) of the
// queries whose match it holds. It reports whether one could not.
func (r *removals) remove(match [][]*Entry) (someFailed bool) {
	return r.s.takeOut(match, r.out, r.failed)
}

// takeOut removes the entries of every match at once — each file edited
// once for all of them and read again once (removeEntries): 2,000
// members of a JWK Set of 20,000 removed one after the other took 217 s,
// each rewriting the set — adds to out[i] what was removed of match[i],
// and records in failed[i] each file of match[i] it tried, with its
// error. It reports whether a file could not be rewritten.
func (s *Store) takeOut(match [][]*Entry, out []Removal, failed []keydir.Unwritten) (someFailed bool) {
	var all []*Entry
	for _, m := range match {
		all = append(all, m...)
	}
	if len(all) == 0 {
		return false
	}
	fileErrs := s.removeEntries(all)
	s.Loader().Reload(filesOf(all)...) // the rest was read a moment ago
	for i, m := range match {
		for _, e := range m {
			err := fileErrs[e.File]
			if err == nil {
				out[i].Removed = append(out[i].Removed, e)
			}
			failed[i].Tried(e.File, err)
		}
	}
	return len(fileErrs) > 0
}

// settle ends query i where its match failed (a file the rule now
// refuses may hold a copy) or found nothing, nor did the first step; it
// reports whether it did.
func (r *removals) settle(i int, match []*Entry, err error) bool {
	switch {
	case err != nil:
		r.out[i].Err, r.done[i] = err, true
	case len(match) == 0 && len(r.out[i].Removed) == 0:
		r.out[i].Err, r.done[i] = r.s.notFound(r.queries[i]), true
	}
	return r.done[i]
}

// notFound is the error of a removal of q that found nothing: a file
// replaced at every read (keydir.Loader.ReloadComplete's tries) may hold
// it, which is not "no such key", which the admin would take for gone.
func (s *Store) notFound(q string) error {
	for _, p := range s.Loader().Snapshot().Problems {
		if !p.Revocation && p.Replaced() {
			return fmt.Errorf("authkeys: not removing %q: %w", q, p)
		}
	}
	return &NotFoundError{Query: q}
}

// removeBeforeProof, if set, is called by Remove between the removal of
// the copies its load held and the proof that finds the rest: for tests.
var removeBeforeProof func()

// NameHolder returns an authorized entry, in file order, that holds name
// with a key other than sum, in a file other than file (an absolute path;
// "" for none), or nil: the entry that makes name taken for another key.
// In a store LoadFor narrowed, it first reads the files the admin index
// names for name (Loader.Extend), so that it sees every file holding the
// name without reading the rest of the store. Entries whose key is held
// first by another entry count too: removing that one would make them
// take effect.
func (s *Store) NameHolder(name string, sum [32]byte, file string) *Entry {
	s.waitLoaded()
	s.Loader().Extend(keydir.Query{Terms: []keydir.Term{nameTerm(name)}})
	for _, e := range s.named(s.Loader().Snapshot(), name) {
		if e.SPKIHash != sum && e.File != file {
			return e
		}
	}
	return nil
}

// named returns the authorized entries of snap named name, in file order.
func (s *Store) named(snap *keydir.Snapshot[item], name string) []*Entry {
	return s.namedAll(snap, []string{name})[name]
}

// namedAll returns, for each of names but "", the authorized entries of
// snap of that name, in file order: named of them all, in one pass.
func (s *Store) namedAll(snap *keydir.Snapshot[item], names []string) map[string][]*Entry {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = n != ""
	}
	match := map[string][]*Entry{}
	for f, at := range s.authorizedItems(snap) {
		if n, _ := nameKind(f, int(at.pos)); want[n] {
			match[n] = append(match[n], entryOf(f, int(at.pos)))
		}
	}
	return match
}

// matchRemove returns the authorized entries of snap named q (names is
// namedAll of snap), or else those of the key q is the fingerprint of
// (keydir.Loader.Find, through finder — s.finder of the queries, the
// authorized keys: an error if a file it had to read again is refused by
// the rule now); in either, without the copies taken holds (nil: none).
func (s *Store) matchRemove(snap *keydir.Snapshot[item], names map[string][]*Entry, q string, taken *takenCopies, finder *keydir.Finder[item]) ([]*Entry, error) {
	match := taken.without(names[q])
	if len(match) == 0 {
		if fp, err := jwk.ParseFingerprint(q); err == nil {
			found, err := finder.Find(snap, fp)
			return taken.without(entries(found)), err
		}
	}
	return match, nil
}

// finder returns a keydir.Finder of fps among the revoked keys or the
// authorized ones: every entry, in file order and duplicates included,
// whose key one names, and keydir.Loader.Find's refusal of a file it
// read again.
func (s *Store) finder(fps []jwk.Fingerprint, revoked bool) *keydir.Finder[item] {
	return s.Loader().NewFinder(fps, entrySPKI, func(src int) bool { return s.rev[src] == revoked })
}

// FindKeys returns the entries, in file order and duplicates included,
// whose key fp names; revoked chooses the revoked keys instead of the
// authorized ones. A file that the strict-modes rule now refuses, and that
// a fingerprint in a form the entries do not hold (a thumbprint) needed
// read again, is left out (keydir.Loader.Find): the next load trusts
// nothing from it.
func (s *Store) FindKeys(fp jwk.Fingerprint, revoked bool) []*Entry {
	s.waitLoaded()
	finder := s.finder([]jwk.Fingerprint{fp}, revoked)
	found, _ := finder.Find(s.Loader().Snapshot(), fp)
	if len(found) == 0 && s.Loader().Widen() {
		found, _ = finder.Find(s.Loader().Snapshot(), fp)
	}
	return entries(found)
}

// removeEntries takes the entries out of their files (keydir.Loader.EditFiles:
// each file read again under the rule it was loaded with, edited once,
// and a file left without keys removed durably), and returns the error
// of each file it could not edit. One such file does not stop the
// others: the removal goes as far as it can (the safe side).
func (s *Store) removeEntries(match []*Entry) (failed map[string]error) {
	byFile := map[string]map[[32]byte]bool{}
	for _, e := range match {
		if byFile[e.File] == nil {
			byFile[e.File] = map[[32]byte]bool{}
		}
		byFile[e.File][e.SPKIHash] = true
	}
	return s.Loader().EditFiles(filesOf(match), func(file string) func(*jwk.Key) *jwk.Key {
		drop := byFile[file]
		return func(k *jwk.Key) *jwk.Key {
			if drop[k.SPKIHash()] {
				return nil
			}
			return k
		}
	})
}

// filesOf returns the files of the entries, each once, in their order.
func filesOf(es []*Entry) []string {
	var files []string
	seen := map[string]bool{}
	for _, e := range es {
		if !seen[e.File] {
			seen[e.File] = true
			files = append(files, e.File)
		}
	}
	return files
}

// Revoke adds k to the revoked keys: it writes the public key to a file
// named after its key ID in the first of Options.RevokedDirs, atomically,
// and returns the file. A revoked key is refused everywhere — by this
// store, and by knownhosts stores reading the same revocation list —
// whatever else authorizes or pins it. Revoking a key twice changes
// nothing.
func (s *Store) Revoke(k *jwk.Key) (string, error) {
	revs, err := s.RevokeAll([]*jwk.Key{k})
	if err != nil {
		return "", err
	}
	return revs[0].File, revs[0].Err
}

// Revocation is what RevokeAll did for one key: the file that revokes
// it — for a key revoked before, its revocation's — or why it is not
// revoked (File is then ""). A file written whose directory could not
// be synced has both: the key is refused, but a power loss may undo it
// (*atomicfile.UnsyncedError).
type Revocation struct {
	File string
	Err  error
}

// RevokeAll is Revoke of each of keys, with one reload before the writes
// and one after them, where Revoke of each reloaded twice: a file of
// 20,000 keys to revoke took 13 minutes so; the files are written
// together (keydir.CreateFiles), each durable before it is in place, as
// one file written alone is. A key that cannot be revoked does not stop
// the others (the safe side); each says what became of it, in the order
// of keys. The error is for all of them: no revoked-keys directory
// configured.
func (s *Store) RevokeAll(keys []*jwk.Key) ([]Revocation, error) {
	s.waitLoaded()
	if len(s.opts.RevokedDirs) == 0 {
		return nil, errors.New("authkeys: no revoked-keys directory configured to add keys to")
	}
	s.Loader().Reload()
	dir := s.opts.RevokedDirs[0]
	out, wrote := make([]Revocation, len(keys)), make([]bool, len(keys))
	var todo []int // the keys to write, in order
	var paths []string
	var data [][]byte
	revoked := s.snap.Load().revoked
	for i, k := range keys {
		if r, ok := revoked.Lookup(k.SPKIHash()); ok {
			out[i].File = r.File.Path()
			continue
		}
		pk := k.PublicKey()
		d, err := pk.MarshalPublic(jwk.JWK)
		if err != nil {
			out[i].Err = err
			continue
		}
		todo = append(todo, i)
		paths = append(paths, filepath.Join(dir, strings.ReplaceAll(k.KeyID(), ":", "")+".json"))
		data = append(data, d)
	}
	if len(todo) > 0 {
		var errs []error
		if err := s.Loader().MakeDir(dir, 0o755); err != nil {
			err = fmt.Errorf("authkeys: %w", err)
			errs = make([]error, len(todo))
			for n := range errs {
				errs[n] = err
			}
		} else {
			// All at once: their data synced together, then the directory
			// once (a file of 20,000 keys to revoke: 12.6–15.6 s with a
			// synced write of each, 1.5 s so; docs/benchmarks.md).
			errs = keydir.CreateFiles(paths, data, 0o644)
		}
		var written []string
		first := map[string]error{} // a key given twice: its second is its first's
		for n, i := range todo {
			err := errs[n]
			if e, ok := first[paths[n]]; ok && errors.Is(err, fs.ErrExist) {
				err = e
			} else if !ok {
				first[paths[n]] = err
			}
			if err != nil && !errors.Is(err, fs.ErrExist) && !errors.As(err, new(*atomicfile.UnsyncedError)) {
				out[i].Err = err
				continue
			}
			if !errors.Is(err, fs.ErrExist) {
				out[i].Err = err // placed, maybe not for good: said with the file
			}
			out[i].File, wrote[i], written = paths[n], true, append(written, paths[n])
		}
		if len(written) > 0 {
			s.Loader().Reload(written...)
		}
	}
	revoked = s.snap.Load().revoked
	for i := range out {
		if _, ok := revoked.Lookup(keys[i].SPKIHash()); out[i].File == "" || ok {
			continue
		}
		if wrote[i] {
			out[i].Err = fmt.Errorf("authkeys: wrote %s, but it does not load as a revoked key", out[i].File)
		} else { // removed meanwhile (revoke --remove)
			out[i].Err = fmt.Errorf("authkeys: %s no longer revokes the key", out[i].File)
		}
		out[i].File = ""
	}
	return out, nil
}

// Unrevoke removes every copy of the revoked keys that fingerprint names
// (any form keydir.Loader.Find matches) and returns them. If a copy remains, the
// key is still refused and Unrevoke says so (*RevokedError). A copy in a
// file it cannot rewrite fails it with that file's error, after the
// other copies are removed (the key stays refused all the same).
func (s *Store) Unrevoke(fingerprint string) ([]*Entry, error) {
	r := s.UnrevokeAll([]string{fingerprint})[0]
	return r.Removed, r.Err
}

// UnrevokeAll is Unrevoke of each fingerprint in turn, on one load: each
// is matched on one snapshot, without the copies those before it matched
// (as after their removal), and the copies go with one rewrite of each
// file and one reload, where Unrevoke after Unrevoke rewrote a list of
// revoked keys for each (200 keys lifted from a list of 20,000: 44 s).
// Whether a key is still refused is said once every removal is made.
// Where a file cannot be rewritten, a fingerprint whose match counted on
// it (it set aside copies an earlier one was to take out of that file) is
// matched and lifted again, alone, on the store as written: else it said
// "not found" of a revocation still there (found by review).
func (s *Store) UnrevokeAll(fingerprints []string) []Removal {
	s.waitLoaded()
	out := make([]Removal, len(fingerprints))
	all := make([]int, len(fingerprints))
	for i := range all {
		all[i] = i
	}
	for _, i := range s.unrevokeTogether(fingerprints, all, out) {
		out[i] = Removal{Removed: out[i].Removed}
		s.unrevokeTogether(fingerprints, []int{i}, out)
	}
	return out
}

// unrevokeTogether is UnrevokeAll of the fingerprints todo, adding to
// out what each lifted and setting its error; it returns those whose
// match counted on a file that could not be rewritten. Each call finds
// through a Finder of its own (the files a fingerprint needs read again
// are read once for all of its fingerprints).
func (s *Store) unrevokeTogether(fingerprints []string, todo []int, out []Removal) (again []int) {
	match := make([][]*Entry, len(fingerprints))
	counted := make([]bool, len(fingerprints))
	// Unlike Remove, Unrevoke reads only what the admin index names (the
	// whole store when one finds nothing), without proving it complete: a
	// copy it cannot see (written into a file in place) leaves the key
	// refused — the safe side (docs/design.md, "The admin index").
	snap, widened := s.Loader().Reload(), false
	taken, todoFPs := &takenCopies{set: map[copyOf]bool{}}, make([]string, len(todo))
	for n, i := range todo {
		todoFPs[n] = fingerprints[i]
	}
	finder := s.finder(jwk.FingerprintsIn(todoFPs), true)
	for _, i := range todo {
		f := fingerprints[i]
		fp, err := jwk.ParseFingerprint(f)
		if err != nil {
			out[i].Err = err
			continue
		}
		taken.seen = false
		found := func() ([]*Entry, error) {
			m, err := finder.Find(snap, fp)
			return taken.without(entries(m)), err
		}
		m, err := found()
		if err == nil && len(m) == 0 && len(out[i].Removed) == 0 && !widened {
			widened = true
			if s.Loader().Widen() {
				snap = s.Loader().Snapshot()
				m, err = found()
			}
		}
		counted[i] = taken.seen
		switch {
		case err != nil:
			out[i].Err = err
		case len(m) == 0 && len(out[i].Removed) == 0:
			out[i].Err = &NotFoundError{Query: f, Revoked: true}
		default:
			match[i] = m
			taken.add(m)
		}
	}
	failed := make([]keydir.Unwritten, len(fingerprints))
	someFailed := s.takeOut(match, out, failed)
	sn := s.snap.Load()
	for i, m := range match {
		if err := failed[i].Err(); err != nil {
			out[i].Err = err // match[i] is set only where Err is not
			continue
		}
		for _, e := range m {
			if r, ok := sn.revoked.Lookup(e.SPKIHash); ok && out[i].Err == nil {
				out[i].Err = revokedError(r)
			}
		}
	}
	if !someFailed {
		return nil
	}
	for _, i := range todo {
		if counted[i] {
			again = append(again, i)
		}
	}
	return again
}
