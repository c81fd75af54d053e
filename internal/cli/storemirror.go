package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
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
//     (StoreHistory.ChangesSince: etcd's range read filtered by revision) are written to
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
	mirrorMagic = "keytool-store-mirror 2"
)

// StoreHistory is a Store that keeps its past revisions for a while (etcd
// until it compacts them): the mirror of its entries in the home then
// costs an edit only what changed since the last one.
type StoreHistory interface {
	// ChangesSince returns each entry changed since revision (put,
	// rewritten or removed: its last state), at the store's revision now;
	// none if the store's identity is not identity (another store: the
	// caller lists it instead). ErrStoreCompacted if the store no longer
	// knows that revision's changes.
	ChangesSince(ctx context.Context, identity string, revision int64) (StoreDelta, error)
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
}

// ErrStoreCompacted means the store no longer has the history asked for.
var ErrStoreCompacted = errors.New("the store's history at that revision is gone (compacted)")

// mirror is a store's mirror, locked by this process.
type mirror struct {
	dir      string // the home the command runs on
	unlock   func()
	identity string   // of the store, as listed
	revision int64    // the store's revision the files hold
	exact    bool     // the file system keeps names as given (exactNames)
	stamps   []string // of the .d directories after the command (changes)

	// written are the entry files written unsynced since the mirror was
	// opened (a delta, a rebuild), and dirty says whether anything in its
	// directories was written or removed: settle makes them durable
	// before it writes the manifest that vouches for them.
	written []string
	dirty   bool
}

// makeDurable is atomicfile.Sync; tests record its calls.
var makeDurable = atomicfile.Sync

// openMirror locks the mirror of the store where in the home h, making
// it if need be; nil if there is none to be had: no home, or another
// command using it. The store must be a StoreHistory.
func openMirror(h, where string) *mirror {
	if fi, err := os.Stat(h); err != nil || !fi.IsDir() {
		return nil // a --store command does not make a home
	}
	top := filepath.Join(h, mirrorDir)
	sum := sha256.Sum256([]byte(where))
	dir := filepath.Join(top, hex.EncodeToString(sum[:16]))
	if !makePrivateDir(top) || !makePrivateDir(dir) {
		return nil
	}
	unlock, ok := keydir.TryLock(filepath.Join(dir, "lock"))
	if !ok {
		return nil
	}
	return &mirror{dir: dir, unlock: unlock}
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
// only its owner may enter.
func privateDir(dir string) bool {
	fi, err := os.Lstat(dir)
	return err == nil && fi.IsDir() && fi.Mode().Perm()&0o077 == 0
}

func (m *mirror) close() { m.unlock() }

func (m *mirror) manifestPath() string { return filepath.Join(m.dir, "manifest") }

// sync brings the mirror's files to the store's entries now: the changes
// since the manifest's revision if the mirror can be trusted and the
// store still has them, else every entry, listed and written anew.
func (m *mirror) sync(ctx context.Context, st Store) error {
	if identity, revision, ok := m.trusted(); ok {
		d, err := st.(StoreHistory).ChangesSince(ctx, identity, revision)
		switch {
		case errors.Is(err, ErrStoreCompacted):
			if d, err := m.listing(ctx, st); err == nil && d.Identity == identity && d.Revision >= revision {
				return m.compare(d)
			}
		case err != nil:
			return err
		case d.Identity == identity && d.Revision >= revision:
			if err := m.applyDelta(d); err != nil {
				return err
			}
			m.identity, m.revision, m.exact = d.Identity, d.Revision, true
			return nil
		}
	}
	return m.rebuild(ctx, st)
}

// applyDelta writes the store's changes into the files: a file that holds
// the value already (the previous command's own write) is left as it is.
func (m *mirror) applyDelta(d StoreDelta) error {
	h := home.Dir(m.dir)
	for _, e := range d.Removed {
		if mirrored(e) {
			if err := os.Remove(filepath.Join(kindDir(h, e.Kind), e.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			m.dirty = true
		}
	}
	for _, e := range d.Put {
		if !mirrored(e) {
			continue
		}
		path := filepath.Join(kindDir(h, e.Kind), e.Name)
		if data, err := os.ReadFile(path); err == nil && bytes.Equal(data, e.Value) {
			continue
		}
		// Written whole or not at all, and unsynced: one fsync each,
		// here, would cost a delta of many entries two each; settle syncs
		// them all before the manifest (a crash before leaves the
		// directory's stamp not the old manifest's: the mirror is rebuilt).
		if err := atomicfile.WriteCache(path, e.Value, 0o644); err != nil {
			return err
		}
		m.written, m.dirty = append(m.written, path), true
	}
	return nil
}

// listing lists the store and reads every value, at one revision.
func (m *mirror) listing(ctx context.Context, st Store) (StoreDelta, error) {
	l, err := st.ListRevisions(ctx)
	if err != nil {
		return StoreDelta{}, err
	}
	d := StoreDelta{Revision: l.Revision, Identity: l.Identity}
	for _, e := range l.Entries {
		if mirrored(e) {
			d.Put = append(d.Put, e)
		}
	}
	return d, st.Values(ctx, l.Revision, d.Put)
}

// compare brings the files of a trusted mirror to every entry of the
// store (d.Put, listed: its changes since the mirror's revision are gone)
// by reading each file: one that differs is rewritten, one not listed
// removed, so that the admin index of a directory nothing changed in
// stays valid.
func (m *mirror) compare(d StoreDelta) error {
	h := home.Dir(m.dir)
	listed := make(map[string]bool, len(d.Put))
	for _, e := range d.Put {
		listed[filepath.Join(kindDir(h, e.Kind), e.Name)] = true
	}
	for _, kind := range StoreKinds {
		des, err := os.ReadDir(kindDir(h, kind))
		if err != nil {
			return err
		}
		for _, de := range des {
			path := filepath.Join(kindDir(h, kind), de.Name())
			if !listed[path] && !keydir.Ignored(de.Name()) {
				if err := os.RemoveAll(path); err != nil {
					return err
				}
				m.dirty = true
			}
		}
	}
	if err := m.applyDelta(d); err != nil {
		return err
	}
	m.identity, m.revision, m.exact = d.Identity, d.Revision, true
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
	d, err := m.listing(ctx, st)
	if err != nil {
		return err
	}
	m.identity, m.revision = d.Identity, d.Revision
	read, err := materialize(h, d.Put, true)
	m.dirty = true
	for path := range read {
		m.written = append(m.written, path)
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
func (m *mirror) trusted() (identity string, revision int64, ok bool) {
	identity, revision, stamps, err := readManifest(m.manifestPath())
	if err != nil || !m.onlyOwnFiles() {
		return "", 0, false
	}
	now, ok := m.dirStamps()
	if !ok || !slices.Equal(now, stamps) {
		return "", 0, false
	}
	return identity, revision, true
}

// settle records the mirror as it was after the command (the stamps
// changes took) if its files hold the store's entries at the mirror's
// revision (ok), else removes the manifest, so that the next command
// rebuilds the mirror.
func (m *mirror) settle(ok bool) {
	if ok && m.stamps != nil && m.exact && m.durable() == nil &&
		writeManifest(m.manifestPath(), m.identity, m.revision, m.stamps) == nil {
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
	if !m.dirty {
		return nil
	}
	dirs := []string{m.dir}
	for _, kind := range StoreKinds {
		dirs = append(dirs, kindDir(home.Dir(m.dir), kind))
	}
	if err := makeDurable(dirs, m.written); err != nil {
		return err
	}
	m.written, m.dirty = nil, false
	return nil
}

// changes compares the files the command touched (o; every file if o
// cannot say) with the store's entries at the mirror's revision, and
// returns their differences as changes to write.
func (m *mirror) changes(ctx context.Context, st Store, o *observer) ([]StoreChange, error) {
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
		entries, err := hist.ListAt(ctx, m.revision)
		if err != nil {
			return nil, err
		}
		read := make(map[string]copied, len(entries))
		for _, e := range entries {
			if mirrored(e) { // no stamp: every file is read and compared
				read[filepath.Join(kindDir(h, e.Kind), e.Name)] = copied{entryOf(e), sha256.Sum256(e.Value), ""}
			}
		}
		changes, _, err := changesOf(h, read)
		if err != nil {
			return nil, err
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
	if err := hist.EntriesAt(ctx, m.revision, entries); err != nil {
		return nil, err
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
		changes = append(changes, StoreChange{Kind: e.Kind, Name: e.Name, Value: data, Revision: e.Revision})
	}
	slices.SortFunc(changes, func(a, b StoreChange) int { return strings.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name) })
	return changes, nil
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

// The manifest is text: a first line "keytool-store-mirror 2", the
// store's identity and revision, tab-separated; then a line per kind of
// entry (StoreKinds' order): KIND, a tab, the stamp of its .d directory
// in hex.
func writeManifest(path, identity string, revision int64, stamps []string) error {
	if strings.ContainsAny(identity, "\t\n") {
		return errors.New("identity with a tab or newline")
	}
	b := fmt.Appendf(nil, "%s\t%s\t%d\n", mirrorMagic, identity, revision)
	for i, kind := range StoreKinds {
		b = append(append(b, kind...), '\t')
		b = append(hex.AppendEncode(b, []byte(stamps[i])), '\n')
	}
	return atomicfile.WriteCache(path, b, 0o600)
}

// readManifest reads what writeManifest wrote; any doubt is an error.
func readManifest(path string) (identity string, revision int64, stamps []string, err error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", 0, nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || fi.Size() > 4096 {
		return "", 0, nil, errors.New("manifest: not a regular file of mode 0600")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", 0, nil, err
	}
	return parseManifest(string(data))
}

// parseManifest parses a manifest's text.
func parseManifest(data string) (identity string, revision int64, stamps []string, err error) {
	lines := strings.Split(data, "\n")
	if len(lines) != len(StoreKinds)+2 || lines[len(lines)-1] != "" {
		return "", 0, nil, errors.New("manifest: bad length")
	}
	f := strings.Split(lines[0], "\t")
	if len(f) != 3 || f[0] != mirrorMagic {
		return "", 0, nil, errors.New("manifest: bad header")
	}
	if revision, err = strconv.ParseInt(f[2], 10, 64); err != nil || revision < 0 {
		return "", 0, nil, errors.New("manifest: bad revision")
	}
	for i, kind := range StoreKinds {
		k, stamp, _ := strings.Cut(lines[1+i], "\t")
		b, err := hex.DecodeString(stamp)
		if k != kind || err != nil || len(b) == 0 {
			return "", 0, nil, errors.New("manifest: bad stamp")
		}
		stamps = append(stamps, string(b))
	}
	return f[1], revision, stamps, nil
}
