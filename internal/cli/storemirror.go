package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/internal/trustfile"
)

// The mirror of a store (docs/fleet.md, "authorize, revoke, trust-host"):
// an edit with --store runs on a home that holds the store's entries as
// files. Rather than write every entry for every command, the home keeps
// that copy between commands,
//
//	HOME/.store-mirror/<SHA-256 of the store's URL>/   0700
//	  lock       held (flock) by the one command using the mirror
//	  manifest   the store's identity and the revision the files are at,
//	             then the stamp of each .d directory
//	  authorized_keys.d/ revoked_keys.d/ trusted_hosts.d/ .index/
//
// and each command costs what changed, not what is stored:
//
//   - before: the store's changes since the manifest's revision
//     (StoreHistory.ChangesSince: etcd's watch from the revision, or its
//     range read filtered by revision for a small prefix) are written to
//     the files, so that they hold the store's entries at its revision
//     now; the admin index stays valid in between, so the command reads
//     only the files it needs;
//   - during: the .d directories are watched (observer), so that the
//     files the command touched are known without looking at the others;
//   - after: those files are compared with the store's entries at the
//     mirror's revision (StoreHistory.EntriesAt), and their differences
//     written in one transaction that compares each touched entry's
//     revision at the mirror's revision (Apply, as for a temporary copy);
//     the manifest records the revision and the directories' stamps.
//
// The mirror is trusted only if the directories' stamps are the
// manifest's (nothing else created, renamed or removed a file, or changed
// a directory's mode), the store is the same (etcd: its cluster ID), and
// its revision did not go back (a restore); anything in doubt — that, a
// file system that folds case or normalizes names — makes the mirror be
// rebuilt from a listing of the store, as a temporary copy would be. A
// history the store no longer has (etcd: compacted) makes a trusted
// mirror compare every file with a listing of the store (compare). A file
// rewritten in place by something else between commands is not seen
// (docs/fleet.md says why that is acceptable for this private cache), and
// never written to the store: only what the command changed is. A watch
// that fails or overflows during the command makes it compare every file
// with the store's entries at the mirror's revision instead, refusing a
// difference older than the command (observer.madeDuring). A mirror
// another command is using, a store without history, or no home leaves
// the command on a temporary copy.

const (
	mirrorDir   = ".store-mirror"
	mirrorMagic = "keytool-store-mirror 5"
)

// StoreHistory is a Store that keeps its past revisions for a while (etcd
// until it compacts them): the mirror of its entries in the home then
// costs an edit only what changed since the last one.
type StoreHistory interface {
	// ChangesSince returns each entry changed since the mark's revision
	// (put, rewritten or removed: its last state), at the store's
	// revision now; none if the store's identity is not the mark's
	// (another store: the caller lists it instead), or if its revision
	// now is below the mark's (a restore). ErrStoreCompacted if the store
	// no longer knows that revision's changes; ErrStoreRewritten if what
	// it has at that revision is not what the mark says.
	ChangesSince(ctx context.Context, since StoreMark) (StoreDelta, error)
	// EntriesAt sets each of entries' Value and Revision to what they were
	// at revision (Value nil and Revision 0: it did not exist), all at
	// once; ErrStoreCompacted as ChangesSince.
	EntriesAt(ctx context.Context, revision int64, entries []StoreEntry) error
	// ListAt returns every entry of every kind as it was at revision;
	// ErrStoreCompacted as ChangesSince.
	ListAt(ctx context.Context, revision int64) ([]StoreEntry, error)
}

// StoreDelta is what changed in a Store since a revision.
type StoreDelta struct {
	// Revision is the store's revision the changes bring to; Identity
	// which store answered (as StoreListing's).
	Revision int64
	Identity string
	// Put are the entries written since, with their Value (not nil) and
	// Revision; Removed those removed since (no Value). An entry is in
	// one of them at most, as it is at Revision.
	Put, Removed []StoreEntry
	// Count is how many keys the store's range holds at Revision, every
	// key under its prefix, in the layout or not (as etcd counts them).
	Count int64
}

// ErrStoreCompacted means the store no longer has the history asked for.
var ErrStoreCompacted = errors.New("the store's history at that revision is gone (compacted)")

// ErrStoreRewritten means the store's history at a revision is not the
// one a mark recorded: restored from a backup and written past the
// mark's revision again (etcd restored without --bump-revision).
var ErrStoreRewritten = errors.New("the store's history at that revision is not the one read then (restored from a backup?)")

// StoreMark is what the mirror knows of the store's state its files hold,
// for ChangesSince to read what changed since, and to tell a history
// restored from a backup that passed the revision again (its revisions
// reused by other writes) from the one the files hold.
type StoreMark struct {
	Identity string
	Revision int64
	// Top is at least the revision of every entry at Revision (no entry
	// there was written between Top and Revision): one found there is
	// another history's.
	Top int64
	// Witness, if Name is set, is an entry at Revision whose revision is
	// Top and whose value has SHA-256 Sum: the last write the mirror saw
	// (its own, often), which a history restored from before it lacks.
	Witness StoreEntry
	Sum     [32]byte
	// Count is StoreDelta.Count at Revision: a history whose count there
	// differs is another (a restore that lost a removal, which leaves Top
	// and the witness as they were). ChangesSince compares it whenever it
	// counts, which is whenever the store moved past Revision.
	Count int64
}

// saw raises the mark's Top to e's revision, e becoming its witness, if e
// is newer. An entry the manifest cannot name (another kind, a name it
// uses as a placeholder) raises Top and leaves no witness: the one before
// is no longer at Top.
func (k *StoreMark) saw(e StoreEntry) {
	if e.Revision <= k.Top {
		return
	}
	k.Top, k.Witness, k.Sum = e.Revision, StoreEntry{}, [32]byte{}
	if mirrored(e) && e.Name != "-" {
		k.Witness, k.Sum = entryOf(e), sha256.Sum256(e.Value)
	}
}

// removed forgets the witness if it is e (Top stays a bound).
func (k *StoreMark) removed(kind, name string) {
	if k.Witness.Kind == kind && k.Witness.Name == name {
		k.Witness, k.Sum = StoreEntry{}, [32]byte{}
	}
}

// mirror is a store's mirror, locked by this process.
type mirror struct {
	dir       string // the home the command runs on
	lock      *keydir.Lock
	StoreMark          // the store's state the files hold
	exact     bool     // the file system keeps names as given (exactNames)
	maxValue  int      // the store's bound on a value (Store.MaxValue; heldFile)
	stamps    []string // of the .d directories after the command (changes)

	// written are the entry files written unsynced since the mirror was
	// opened (a delta, a rebuild), and dirty the directories something
	// was written or removed in: settle makes them durable before it
	// writes the manifest that vouches for them.
	written []string
	dirty   map[string]bool

	// edits are the entry files the command removed and those it created
	// where it found no file (observe opens it): any other file gone, or
	// an entry the store has that the command wrote as new, is not the
	// command's to write (whole).
	edits *keydir.Edits
}

// makeDurable is atomicfile.Sync; tests record its calls.
var makeDurable = atomicfile.Sync

// openMirror locks the mirror of the store where in the home h, making
// it if need be; nil if there is none to be had: no home, a home that
// breaks the strict-modes rule, or another command using it. The store
// must be a StoreHistory.
func openMirror(h, where string) *mirror {
	if fi, err := os.Stat(h); err != nil || !fi.IsDir() {
		return nil // a --store command does not make a home
	}
	// The mirror is trusted as a private cache only its user writes: what
	// changes in it during a command is written to the store. In a home
	// that another user owns or that group or others may write (0770), any
	// of them could make .store-mirror/HASH first, 0700 and theirs, and
	// swap its files under the command: the command works on a temporary
	// copy instead.
	if (trustfile.Rule{Top: h}).CheckDir(h) != nil {
		return nil
	}
	top := filepath.Join(h, mirrorDir)
	sum := sha256.Sum256([]byte(where))
	dir := filepath.Join(top, hex.EncodeToString(sum[:16]))
	if !makePrivateDir(top) || !makePrivateDir(dir) {
		return nil
	}
	lock, ok := keydir.TryLock(filepath.Join(dir, "lock"))
	if !ok {
		return nil
	}
	return &mirror{dir: dir, lock: lock}
}

// makePrivateDir makes dir, mode 0700, unless it is there already as a
// private directory: anything else in its place (a directory others may
// enter, a link, a file) is removed first, as a cache in doubt is. It
// says whether dir is then a private directory.
func makePrivateDir(dir string) bool {
	if privateDir(dir) {
		return true
	}
	if err := os.RemoveAll(dir); err != nil { // a link itself, not what it points to
		return false
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return false
	}
	return privateDir(dir)
}

// privateDir says whether dir is a directory (not a link to one) that
// this process's user owns and only it may enter: one made by another
// user while the home was open to them stays theirs once the home is
// fixed.
func privateDir(dir string) bool {
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		return false
	}
	uid, ok := trustfile.Owner(fi)
	return !ok || uid == os.Geteuid()
}

func (m *mirror) close() {
	if m.edits != nil {
		m.edits.Close()
	}
	m.lock.Unlock()
}

// errMirrorLost refuses a command whose mirror was removed while it ran
// (its lock file gone or replaced): the files it read may be another
// command's, which made the mirror again and is writing it — the entries
// not written yet would have been read as removed.
var errMirrorLost = errors.New("the store's mirror in the home was removed while the command ran (rm -r HOME/.store-mirror?); nothing was written to the store: run the command again")

// MirrorNotWholeError refuses a command that found an entry file of the
// store's mirror gone which it did not remove, or wrote as a new entry
// (a name it found free) the file of an entry the store has: something
// else is removing the mirror's files — an rm -r of HOME/.store-mirror
// under way that has not reached the lock file yet — and the entries it
// removed would have been written to the store as the command's
// removals, or the command's new entry written over the store's.
type MirrorNotWholeError struct {
	File       string // the entry file
	Kind, Name string // its entry in the store
	// Created: the command created File where it found none, and the
	// store has the entry (else File was gone, not removed by it).
	Created bool
}

func (e *MirrorNotWholeError) Error() string {
	what := "gone from the store's mirror in the home, not removed by this command"
	if e.Created {
		what = "written by this command as a new entry (its name found free in the store's mirror in the home), but the store has that entry, whose file was removed by something else"
	}
	return fmt.Sprintf("%s/%s: %s: %s (rm -r HOME/.store-mirror under way?); nothing was written to the store, and the next command rebuilds the mirror: run the command again", e.Kind, e.Name, e.File, what)
}

func (m *mirror) manifestPath() string { return filepath.Join(m.dir, "manifest") }

// sync brings the mirror's files to the store's entries now: the changes
// since the manifest's revision if the mirror can be trusted and the
// store still has them, else every entry, listed and written anew.
func (m *mirror) sync(ctx context.Context, st Store) error {
	m.maxValue = st.MaxValue()
	if mark, ok := m.trusted(); ok {
		d, err := st.(StoreHistory).ChangesSince(ctx, mark)
		switch {
		case errors.Is(err, ErrStoreCompacted):
			if d, top, err := m.listing(ctx, st); err == nil && d.Identity == mark.Identity && d.Revision >= mark.Revision {
				return m.compare(d, top)
			}
		case errors.Is(err, ErrStoreRewritten):
		case err != nil:
			return err
		case d.Identity == mark.Identity && d.Revision >= mark.Revision:
			m.StoreMark = mark
			if err := m.applyDelta(d); err != nil {
				return err
			}
			m.Identity, m.Revision, m.Count, m.exact = d.Identity, d.Revision, d.Count, true
			return nil
		}
	}
	return m.rebuild(ctx, st)
}

// applied records the mirror's own change, written to the store at
// revision, when nothing else was written in between (revision is the
// mirror's next): the files then hold the store at revision.
func (m *mirror) applied(changes []StoreChange, revision int64) {
	if revision != m.Revision+1 {
		return
	}
	m.Revision = revision
	for _, c := range changes {
		// Apply's changes are conditional (a create only where there was
		// no entry, a removal only of the entry read): the count is exact.
		switch {
		case c.Value == nil:
			m.Count--
		case c.Revision == 0:
			m.Count++
		}
		if c.Value == nil {
			m.removed(c.Kind, c.Name)
		} else {
			m.saw(StoreEntry{Kind: c.Kind, Name: c.Name, Value: c.Value, Revision: revision})
		}
	}
}

// applyDelta writes the store's changes into the files, each entry as
// the stores reading the store take it (heldFile), its other files
// removed (an entry grown over the bound, or back under it, changes its
// file): a file that holds the value already (the previous command's own
// write) is left as it is.
func (m *mirror) applyDelta(d StoreDelta) error {
	h := home.Dir(m.dir)
	for _, e := range d.Put {
		m.saw(e)
	}
	for _, e := range d.Removed {
		m.removed(e.Kind, e.Name)
		if err := m.removeHeld(e, "", false); err != nil {
			return err
		}
	}
	for _, e := range d.Put {
		held, ok := heldFile(h, e, m.maxValue)
		keep := ""
		if ok {
			keep = held.Name
		}
		noteRel, note, noted := noteOf(e, m.maxValue)
		if err := m.removeHeld(e, keep, noted); err != nil {
			return err
		}
		if noted {
			if err := m.place(filepath.Join(m.dir, noteRel), note, 0o600); err != nil {
				return err
			}
		}
		if ok {
			if err := m.place(filepath.Join(kindDir(h, held.Kind), held.Name), held.Value, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// place writes a file of the mirror (an entry's, a note) unless it holds
// data already.
func (m *mirror) place(path string, data []byte, mode os.FileMode) error {
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, data) {
		return nil
	}
	// Written whole or not at all, and unsynced: one fsync each, here,
	// would cost a delta of many entries two each; settle syncs them all
	// before the manifest (a crash before leaves the directory's stamp
	// not the old manifest's: the mirror is rebuilt).
	if err := atomicfile.WriteCache(path, data, mode); err != nil {
		return err
	}
	m.written = append(m.written, path)
	m.changed(filepath.Dir(path))
	return nil
}

// removeHeld removes the files that may hold entry e (syncFilesOf) but
// the one named keep, and its note (noteOf) unless keepNote.
func (m *mirror) removeHeld(e StoreEntry, keep string, keepNote bool) error {
	if !slices.Contains(StoreKinds, e.Kind) {
		return nil
	}
	h := home.Dir(m.dir)
	files := syncFilesOf(e)
	if !keepNote {
		files = append(files, noteRel(e.Kind, e.Name))
	}
	for _, rel := range files {
		// Only a file of the kind's directory: an entry's own name, if
		// it is no file name ("../x"), must not name another.
		name := filepath.Base(rel)
		if name == keep || rel != e.Kind+".d/"+name || keydir.CheckFileName(name) != nil && !strings.HasPrefix(name, unheldPrefix) {
			continue
		}
		err := os.Remove(filepath.Join(string(h), rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		m.changed(kindDir(h, e.Kind))
	}
	return nil
}

// listing lists the store and reads every value, at one revision; top
// is the highest revision of an entry listed, mirrored or not.
func (m *mirror) listing(ctx context.Context, st Store) (d StoreDelta, top int64, err error) {
	l, err := st.ListRevisions(ctx)
	if err != nil {
		return StoreDelta{}, 0, err
	}
	d = StoreDelta{Revision: l.Revision, Identity: l.Identity, Count: l.Count}
	for _, e := range l.Entries {
		top = max(top, e.Revision)
		if slices.Contains(StoreKinds, e.Kind) { // heldFile decides on its value
			d.Put = append(d.Put, e)
		}
	}
	return d, top, st.Values(ctx, l.Revision, d.Put)
}

// listed sets the mark to a listing's: Top the highest revision listed,
// the witness a mirrored entry of that revision, if there is one.
func (m *mirror) listed(d StoreDelta, top int64) {
	m.StoreMark = StoreMark{Identity: d.Identity, Revision: d.Revision, Count: d.Count}
	for _, e := range d.Put {
		if e.Revision == top {
			m.saw(e)
		}
	}
	m.Top = top
}

// compare brings the files of a trusted mirror to every entry of the
// store (d.Put, listed: its changes since the mirror's revision are gone)
// by reading each file: one that differs is rewritten, one not listed
// removed, so that the admin index of a directory nothing changed in
// stays valid.
func (m *mirror) compare(d StoreDelta, top int64) error {
	h := home.Dir(m.dir)
	listed := make(map[string]bool, len(d.Put))
	for _, e := range d.Put {
		if held, ok := heldFile(h, e, m.maxValue); ok {
			listed[filepath.Join(kindDir(h, held.Kind), held.Name)] = true
		}
		if rel, _, ok := noteOf(e, m.maxValue); ok {
			listed[filepath.Join(m.dir, rel)] = true
		}
	}
	for _, kind := range StoreKinds {
		des, err := os.ReadDir(kindDir(h, kind))
		if err != nil {
			return err
		}
		for _, de := range des {
			path := filepath.Join(kindDir(h, kind), de.Name())
			if !listed[path] && (!keydir.Ignored(de.Name()) || strings.HasPrefix(de.Name(), unheldPrefix)) {
				if err := os.RemoveAll(path); err != nil {
					return err
				}
				m.changed(kindDir(h, kind))
			}
		}
	}
	m.listed(d, top)
	if err := m.applyDelta(StoreDelta{Put: d.Put}); err != nil {
		return err
	}
	m.exact = true
	return nil
}

// ownFiles are the names the mirror's directory holds: anything else (a
// home's single trust files, which the command would read) is not its.
var ownFiles = map[string]bool{"lock": true, "manifest": true, ".index": true,
	StoreAuthorized + ".d": true, StoreRevoked + ".d": true, StoreTrusted + ".d": true}

// onlyOwnFiles says whether the mirror's directory holds only ownFiles.
func (m *mirror) onlyOwnFiles() bool {
	des, err := os.ReadDir(m.dir)
	if err != nil {
		return false
	}
	for _, de := range des {
		if !ownFiles[de.Name()] {
			return false
		}
	}
	return true
}

// rebuild empties the mirror (but its lock), lists the store and writes
// every entry.
func (m *mirror) rebuild(ctx context.Context, st Store) error {
	h := home.Dir(m.dir)
	if err := os.Remove(m.manifestPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	des, err := os.ReadDir(m.dir)
	if err != nil {
		return err
	}
	for _, de := range des {
		if de.Name() != "lock" {
			if err := os.RemoveAll(filepath.Join(m.dir, de.Name())); err != nil {
				return err
			}
		}
	}
	d, top, err := m.listing(ctx, st)
	if err != nil {
		return err
	}
	m.listed(d, top)
	read, err := materialize(h, d.Put, true, m.maxValue)
	m.changed(m.dir) // the .d directories made in it
	for _, kind := range StoreKinds {
		m.changed(kindDir(h, kind))
	}
	for path := range read {
		m.written = append(m.written, path)
	}
	for _, e := range d.Put {
		if rel, _, ok := noteOf(e, m.maxValue); ok {
			m.written = append(m.written, filepath.Join(m.dir, rel))
		}
	}
	if err != nil {
		return err
	}
	m.exact = exactNames(h)
	return nil
}

// exactNames says whether each of h's .d directories keeps names as
// given: a file system that folds case or normalizes Unicode would hold
// one file for two entries (materialize refuses them when it writes every
// entry; the changes since written one by one would not see them), so
// there the mirror is not kept.
func exactNames(h home.Dir) bool {
	for _, kind := range StoreKinds {
		probe := filepath.Join(kindDir(h, kind), ".keytool-names-A\u00e9")
		if err := os.WriteFile(probe, nil, 0o600); err != nil {
			return false
		}
		_, lower := os.Lstat(filepath.Join(kindDir(h, kind), ".keytool-names-a\u00e9"))
		_, nfd := os.Lstat(filepath.Join(kindDir(h, kind), ".keytool-names-Ae\u0301"))
		if os.Remove(probe) != nil || !errors.Is(lower, fs.ErrNotExist) || !errors.Is(nfd, fs.ErrNotExist) {
			return false
		}
	}
	return true
}

// dirStamps are the stamps of the mirror's .d directories, in StoreKinds'
// order; ok false if one is not a private directory.
func (m *mirror) dirStamps() (stamps []string, ok bool) {
	h := home.Dir(m.dir)
	for _, kind := range StoreKinds {
		fi, err := os.Lstat(kindDir(h, kind))
		if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
			return nil, false
		}
		stamps = append(stamps, stampOf(fi))
	}
	return stamps, true
}

// trusted reads the manifest and checks the mirror against it: the
// store's identity and revision the files hold, if they can be trusted
// to hold them.
func (m *mirror) trusted() (mark StoreMark, ok bool) {
	mark, stamps, err := readManifest(m.manifestPath())
	if err != nil || !m.onlyOwnFiles() {
		return StoreMark{}, false
	}
	now, ok := m.dirStamps()
	if !ok || !slices.Equal(now, stamps) {
		return StoreMark{}, false
	}
	return mark, true
}

// settle records the mirror as it was after the command (the stamps
// changes took) if its files hold the store's entries at the mirror's
// revision (ok), else removes the manifest, so that the next command
// rebuilds the mirror.
func (m *mirror) settle(ok bool) {
	if ok && m.stamps != nil && m.lock.Held() && m.exact && m.durable() == nil &&
		writeManifest(m.manifestPath(), m.StoreMark, m.stamps) == nil {
		return
	}
	_ = os.Remove(m.manifestPath())
}

// durable syncs what the mirror wrote unsynced (written, dirty): the
// files, then the directories naming them. A manifest made durable first
// (a rename may reach the disk before another file's data: ext4's delayed
// allocation, other file systems' orders) would, after a power loss,
// vouch for an empty file whose directory's stamp is the one recorded.
// The command's own writes are synced already (atomicfile.Write).
func (m *mirror) durable() error {
	if len(m.dirty) == 0 {
		return nil
	}
	dirs := slices.Sorted(maps.Keys(m.dirty)) // the mirror's own first (syncfs names its file system)
	if err := makeDurable(dirs, m.written); err != nil {
		return err
	}
	m.written, m.dirty = nil, nil
	return nil
}

// compactedDuring says what to do when the store compacted the mirror's
// revision while the command ran: nothing was written, and run again the
// command finds the mirror rebuilt (settle drops its manifest).
func compactedDuring(err error) error {
	if errors.Is(err, ErrStoreCompacted) {
		return fmt.Errorf("the store compacted its history while the command ran; nothing was written to it: run the command again (%w)", err)
	}
	return err
}

// changed notes that something was written or removed in dir.
func (m *mirror) changed(dir string) {
	if m.dirty == nil {
		m.dirty = map[string]bool{}
	}
	m.dirty[dir] = true
}

// changes compares the files the command touched (o; every file if o
// cannot say) with the store's entries at the mirror's revision, and
// returns their differences as changes to write.
func (m *mirror) changes(ctx context.Context, st Store, o *observer) ([]StoreChange, error) {
	changes, err := m.readChanges(ctx, st, o)
	// After the files were read: a mirror whose lock file was removed
	// before — by an rm -r, maybe since made again by another command —
	// is no longer this command's to read; one that had lost entry files
	// the command did not remove — an rm -r that has not reached the lock
	// file yet (it removes in each directory's order) — was not whole.
	if err == nil && len(changes) > 0 && !m.lock.Held() {
		return nil, errMirrorLost
	}
	if err == nil {
		err = m.whole(changes)
	}
	if err != nil {
		return nil, err
	}
	return changes, nil
}

// whole says whether changes were read from a whole mirror: each removal
// among them is of a file the command removed (keydir.RemoveFile, as
// every removal of an entry by a command is), and no entry the store had
// at the mirror's revision (c.Revision not 0) was first created by the
// command where it found no file (keydir.CreateFile, as every new entry
// is written). Anything done to the mirror by something else while the
// command runs looks like the command's own, but a removal that is not
// its is refused — every entry of a directory an rm -r emptied would be
// removed from the store, revocations among them — and so is a name the
// rm -r freed before the command looked: written as new, compared at the
// revision of the entry it did not see, it would go over that entry.
// What passes writes each new entry create-only (Apply compares its
// CreateRevision with 0: absent at the mirror's revision, absent still).
func (m *mirror) whole(changes []StoreChange) error {
	h := home.Dir(m.dir)
	for _, c := range changes {
		path := filepath.Join(kindDir(h, c.Kind), c.Name)
		removed := m.edits != nil && m.edits.Removed(path)
		switch {
		case c.Value == nil && !removed:
			return &MirrorNotWholeError{File: path, Kind: c.Kind, Name: c.Name}
		case c.Revision != 0 && m.edits != nil && m.edits.CreatedFirst(path):
			return &MirrorNotWholeError{File: path, Kind: c.Kind, Name: c.Name, Created: true}
		}
	}
	return nil
}

// readChanges is changes, without the check of the lock.
func (m *mirror) readChanges(ctx context.Context, st Store, o *observer) ([]StoreChange, error) {
	hist := st.(StoreHistory)
	h := home.Dir(m.dir)
	// The stamps the manifest will record are taken before the watch's
	// last event is read: a change by anything else before them is among
	// the events (the command's, as far as the mirror can tell, as if
	// made during it); after them, it changes a directory's stamp, and
	// the next command rebuilds the mirror.
	m.stamps, _ = m.dirStamps() // nil if one is not a private directory
	paths, ok := o.finish()
	if !ok {
		entries, err := hist.ListAt(ctx, m.Revision)
		if err != nil {
			return nil, compactedDuring(err)
		}
		read := make(map[string]copied, len(entries))
		hidden := map[string]error{}
		for _, e := range entries {
			if held, ok := heldFile(h, e, m.maxValue); ok { // no stamp: every file is read and compared
				read[filepath.Join(kindDir(h, held.Kind), held.Name)] = copied{entryOf(held), sha256.Sum256(held.Value), ""}
			}
			if err := notHeld(e, m.maxValue); err != nil {
				hidden[e.Kind+"/"+e.Name] = err
			}
		}
		changes, _, err := changesOf(h, read)
		if err != nil {
			return nil, err
		}
		for _, c := range changes {
			if err := hidden[c.Kind+"/"+c.Name]; err != nil && c.Value != nil {
				return nil, err
			}
		}
		return changes, o.madeDuring(h, changes)
	}
	entries := make([]StoreEntry, 0, len(paths))
	for _, p := range paths {
		entries = append(entries, StoreEntry{Kind: o.kinds[filepath.Dir(p)], Name: filepath.Base(p)})
	}
	if len(entries) == 0 {
		return nil, nil
	}
	if err := hist.EntriesAt(ctx, m.Revision, entries); err != nil {
		return nil, compactedDuring(err)
	}
	var changes []StoreChange
	for i, e := range entries {
		data, present, err := readEntryFile(paths[i])
		if err != nil {
			return nil, err
		}
		if existed := e.Revision != 0; present == existed && (!present || bytes.Equal(data, e.Value)) {
			continue // as it was: written again the same, or made and removed
		}
		if present {
			if err := notHeld(e, m.maxValue); err != nil {
				return nil, err
			}
		}
		changes = append(changes, StoreChange{Kind: e.Kind, Name: e.Name, Value: data, Revision: e.Revision})
	}
	slices.SortFunc(changes, func(a, b StoreChange) int { return strings.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name) })
	return changes, nil
}

// HiddenEntryError refuses a command that wrote the file of an entry the
// store has but its copy does not hold as its own file (heldFile: a value
// over the bound of the stores reading the store, which grants nothing
// there): the command did not see it, and would write over it.
type HiddenEntryError struct {
	Kind, Name string
	Why        string // what the entry is (entryFile's note)
	Size       int    // the entry's value's size
	Max        int    // the stores' bound, when Size is over it (0: not the reason)
	// Fix is the command that removes the entry (inStore sets it), so
	// that the new one can be written.
	Fix string
}

func (e *HiddenEntryError) Error() string {
	fix := "fix or remove the entry in the store first"
	if e.Fix != "" {
		fix = "remove it first (" + e.Fix + "), or fix it in the store, then run the command again"
	}
	return fmt.Sprintf("%s/%s: the store has an entry of this name, which the command does not see (%s: the stores reading the store do not take it as it is); it is not written over, and nothing was written: %s", e.Kind, termtext.Safe(e.Name), e.Why, fix)
}

// notHeld is a HiddenEntryError if the store has entry e (its Revision
// not 0) and the copy holds it otherwise than as the file of its name.
func notHeld(e StoreEntry, maxValue int) error {
	if e.Revision == 0 {
		return nil
	}
	f, ok, n := entryFile(e, maxValue)
	if ok && !f.stood {
		return nil
	}
	err := &HiddenEntryError{Kind: e.Kind, Name: e.Name, Why: n.what, Size: len(e.Value)}
	if maxValue > 0 && len(e.Value) > maxValue {
		err.Max = maxValue
	}
	return err
}

// madeDuring refuses changes that were not made while the command ran:
// without the watch's events, every file differing from the store is
// found, and one changed before the command (its ctime older than the
// watch's start, or not known) was rewritten in place by something else
// since the last command, which the directories' stamps do not see (a
// file made or removed would have changed them, and the mirror would
// have been rebuilt). The mirror writes to the store only what the
// command changed.
func (o *observer) madeDuring(h home.Dir, changes []StoreChange) error {
	for _, c := range changes {
		if c.Value == nil {
			continue
		}
		fi, err := os.Lstat(filepath.Join(kindDir(h, c.Kind), c.Name))
		if err != nil {
			return err
		}
		if o.since.IsZero() || trustfile.StampOf(fi).Changed().Before(o.since) {
			return fmt.Errorf("%s/%s: its file in the store's mirror in the home was rewritten by something other than keytool since the last command; nothing was written, and the next command rebuilds the mirror: run the command again", c.Kind, c.Name)
		}
	}
	return nil
}

// readEntryFile reads the file of an entry as changesOf does: absent if
// it is not there or not a regular file.
func readEntryFile(path string) (data []byte, present bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	data, err = os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	if data == nil {
		data = []byte{}
	}
	return data, true, nil
}

// The manifest is text: a first line "keytool-store-mirror 5" (4: a
// mirror without the notes of the entries it does not hold, rebuilt), the
// store's identity, revision and Top, the witness's kind and name and the
// SHA-256 of its value in hex (each "-" without one), and the count of
// keys at the revision, tab-separated; then
// a line per kind of entry (StoreKinds' order): KIND, a tab, the stamp of
// its .d directory in hex.
func writeManifest(path string, mark StoreMark, stamps []string) error {
	kind, name, sum := "-", "-", "-"
	if mark.Witness.Name != "" {
		kind, name, sum = mark.Witness.Kind, mark.Witness.Name, hex.EncodeToString(mark.Sum[:])
	}
	if strings.ContainsAny(mark.Identity+kind+name, "\t\n") {
		return errors.New("manifest: an identity or name with a tab or newline")
	}
	b := fmt.Appendf(nil, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%d\n", mirrorMagic, mark.Identity, mark.Revision, mark.Top, kind, name, sum, mark.Count)
	for i, kind := range StoreKinds {
		b = append(append(b, kind...), '\t')
		b = append(hex.AppendEncode(b, []byte(stamps[i])), '\n')
	}
	// Removed, then renamed into place: only a command holding the
	// mirror's lock reads it, and one finding none rebuilds the mirror;
	// a rename over the old one costs ext4's write-back of the new one's
	// data (1.2 ms of a warm edit, strace -T).
	return atomicfile.WriteLocked(path, b, 0o600)
}

// readManifest reads what writeManifest wrote; any doubt is an error.
func readManifest(path string) (mark StoreMark, stamps []string, err error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return StoreMark{}, nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || fi.Size() > 4096 {
		return StoreMark{}, nil, errors.New("manifest: not a regular file of mode 0600")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return StoreMark{}, nil, err
	}
	return parseManifest(string(data))
}

// parseManifest parses a manifest's text.
func parseManifest(data string) (mark StoreMark, stamps []string, err error) {
	lines := strings.Split(data, "\n")
	if len(lines) != len(StoreKinds)+2 || lines[len(lines)-1] != "" {
		return StoreMark{}, nil, errors.New("manifest: bad length")
	}
	f := strings.Split(lines[0], "\t")
	if len(f) != 8 || f[0] != mirrorMagic {
		return StoreMark{}, nil, errors.New("manifest: bad header")
	}
	mark.Identity = f[1]
	if mark.Revision, err = strconv.ParseInt(f[2], 10, 64); err != nil || mark.Revision < 0 {
		return StoreMark{}, nil, errors.New("manifest: bad revision")
	}
	if mark.Top, err = strconv.ParseInt(f[3], 10, 64); err != nil || mark.Top < 0 || mark.Top > mark.Revision {
		return StoreMark{}, nil, errors.New("manifest: bad top revision")
	}
	if f[4] != "-" || f[5] != "-" || f[6] != "-" {
		sum, err := hex.DecodeString(f[6])
		if err != nil || len(sum) != len(mark.Sum) || !slices.Contains(StoreKinds, f[4]) || f[5] == "" || f[5] == "-" {
			return StoreMark{}, nil, errors.New("manifest: bad witness")
		}
		mark.Witness = StoreEntry{Kind: f[4], Name: f[5], Revision: mark.Top}
		copy(mark.Sum[:], sum)
	}
	if mark.Count, err = strconv.ParseInt(f[7], 10, 64); err != nil || mark.Count < 0 {
		return StoreMark{}, nil, errors.New("manifest: bad count")
	}
	for i, kind := range StoreKinds {
		k, stamp, _ := strings.Cut(lines[1+i], "\t")
		b, err := hex.DecodeString(stamp)
		if k != kind || err != nil || len(b) == 0 {
			return StoreMark{}, nil, errors.New("manifest: bad stamp")
		}
		stamps = append(stamps, string(b))
	}
	return mark, stamps, nil
}
