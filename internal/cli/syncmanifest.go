package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/trustfile"
)

// The manifest of keytool sync (docs/fleet.md, "sync") says which files
// of the home are sync's, with the SHA-256 of what it wrote. It is kept
// as a base, HOME/.keytool-sync.json, and a journal of the changes made
// since, HOME/.keytool-sync.log, one JSON line per file: mirroring one
// change of a store of 100,000 entries appends a line and syncs it,
// where rewriting the base would write every entry (sync --watch mirrors
// each change as it comes). The journal's first line names its base by
// the base's SHA-256: a journal left from another base — the base
// removed by hand to start afresh, a crash between writing a new base and
// removing the journal — is ignored, never applied to a base it was not
// written against. The journal is folded into a new base once it is a
// quarter of the base's size (64 KiB at least).

// syncLogMagic begins the journal's first line.
const syncLogMagic = "keytool-sync-log 1"

// syncManifest is the manifest as read: the base with the journal applied.
type syncManifest struct {
	Store string            `json:"store"`
	Files map[string]string `json:"files"` // by path relative to the home: SHA-256 of what sync wrote
	// Was holds, for each file sync is rewriting, the SHA-256 of what it
	// wrote before: the new one is recorded before the file is renamed
	// over (claim), and until the next record either content is sync's —
	// a sync killed in between still owns the file, whichever it holds.
	Was map[string]string `json:"was,omitempty"`
	// Revision and Cluster are the state of the store the home was last
	// mirrored to, by any sync of it (one-shot or --watch): the store's
	// revision and the store that said it (StoreListing.Revision and
	// .Identity; 0 and "" when the store does not say). No sync moves the
	// home back from it (syncer.moveForward): kept in --watch's memory
	// only, as before, a one-shot sync from cron beside it mirrored an
	// older list over what --watch had mirrored (TestSyncNeverMovesBackAcrossSyncs).
	Revision int64  `json:"revision,omitempty"`
	Cluster  string `json:"cluster,omitempty"`

	dirty    map[string]bool // files changed (set or dropped) since the last save
	revDirty bool            // Revision or Cluster changed since the last save
	baseSum  string          // SHA-256 of the base as read or written; "" when there is none
	baseSize int
	logSize  int64 // bytes of the journal that apply to the base (0: none)
	staleLog bool  // a journal that does not apply, or lines of it, is there: the next save writes a base
}

// syncLogLine is one line of the journal: the first names the base
// (Base), each other a file and the SHA-256 sync wrote, or "" when the
// file is no longer sync's.
type syncLogLine struct {
	Log    string  `json:"log,omitempty"`
	Base   string  `json:"base,omitempty"`
	File   string  `json:"file,omitempty"`
	SHA256 *string `json:"sha256,omitempty"`
	Was    string  `json:"was,omitempty"` // syncManifest.Was
	// Revision and Cluster, on a line of syncRevisionFile, are the
	// manifest's (syncManifest.Revision).
	Revision int64  `json:"revision,omitempty"`
	Cluster  string `json:"cluster,omitempty"`
}

// syncRevisionFile is the File of the journal's lines that record the
// state of the store the home was mirrored to (syncLogLine.Revision). It
// is no file: a name of sync's own (syncOwnPrefix), which no entry is
// mirrored under, and its line's sha256 is "". A keytool from before the
// revision was recorded reads such a line as the removal of a file it
// never had, where a line of another shape would be one that is not
// sync's, and one followed by sync's own lines makes it refuse the
// manifest (replay).
const syncRevisionFile = StoreAuthorized + ".d/" + syncOwnPrefix + "revision"

// mirroredTo records that the home is being mirrored to state at of the
// store, saved with the next saveManifest (revDirty).
func (m *syncManifest) mirroredTo(at syncAt) {
	if m.Revision != at.rev || m.Cluster != at.cluster {
		m.Revision, m.Cluster, m.revDirty = at.rev, at.cluster, true
	}
}

func (m *syncManifest) set(rel, sum string) {
	if _, was := m.Was[rel]; m.Files[rel] != sum || was {
		m.Files[rel] = sum
		delete(m.Was, rel)
		m.dirty[rel] = true
	}
}

// rewriting records, before sync renames a new file over rel, the
// SHA-256 of what it will hold, sum, keeping was, that of what it holds
// now ("": none), as sync's too.
func (m *syncManifest) rewriting(rel, sum, was string) {
	m.record(rel, sum, was)
	m.dirty[rel] = true
}

// record sets rel's SHA-256 and the one before it that is sync's too
// ("": none), as a line of the journal does.
func (m *syncManifest) record(rel, sum, was string) {
	m.Files[rel] = sum
	delete(m.Was, rel)
	if was != "" {
		if m.Was == nil {
			m.Was = map[string]string{}
		}
		m.Was[rel] = was
	}
}

// owns says whether a file rel holding what has SHA-256 sum is sync's.
func (m *syncManifest) owns(rel, sum string) bool {
	return m.Files[rel] == sum || m.Was[rel] == sum && sum != ""
}

func (m *syncManifest) drop(rel string) {
	if _, ok := m.Files[rel]; ok {
		delete(m.Files, rel)
		delete(m.Was, rel)
		m.dirty[rel] = true
	}
}

func (s *syncer) logPath() string { return filepath.Join(string(s.home), ".keytool-sync.log") }

// manifestStamps are the stamps of the base and the journal (zero: none),
// which tell loadManifest whether another process wrote either since.
func (s *syncer) manifestStamps() [2]trustfile.Stamp {
	var st [2]trustfile.Stamp
	for i, p := range []string{s.manifestPath(), s.logPath()} {
		if fi, err := os.Lstat(p); err == nil {
			st[i] = trustfile.StampOf(fi)
		}
	}
	return st
}

// loadManifest returns the manifest as the last read or save left it if
// neither of its files changed since (sync --watch keeps it between
// changes), else reads it.
func (s *syncer) loadManifest() (*syncManifest, error) {
	if s.manifest != nil && s.manifestStamps() == s.stamps {
		return s.manifest, nil
	}
	s.manifest = nil
	stamps := s.manifestStamps() // before the read: a change after it is seen next time
	m, err := s.readManifest()
	if err != nil {
		return nil, err
	}
	s.manifest, s.stamps = m, stamps
	return m, nil
}

// forgetManifest makes the next loadManifest read the files again (after
// a failure, when the manifest in memory may say more than the files).
func (s *syncer) forgetManifest() { s.manifest = nil }

func (s *syncer) readManifest() (*syncManifest, error) {
	m := &syncManifest{Store: s.store, Files: map[string]string{}, dirty: map[string]bool{}}
	rule := trustfile.Rule{Top: string(s.home)}
	data, _, err := rule.ReadFile(s.manifestPath())
	if errors.Is(err, fs.ErrNotExist) {
		_, lerr := os.Lstat(s.logPath())
		m.staleLog = lerr == nil
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("%s: %w (remove it, and sync writes it again: files it made before are then left in place)", s.manifestPath(), err)
	}
	if m.Store != s.store {
		return nil, fmt.Errorf("%s is synced from %s, not %s: a home is mirrored from one store", s.home, m.Store, s.store)
	}
	if m.Files == nil {
		m.Files = map[string]string{}
	}
	m.baseSum, m.baseSize = contentSum(data), len(data)
	for rel := range m.Files {
		if err := s.checkManifestFile(s.manifestPath(), rel); err != nil {
			return nil, err
		}
	}
	for rel := range m.Was {
		if _, ok := m.Files[rel]; !ok {
			return nil, fmt.Errorf("%s: %q is being rewritten but no file of sync's: the manifest was changed by hand or is corrupt; nothing was written (remove it, and sync writes it again: files it made before are then left in place)", s.manifestPath(), rel)
		}
	}
	journal, _, err := rule.ReadFile(s.logPath())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return m, nil
	case err != nil:
		return nil, err
	}
	return m, s.replay(m, journal)
}

// checkManifestFile refuses a manifest that names a file sync could not
// have written: sync removes and overwrites the files the manifest names,
// so only KIND.d/NAME, never a path out of them (a hand-edited or
// corrupt manifest is refused whole).
func (s *syncer) checkManifestFile(path, rel string) error {
	dir, name, _ := strings.Cut(rel, "/")
	kind, isKind := strings.CutSuffix(dir, ".d")
	if !isKind || !slices.Contains(StoreKinds, kind) || keydir.CheckFileName(name) != nil || keydir.Ignored(name) {
		return fmt.Errorf("%s: %q is no file of sync's (KIND.d/NAME): the manifest was changed by hand or is corrupt; nothing was written (remove %s, and sync writes it again: files it made before are then left in place)", path, rel, s.manifestPath())
	}
	return nil
}

// replay applies the journal to m, if it was written against m's base.
// A last line without its newline is an append a crash cut short: the
// file it would have claimed was never made, and the line is ignored.
//
// So are the complete lines at the journal's end that are not sync's
// (reported): sync makes a file only once the append naming it is synced
// whole, so a crash during the last append, which may leave it garbled
// (blocks of zeros where a power cut lost its data), leaves no file it
// names, and a line something else added names no file of sync's. The
// next save writes the base whole (staleLog), without them: sync --watch
// goes on rather than stop mirroring (revocations included) until the
// journal is removed by hand. A line that is not sync's followed by one
// that is was synced before the later append began: it may name a file
// sync made, which nothing would then remove once its entry goes, so the
// manifest is refused whole, as a bad base is.
func (s *syncer) replay(m *syncManifest, journal []byte) error {
	lines := bytes.SplitAfter(journal, []byte("\n"))
	var head syncLogLine
	if len(lines) == 0 || !bytes.HasSuffix(lines[0], []byte("\n")) || json.Unmarshal(lines[0], &head) != nil || head.Log != syncLogMagic || head.Base != m.baseSum {
		m.staleLog = true
		return nil
	}
	size := int64(len(lines[0]))
	var foreign error // the first line at the end that is not sync's
	for n, line := range lines[1:] {
		if !bytes.HasSuffix(line, []byte("\n")) {
			break
		}
		var l syncLogLine
		err := json.Unmarshal(line, &l)
		switch {
		case err != nil:
		case l.SHA256 == nil:
			err = errors.New("no sha256")
		case s.checkManifestFile("", l.File) != nil:
			err = fmt.Errorf("%q is no file of sync's (KIND.d/NAME)", l.File)
		}
		switch {
		case err != nil && foreign == nil:
			foreign = fmt.Errorf("%s:%d: not a line of sync's journal (%w)", s.logPath(), n+2, err)
			continue
		case err != nil:
			continue
		case foreign != nil:
			return fmt.Errorf("%w, and sync's own lines follow it: the journal was changed by hand or is corrupt; nothing was written (remove it, and sync goes on from %s: the files it named since are then left in place)", foreign, s.manifestPath())
		}
		if l.File == syncRevisionFile {
			m.Revision, m.Cluster = l.Revision, l.Cluster
		} else if *l.SHA256 == "" {
			delete(m.Files, l.File)
			delete(m.Was, l.File)
		} else {
			m.record(l.File, *l.SHA256, l.Was)
		}
		size += int64(len(line))
	}
	if foreign != nil {
		fmt.Fprintf(s.c.stderr, "keytool sync: %v, after every line of sync's: the end of an append a crash cut short (no file it names was made) or a line added by something else; ignored, and the journal folded into %s\n", foreign, s.manifestPath())
		m.staleLog = true
	}
	m.logSize = size
	return nil
}

// saveManifest records what changed in m since it was read or saved: a
// line per file appended to the journal and synced, or, once the journal
// has grown to a quarter of the base (or there is no base, or a journal
// that does not apply), a new base written whole and the journal removed.
func (s *syncer) saveManifest(m *syncManifest) error {
	if len(m.dirty) == 0 && !m.revDirty && !m.staleLog {
		return nil
	}
	var err error
	switch {
	case m.baseSum == "" || m.staleLog || m.logSize > int64(max(64<<10, m.baseSize/4)),
		m != s.manifest || s.manifestStamps() != s.stamps:
		// No journal to append to, or one too long; or another process
		// wrote the base or the journal since this one read them: a line
		// appended now would be to a journal no reader applies (it names
		// the base it was written against). The base written whole is
		// the one safe record (the last writer's, as before the journal).
		err = s.writeBase(m)
	default:
		err = s.appendJournal(m)
	}
	if err != nil {
		s.forgetManifest()
		return err
	}
	clear(m.dirty)
	if m.revDirty {
		// The state --restored (or a view gone back) let through is the
		// home's now, on disk: the next older list is refused again.
		s.restored = false
	}
	m.revDirty = false
	s.stamps = s.manifestStamps()
	return nil
}

// writeBase writes m whole as the base and removes the journal, which the
// new base holds (a crash between the two leaves a journal naming the old
// base: ignored).
func (s *syncer) writeBase(m *syncManifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if err := syncTag.Write(s.manifestPath(), data, 0o600); err != nil {
		return err
	}
	m.baseSum, m.baseSize = contentSum(data), len(data)
	if err := os.Remove(s.logPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	m.logSize, m.staleLog = 0, false
	return nil
}

// appendJournal appends a line per changed file to the journal (made,
// with its first line, if there is none) and syncs it: a file sync is
// about to create is named there before it exists (claim).
func (s *syncer) appendJournal(m *syncManifest) (err error) {
	lines, err := journalOf(m)
	if err != nil {
		return err
	}
	// The journal must be the one read (or none, if none was): else
	// another process wrote or replaced it since, and the base written
	// whole is the one safe record.
	before, lerr := os.Lstat(s.logPath())
	switch {
	case lerr == nil && (m.logSize == 0 || !before.Mode().IsRegular()),
		lerr != nil && (m.logSize != 0 || !errors.Is(lerr, fs.ErrNotExist)):
		return s.writeBase(m)
	}
	f, err := os.OpenFile(s.logPath(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || fi.Size() != m.logSize || lerr == nil && !os.SameFile(before, fi) {
		return s.writeBase(m)
	}
	if _, err := f.Write(lines); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if m.logSize == 0 {
		if err := atomicfile.SyncDir(string(s.home)); err != nil {
			return err
		}
	}
	m.logSize += int64(len(lines))
	return nil
}

// journalOf is what appendJournal appends for m: a line per changed
// file, after the journal's first line if it has none yet.
func journalOf(m *syncManifest) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if m.logSize == 0 {
		if err := enc.Encode(syncLogLine{Log: syncLogMagic, Base: m.baseSum}); err != nil {
			return nil, err
		}
	}
	for _, rel := range slices.Sorted(maps.Keys(m.dirty)) {
		sum := m.Files[rel] // "" once dropped
		if err := enc.Encode(syncLogLine{File: rel, SHA256: &sum, Was: m.Was[rel]}); err != nil {
			return nil, err
		}
	}
	if m.revDirty {
		none := ""
		if err := enc.Encode(syncLogLine{File: syncRevisionFile, SHA256: &none, Revision: m.Revision, Cluster: m.Cluster}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}
