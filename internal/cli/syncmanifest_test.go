package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir"
)

// syncKeys returns n public keys as files' bytes.
func syncKeys(t *testing.T, n int) [][]byte {
	t.Helper()
	dir := t.TempDir()
	var keys [][]byte
	for i := range n {
		p := filepath.Join(dir, fmt.Sprint(i))
		writePublicKey(t, p, nil)
		keys = append(keys, readFile(t, p))
	}
	return keys
}

func authorized(name string, val []byte) StoreEntry {
	return StoreEntry{Kind: StoreAuthorized, Name: name, Value: val}
}

// journalLines returns the lines of the home's journal (none if absent).
func journalLines(t *testing.T, s *syncer) []string {
	t.Helper()
	data, err := os.ReadFile(s.logPath())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// TestSyncJournal: a mirror of one change appends a line per file to the
// journal and leaves the base as it is; the next sync (another process:
// a syncer of its own) reads base and journal, so a file named only in
// the journal is sync's (removed with its entry).
func TestSyncJournal(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := testSyncer(t, dir)
	keys := syncKeys(t, 3)
	entries := []StoreEntry{authorized("a.json", keys[0]), authorized("b.json", keys[1])}
	if _, err := s.mirror(entries, syncAt{}); err != nil {
		t.Fatal(err)
	}
	if lines := journalLines(t, s); lines != nil {
		t.Fatalf("the first mirror made a journal: %q (a home with no base gets the base)", lines)
	}
	base := readFile(t, s.manifestPath())

	if _, err := s.mirror(append(entries, authorized("c.json", keys[2])), syncAt{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, s.manifestPath()), base) {
		t.Fatal("one more entry rewrote the base")
	}
	lines := journalLines(t, s)
	if len(lines) != 2 || !strings.Contains(lines[0], syncLogMagic) || !strings.Contains(lines[1], `"file":"authorized_keys.d/c.json"`) {
		t.Fatalf("journal:\n%s\nwant its head and one line for c.json", strings.Join(lines, "\n"))
	}
	if mode := statMode(t, s.logPath()); mode != 0o600 {
		t.Fatalf("journal mode %04o, want 0600", mode)
	}

	again, out, errOut := testSyncer(t, t.TempDir())
	again.home = s.home
	if _, err := again.mirror(entries, syncAt{}); err != nil { // c.json gone from the store
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "removed "+filepath.Join(string(s.home), "authorized_keys.d", "c.json")) || errOut.Len() > 0 {
		t.Fatalf("a file named only in the journal was not taken as sync's:\nstdout: %s\nstderr: %s", out, errOut)
	}
}

func statMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// journaled returns a syncer whose home holds a base naming a.json and a
// journal naming b.json, and the keys of the two; appendJournal adds text
// to that journal.
func journaled(t *testing.T) (*syncer, [][]byte) {
	t.Helper()
	s, _, _ := testSyncer(t, t.TempDir())
	keys := syncKeys(t, 2)
	if _, err := s.mirror([]StoreEntry{authorized("a.json", keys[0])}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.mirror([]StoreEntry{authorized("a.json", keys[0]), authorized("b.json", keys[1])}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	return s, keys
}

func appendJournal(t *testing.T, s *syncer, text string) {
	t.Helper()
	f, err := os.OpenFile(s.logPath(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// TestSyncJournalCutShortOrStale: a last line without its newline (a
// crash during the append: the file it claims was never made) is
// ignored; so is a whole journal written against another base (the base
// removed by hand to start afresh): its files are not sync's then.
func TestSyncJournalCutShortOrStale(t *testing.T) {
	s, keys := journaled(t)
	appendJournal(t, s, `{"file":"authorized_keys.d/torn.json","sha2`)
	m, err := s.readManifest()
	if err != nil {
		t.Fatalf("a journal cut short: %v", err)
	}
	if _, ok := m.Files["authorized_keys.d/b.json"]; !ok {
		t.Fatal("the journal's complete line was not applied")
	}
	if _, ok := m.Files["authorized_keys.d/torn.json"]; ok {
		t.Fatal("a line cut short was applied")
	}

	// The base removed by hand: the journal names it, not the next one.
	if err := os.Remove(s.manifestPath()); err != nil {
		t.Fatal(err)
	}
	m, err = s.readManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 0 {
		t.Fatalf("a journal with no base was applied: %v", m.Files)
	}
	s.forgetManifest()
	if _, err := s.mirror([]StoreEntry{authorized("a.json", keys[0]), authorized("b.json", keys[1])}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.logPath()); !os.IsNotExist(err) {
		t.Fatalf("the stale journal is still there after the next save (%v)", err)
	}
}

// TestSyncJournalCorrupt: a complete line that is not sync's (edited by
// hand, corrupt, a path out of the .d directories) followed by one of
// sync's refuses the manifest whole, naming the journal's line, as a bad
// base does: it was synced before the later append, and may name a file
// sync made. At the journal's end, TestSyncWatchPastAForeignLastLine.
func TestSyncJournalCorrupt(t *testing.T) {
	for _, line := range []string{`not json`, `{"file":"authorized_keys.d/x.json"}`, `{"file":"../victim","sha256":"00"}`} {
		t.Run(line, func(t *testing.T) {
			s, _ := journaled(t)
			appendJournal(t, s, line+"\n"+`{"file":"authorized_keys.d/c.json","sha256":"00"}`+"\n")
			s.forgetManifest()
			_, err := s.mirror(nil, syncAt{})
			if err == nil || !strings.Contains(err.Error(), s.logPath()+":3") {
				t.Fatalf("mirror over a corrupt journal line: %v, want it refused naming %s:3", err, s.logPath())
			}
			if _, err := os.Stat(filepath.Join(string(s.home), "authorized_keys.d", "a.json")); err != nil {
				t.Fatalf("a file removed despite the refused manifest: %v", err)
			}
		})
	}
}

// TestSyncWatchPastAForeignLastLine: lines at the journal's end that are
// not sync's — an append a power cut left garbled (zeros), a line added
// by something else — are ignored and reported: sync --watch goes on
// mirroring (a revocation written, an entry's removal mirrored) where it
// stopped until the journal was removed by hand; the lines of sync's
// before them still count (b.json, named only there, is removed with its
// entry); and the journal is folded into the base, so that the next
// reads neither report nor skip anything.
func TestSyncWatchPastAForeignLastLine(t *testing.T) {
	for _, tail := range []string{
		"not json\n",
		`{"file":"../victim","sha256":"00"}` + "\n",
		`{"file":"authorized_keys.d/x.json"}` + "\n" + "\x00\x00\x00\x00\n" + `{"fi`,
	} {
		t.Run(fmt.Sprintf("%q", tail), func(t *testing.T) {
			s, keys := journaled(t) // a.json in the base, b.json in the journal
			errOut := s.c.stderr.(*bytes.Buffer)
			appendJournal(t, s, tail)
			s.forgetManifest() // a new process: sync --watch restarted after the crash
			f := &fakeFeeds{sets: map[string]*keydir.FeedSet{}}
			for _, kind := range StoreKinds {
				f.sets[kind] = keydir.NewFeedSet()
			}
			f.sets[StoreAuthorized] = f.sets[StoreAuthorized].Put("a.json", keys[0]) // b.json gone
			f.sets[StoreRevoked] = f.sets[StoreRevoked].Put("r.json", keys[0])
			errOut.Reset()
			gens := s.mirrorNow(context.Background(), f, f, slog.New(slog.DiscardHandler), nil)
			if gens == nil {
				t.Fatalf("sync --watch failed over a foreign last line of its journal:\n%s", errOut)
			}
			if !strings.Contains(errOut.String(), s.logPath()+":3: not a line of sync's journal") {
				t.Fatalf("the ignored line was not reported:\n%s", errOut)
			}
			if !bytes.Equal(readFile(t, filepath.Join(string(s.home), "revoked_keys.d", "r.json")), keys[0]) {
				t.Fatal("the revocation was not mirrored")
			}
			if _, err := os.Stat(filepath.Join(string(s.home), "authorized_keys.d", "b.json")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("b.json, sync's by a line before the foreign one, was not removed with its entry (%v)", err)
			}
			if lines := journalLines(t, s); lines != nil {
				t.Fatalf("the journal was not folded into the base: %q", lines)
			}
			again, _, errAgain := testSyncer(t, t.TempDir())
			again.home = s.home
			m, err := again.readManifest()
			if err != nil || errAgain.Len() > 0 || m.Files["authorized_keys.d/a.json"] == "" || m.Files["revoked_keys.d/r.json"] == "" || len(m.Files) != 2 {
				t.Fatalf("read again: %v, %v\n%s", m.Files, err, errAgain)
			}
		})
	}
}

// TestSyncJournalFolded: once the journal has grown past a quarter of the
// base (64 KiB at least), the next save writes the base whole and
// removes it; what it said is kept.
func TestSyncJournalFolded(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := testSyncer(t, dir)
	keys := syncKeys(t, 1)
	var entries []StoreEntry
	for i := 0; ; i++ {
		e := authorized(fmt.Sprintf("k%04d.json", i), keys[0])
		entries = append(entries, e)
		if _, err := s.mirrorChanged([]StoreEntry{e}, nil, syncAt{}); err != nil {
			t.Fatal(err)
		}
		if i > 0 && journalLines(t, s) == nil {
			break // folded
		}
		if i > 2000 {
			t.Fatal("the journal was never folded into the base")
		}
	}
	var m syncManifest
	if err := json.Unmarshal(readFile(t, s.manifestPath()), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != len(entries) {
		t.Fatalf("the folded base names %d files, want %d", len(m.Files), len(entries))
	}
}

// TestSyncMirrorChanged: sync --watch mirrors the entries its view says
// changed, and looks at no other file: an entry deleted, one put, a
// revocation mirrored under sync's name (its file taken) and then
// deleted — each file as a full mirror would leave it, in the same
// tightening order; a file of an unchanged entry changed by hand is not
// even read.
func TestSyncMirrorChanged(t *testing.T) {
	dir := t.TempDir()
	s, out, errOut := testSyncer(t, dir)
	keys := syncKeys(t, 4)
	revoked := StoreEntry{Kind: StoreRevoked, Name: "r.json", Value: keys[3]}
	if err := os.MkdirAll(filepath.Join(string(s.home), "revoked_keys.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	taken := filepath.Join(string(s.home), "revoked_keys.d", "r.json")
	if err := os.WriteFile(taken, []byte("an administrator's own\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.mirror([]StoreEntry{authorized("a.json", keys[0]), authorized("b.json", keys[1]), revoked}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	alt := filepath.Join(string(s.home), revocationAlt(StoreRevoked+".d/r.json"))
	if !bytes.Equal(readFile(t, alt), keys[3]) {
		t.Fatal("the revocation was not mirrored under sync's name")
	}
	b := filepath.Join(string(s.home), "authorized_keys.d", "b.json")
	if err := os.WriteFile(b, keys[2], 0o644); err != nil { // a full mirror would report it
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	kept, err := s.mirrorChanged([]StoreEntry{authorized("c.json", keys[2])}, []StoreEntry{{Kind: StoreAuthorized, Name: "a.json"}, {Kind: StoreRevoked, Name: "r.json"}}, syncAt{})
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"removed " + filepath.Join(string(s.home), "authorized_keys.d", "a.json"),
		"wrote " + filepath.Join(string(s.home), "authorized_keys.d", "c.json"),
		"removed " + alt,
	}, "\n")
	if got := strings.TrimSpace(out.String()); got != want || kept != 0 || errOut.Len() > 0 {
		t.Fatalf("mirrorChanged: kept %d\nstdout:\n%s\nstderr:\n%s\nwant stdout:\n%s", kept, got, errOut, want)
	}
	if got := string(readFile(t, taken)); got != "an administrator's own\n" {
		t.Fatalf("the administrator's file is now %q", got)
	}
	m, err := s.loadManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"authorized_keys.d/a.json", revocationAlt(StoreRevoked + ".d/r.json")} {
		if _, ok := m.Files[rel]; ok {
			t.Errorf("the manifest still names %s", rel)
		}
	}
	if _, ok := m.Files["authorized_keys.d/c.json"]; !ok {
		t.Error("the manifest does not name c.json")
	}
}

// TestChangesSince: what a view says changed since the generation last
// mirrored — each name once, values from the view, deletions — or that it
// cannot tell: no generation yet, a view without a set, history not
// kept that far, a changed entry the view rejected.
func TestChangesSince(t *testing.T) {
	sets := map[string]*keydir.FeedSet{}
	for _, kind := range StoreKinds {
		sets[kind] = keydir.NewFeedSet().Put("keep.json", []byte("k"))
	}
	views := func() map[string]keydir.FeedView {
		v := map[string]keydir.FeedView{}
		for kind, set := range sets {
			v[kind] = keydir.FeedView{Set: set}
		}
		return v
	}
	gens := func() map[string]uint64 {
		g := map[string]uint64{}
		for kind, set := range sets {
			g[kind] = set.Gen()
		}
		return g
	}
	if _, _, ok := changesSince(views(), nil); ok {
		t.Fatal("changes told with nothing mirrored yet")
	}
	was := gens()
	sets[StoreAuthorized] = sets[StoreAuthorized].Put("new.json", []byte("1")).Put("new.json", []byte("2")).Delete("keep.json")
	sets[StoreRevoked] = sets[StoreRevoked].Put("r.json", []byte("r"))
	changed, deleted, ok := changesSince(views(), was)
	if !ok {
		t.Fatal("changes not told")
	}
	got := fmt.Sprint(changed, deleted)
	want := fmt.Sprint([]StoreEntry{authorized("new.json", []byte("2")), {Kind: StoreRevoked, Name: "r.json", Value: []byte("r")}}, []StoreEntry{{Kind: StoreAuthorized, Name: "keep.json"}})
	if got != want {
		t.Fatalf("changes:\n%s\nwant\n%s", got, want)
	}
	if _, _, ok := changesSince(views(), gens()); !ok {
		t.Fatal("no change since the current generations is not \"nothing\"")
	}

	was = gens()
	sets[StoreTrusted] = sets[StoreTrusted].Reject("big.json", fmt.Errorf("over the bound"))
	if _, _, ok := changesSince(views(), was); ok {
		t.Fatal("a rejected entry was told as a change (only a list holds its value)")
	}
	v := views()
	v[StoreTrusted] = keydir.FeedView{Entries: map[string][]byte{}}
	if _, _, ok := changesSince(v, was); ok {
		t.Fatal("a view without a set told changes")
	}
	was = gens()
	for i := range 200 { // past the set's remembered history
		sets[StoreAuthorized] = sets[StoreAuthorized].Put(fmt.Sprint(i), nil)
	}
	if _, _, ok := changesSince(views(), was); ok {
		t.Fatal("changes told since a generation out of the history")
	}
}

// FuzzSyncManifest: any manifest and journal is read without a panic;
// one that is accepted names only KIND.d/NAME files (what sync may
// overwrite and remove), and reads the same once written whole again.
func FuzzSyncManifest(f *testing.F) {
	base := `{"store":"etcd://127.0.0.1:2379/p","files":{"authorized_keys.d/a.json":"00"}}`
	f.Add(base, `{"log":"`+syncLogMagic+`","base":"BASE"}`+"\n"+`{"file":"revoked_keys.d/r.json","sha256":"11"}`+"\n"+`{"file":"authorized_keys.d/a.json","sha256":""}`+"\n")
	f.Add(base, `{"log":"`+syncLogMagic+`","base":"BASE"}`+"\n"+`{"file":"../x","sha256":"11"}`+"\n")
	f.Add(base, `{"log":"`+syncLogMagic+`","base":"BASE"}`+"\n"+`{"file":"authorized_keys.d/a.json","sha256":"11","was":"00"}`+"\n")
	f.Add(`{"store":"etcd://127.0.0.1:2379/p","files":{"authorized_keys.d/a.json":"11"},"was":{"authorized_keys.d/a.json":"00","b":"22"}}`, "")
	f.Add(base, `{"log":"`+syncLogMagic+`","base":"BASE"}`+"\n"+`{"file":"authorized_keys.d/t`)
	f.Add(base, "")
	f.Add("", "garbage\n")
	f.Fuzz(func(t *testing.T, base, journal string) {
		dir := t.TempDir()
		s, _, _ := testSyncer(t, dir)
		// The journal names the base it was written against: let the
		// fuzzer's journals apply to its bases.
		journal = strings.ReplaceAll(journal, "BASE", contentSum([]byte(base)))
		if base != "" {
			if err := os.WriteFile(s.manifestPath(), []byte(base), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if journal != "" {
			if err := os.WriteFile(s.logPath(), []byte(journal), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		m, err := s.readManifest()
		if err != nil {
			return
		}
		for rel := range m.Files {
			if err := s.checkManifestFile("fuzz", rel); err != nil {
				t.Fatalf("accepted a manifest naming %q: %v", rel, err)
			}
		}
		for rel := range m.Was {
			if _, ok := m.Files[rel]; !ok {
				t.Fatalf("accepted a manifest rewriting %q, no file of sync's", rel)
			}
		}
		if m.Store != s.store {
			t.Fatalf("accepted the manifest of %q", m.Store)
		}
		if err := s.writeBase(m); err != nil {
			t.Fatal(err)
		}
		again, err := s.readManifest()
		if err != nil {
			t.Fatalf("the manifest written whole is refused: %v", err)
		}
		if fmt.Sprint(again.Files, again.Was) != fmt.Sprint(m.Files, m.Was) {
			t.Fatalf("written whole and read again: %v %v, want %v %v", again.Files, again.Was, m.Files, m.Was)
		}
	})
}

// TestSyncJournalAfterAnotherSync: sync --watch keeps its manifest between
// changes; when another sync writes the base meanwhile (a one-shot sync
// folding its journal), the watch must not append to a journal that names
// the old base, which every reader ignores: its files would not be sync's
// after a restart, and an authorization would stay once its entry goes.
// (Found by review.)
func TestSyncJournalAfterAnotherSync(t *testing.T) {
	w, _, _ := testSyncer(t, t.TempDir())
	keys := syncKeys(t, 4)
	a := authorized("a.json", keys[0])
	if _, err := w.mirror([]StoreEntry{a}, syncAt{}); err != nil { // a base, no journal
		t.Fatal(err)
	}
	// (Two syncs of one home take turns through a lock, prepare's; this
	// is the race the lock prevents, as it happens where flock(2) does
	// not work: another sync writes the base regardless.)
	m, unlock, err := w.prepare() // the watch's next mirror has loaded the manifest…
	if err != nil {
		t.Fatal(err)
	}
	o, _, _ := testSyncer(t, t.TempDir()) // …when another sync writes a base
	o.home = w.home
	om, err := o.readManifest()
	if err != nil {
		t.Fatal(err)
	}
	om.set("trusted_hosts.d/o.json", contentSum(keys[3]))
	if err := o.writeBase(om); err != nil {
		t.Fatal(err)
	}
	tighten, loosen, _ := w.filesOf([]StoreEntry{authorized("b.json", keys[1])})
	if _, err := w.apply(m, tighten, loosen, wanted(tighten, loosen), nil); err != nil {
		t.Fatal(err)
	}
	unlock()
	if _, err := w.mirrorChanged([]StoreEntry{authorized("c.json", keys[2])}, nil, syncAt{}); err != nil {
		t.Fatal(err)
	}
	fresh, _, _ := testSyncer(t, t.TempDir())
	fresh.home = w.home
	if _, err := fresh.mirror([]StoreEntry{a}, syncAt{}); err != nil { // a restart: b and c gone from the store
		t.Fatal(err)
	}
	for _, rel := range []string{"authorized_keys.d/b.json", "authorized_keys.d/c.json"} {
		if _, err := os.Stat(filepath.Join(string(w.home), rel)); err == nil {
			t.Errorf("%s, written by the watch, is still there after its entry went: the manifest on disk does not name it", rel)
		}
	}
}

// TestSyncOwnNamesReserved: the names sync gives the revocations it
// writes in another entry's place (keytool-sync-…) are no entry's: a
// revocation entry named like another's stand-in is itself mirrored as a
// stand-in of its own, and putting or deleting it never touches the
// other's. (Found by review.)
func TestSyncOwnNamesReserved(t *testing.T) {
	for _, incremental := range []bool{false, true} {
		s, _, errOut := testSyncer(t, t.TempDir())
		keys := syncKeys(t, 1)
		bad := StoreEntry{Kind: StoreRevoked, Name: "sub/y", Value: keys[0]} // no file name: a stand-in
		stand := unmirrorableRevocation("sub/y", "has a name that is no file name")
		_, name := filepath.Split(stand.rel)
		other := StoreEntry{Kind: StoreRevoked, Name: name, Value: keys[0]}
		if incremental {
			if _, err := s.mirror([]StoreEntry{bad}, syncAt{}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.mirrorChanged([]StoreEntry{other}, nil, syncAt{}); err != nil {
				t.Fatal(err)
			}
		} else if _, err := s.mirror([]StoreEntry{bad, other}, syncAt{}); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, filepath.Join(string(s.home), stand.rel)); string(got) != string(stand.val) {
			t.Fatalf("incremental=%v: the stand-in of revoked_keys/sub/y holds %q", incremental, got)
		}
		if !strings.Contains(errOut.String(), "a name sync keeps for its own files") {
			t.Fatalf("incremental=%v: the entry named like a stand-in was not reported:\n%s", incremental, errOut)
		}
		own := unmirrorableRevocation(name, "has a name sync keeps for its own files")
		if got := readFile(t, filepath.Join(string(s.home), own.rel)); string(got) != string(own.val) {
			t.Fatalf("incremental=%v: the entry named like a stand-in is not refused by a stand-in of its own: %q", incremental, got)
		}
		if _, err := s.mirrorChanged(nil, []StoreEntry{other}, syncAt{}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(string(s.home), stand.rel)); err != nil {
			t.Fatalf("incremental=%v: deleting the entry named like a stand-in removed the stand-in it is named like: %v", incremental, err)
		}
		if _, err := os.Stat(filepath.Join(string(s.home), own.rel)); err == nil {
			t.Fatalf("incremental=%v: its own stand-in stayed after it was deleted", incremental)
		}
	}
}

// fakeFeeds is a Follower whose feeds hand the sets in sets as views,
// and a Store whose List lists them, counting the lists.
type fakeFeeds struct {
	Store // the rest is not called
	sets  map[string]*keydir.FeedSet
	err   error // every view's Err
	lists int
	// state is the State of the views (their Group the fakeFeeds), and
	// beforeView, if set, runs as a view is read (a change published
	// between the reads of two kinds).
	state      int
	beforeView func(kind string)
}

type fakeFeed struct {
	f    *fakeFeeds
	kind string
}

func (f *fakeFeeds) Feed(kind string) keydir.Feed { return fakeFeed{f, kind} }
func (f *fakeFeeds) Close() error                 { return nil }

func (f fakeFeed) Name() string { return "fake:" + f.kind }
func (f fakeFeed) View() keydir.FeedView {
	if f.f.beforeView != nil {
		f.f.beforeView(f.kind)
	}
	return keydir.FeedView{Set: f.f.sets[f.kind], Err: f.f.err, Group: f.f, State: f.f.state}
}
func (f fakeFeed) Subscribe() (<-chan struct{}, func()) { return nil, func() {} }

func (f *fakeFeeds) List(context.Context) (StoreListing, error) {
	f.lists++
	var l StoreListing
	for kind, set := range f.sets {
		for name, e := range set.All() {
			l.Entries = append(l.Entries, StoreEntry{Kind: kind, Name: name, Value: e.Data})
		}
	}
	return l, nil
}

// TestSyncWatchMirrorsWhatChanged: sync --watch's step (mirrorNow) lists
// the store at first, then mirrors the entries each view says changed
// without listing it — a put, a removal — lists it again when a changed
// entry was rejected by the view (only a list holds its value) or when
// told to (the periodic full pass: no generations), and mirrors nothing
// while a view is unusable.
func TestSyncWatchMirrorsWhatChanged(t *testing.T) {
	s, _, _ := testSyncer(t, t.TempDir())
	keys := syncKeys(t, 3)
	f := &fakeFeeds{sets: map[string]*keydir.FeedSet{}}
	for _, kind := range StoreKinds {
		f.sets[kind] = keydir.NewFeedSet()
	}
	f.sets[StoreAuthorized] = f.sets[StoreAuthorized].Put("a.json", keys[0])
	log := slog.New(slog.DiscardHandler)
	file := func(name string) string { return filepath.Join(string(s.home), "authorized_keys.d", name) }
	step := func(gens map[string]uint64, wantLists int) map[string]uint64 {
		t.Helper()
		gens = s.mirrorNow(context.Background(), f, f, log, gens)
		if f.lists != wantLists {
			t.Fatalf("the store was listed %d times, want %d", f.lists, wantLists)
		}
		return gens
	}
	gens := step(nil, 1)
	if !bytes.Equal(readFile(t, file("a.json")), keys[0]) {
		t.Fatal("the first mirror did not write a.json")
	}
	f.sets[StoreAuthorized] = f.sets[StoreAuthorized].Put("b.json", keys[1])
	gens = step(gens, 1)
	if !bytes.Equal(readFile(t, file("b.json")), keys[1]) {
		t.Fatal("a put was not mirrored")
	}
	f.sets[StoreAuthorized] = f.sets[StoreAuthorized].Delete("a.json")
	gens = step(gens, 1)
	if _, err := os.Stat(file("a.json")); err == nil {
		t.Fatal("a removal was not mirrored")
	}
	f.err = errors.New("stale")
	f.sets[StoreAuthorized] = f.sets[StoreAuthorized].Put("c.json", keys[2])
	if again := step(gens, 1); fmt.Sprint(again) != fmt.Sprint(gens) {
		t.Fatalf("an unusable view changed the generations mirrored: %v, was %v", again, gens)
	}
	if _, err := os.Stat(file("c.json")); err == nil {
		t.Fatal("c.json written while the view was unusable")
	}
	f.err = nil
	gens = step(gens, 1)
	if !bytes.Equal(readFile(t, file("c.json")), keys[2]) {
		t.Fatal("the put made while the view was unusable was not mirrored once it was usable")
	}
	f.sets[StoreTrusted] = f.sets[StoreTrusted].Reject("big.json", errors.New("over the bound"))
	gens = step(gens, 2)
	f.sets[StoreAuthorized] = f.sets[StoreAuthorized].Delete("b.json")
	step(gens, 2) // and then what changed again
	if _, err := os.Stat(file("b.json")); err == nil {
		t.Fatal("a removal after a full list was not mirrored")
	}
	step(nil, 3) // the periodic full pass
}

// TestSyncTakesTurns: two syncs of one home (sync --watch, and a one-shot
// sync from cron) mirror one after the other: the second waits for the
// first's lock (HOME/.keytool-sync.lock) before it reads the manifest.
func TestSyncTakesTurns(t *testing.T) {
	w, _, _ := testSyncer(t, t.TempDir())
	keys := syncKeys(t, 2)
	if _, err := w.mirror([]StoreEntry{authorized("a.json", keys[0])}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	_, unlock, err := w.prepare()
	if err != nil {
		t.Fatal(err)
	}
	o, _, _ := testSyncer(t, t.TempDir())
	o.home = w.home
	done := make(chan error, 1)
	go func() {
		_, err := o.mirror([]StoreEntry{authorized("a.json", keys[0]), authorized("b.json", keys[1])}, syncAt{})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the second sync mirrored while the first held the lock (%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the second sync still waits after the first let go")
	}
	if _, err := os.Stat(filepath.Join(string(w.home), "authorized_keys.d", "b.json")); err != nil {
		t.Fatal(err)
	}
	if mode := statMode(t, filepath.Join(string(w.home), ".keytool-sync.lock")); mode != 0o600 {
		t.Fatalf("lock file mode %04o, want 0600", mode)
	}
}

// TestSyncRewriteCutShort: sync killed between rewriting one of its files
// (an entry's new value) and the append recording what it wrote still
// owns the file: once the entry goes, the file goes. (Found by review:
// the new SHA-256 was recorded only after the rename, and the next sync
// took the file for one changed by hand, left it — an authorization the
// store no longer holds — and dropped it from the manifest.) The steps
// are apply's, up to its last save.
func TestSyncRewriteCutShort(t *testing.T) {
	s, keys := journaled(t) // a.json and b.json sync's
	a2 := authorized("a.json", keys[1])
	m, unlock, err := s.prepare()
	if err != nil {
		t.Fatal(err)
	}
	tighten, loosen, _ := s.filesOf([]StoreEntry{a2})
	if err := s.claim(m, slices.Concat(tighten, loosen)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.place(m, "authorized_keys.d/a.json", a2.Value); err != nil {
		t.Fatal(err)
	}
	unlock() // killed here: the manifest in memory is lost
	file := filepath.Join(string(s.home), "authorized_keys.d", "a.json")
	if !bytes.Equal(readFile(t, file), keys[1]) {
		t.Fatal("a.json was not rewritten")
	}

	again, out, errOut := testSyncer(t, t.TempDir())
	again.home = s.home
	kept, err := again.mirror([]StoreEntry{authorized("b.json", keys[1])}, syncAt{}) // a.json gone from the store
	if err != nil || kept != 0 {
		t.Fatalf("mirror after the crash: %d kept, %v\nstderr: %s", kept, err, errOut)
	}
	if _, err := os.Stat(file); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a.json, rewritten by sync before the crash, stays once its entry is gone (%v)\nstdout: %s\nstderr: %s", err, out, errOut)
	}

	// Killed after the claim and before the rename: the file's old
	// content is still sync's too.
	s, keys = journaled(t)
	m, unlock, err = s.prepare()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.claim(m, []syncFile{{rel: "authorized_keys.d/a.json", val: keys[1]}}); err != nil {
		t.Fatal(err)
	}
	unlock()
	again, _, errOut = testSyncer(t, t.TempDir())
	again.home = s.home
	if kept, err := again.mirror([]StoreEntry{authorized("b.json", keys[1])}, syncAt{}); err != nil || kept != 0 {
		t.Fatalf("mirror after a crash before the rename: %d kept, %v\nstderr: %s", kept, err, errOut)
	}
	if _, err := os.Stat(filepath.Join(string(s.home), "authorized_keys.d", "a.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a.json, as sync wrote it first, stays once its entry is gone (%v)", err)
	}
}

// TestSyncWatchNeverMirrorsTwoStates: sync --watch reads the store's
// views of the three kinds one after the other; a change published
// between two reads (bob's authorization and revocation removed in one
// transaction, after the authorizations were read and before the
// revocations) must not be mirrored half: the home would hold bob's
// authorization without his revocation, admitting him, which neither the
// store's state before nor after does. The views are read again until
// they are of one state (keydir.FeedView.State).
func TestSyncWatchNeverMirrorsTwoStates(t *testing.T) {
	s, _, _ := testSyncer(t, t.TempDir())
	keys := syncKeys(t, 1)
	f := &fakeFeeds{sets: map[string]*keydir.FeedSet{}}
	for _, kind := range StoreKinds {
		f.sets[kind] = keydir.NewFeedSet()
	}
	f.sets[StoreAuthorized] = f.sets[StoreAuthorized].Put("bob.json", keys[0])
	f.sets[StoreRevoked] = f.sets[StoreRevoked].Put("bob.json", keys[0])
	log := slog.New(slog.DiscardHandler)
	gens := s.mirrorNow(context.Background(), f, f, log, nil)
	exists := func(kind string) bool {
		_, err := os.Stat(filepath.Join(string(s.home), kind+".d", "bob.json"))
		return err == nil
	}
	if !exists(StoreAuthorized) || !exists(StoreRevoked) {
		t.Fatal("bob's authorization and revocation not mirrored")
	}
	f.beforeView = func(kind string) {
		if kind == StoreRevoked && f.state == 0 {
			f.sets[StoreAuthorized] = f.sets[StoreAuthorized].Delete("bob.json")
			f.sets[StoreRevoked] = f.sets[StoreRevoked].Delete("bob.json")
			f.state++
		}
	}
	s.mirrorNow(context.Background(), f, f, log, gens)
	if exists(StoreAuthorized) && !exists(StoreRevoked) {
		t.Fatal("bob's authorization mirrored from before the transaction, his revocation's removal from after it: the home admits bob")
	}
}
