package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/internal/trustfile"
)

// syncCommand makes the sync command: a store's entries mirrored into a
// home's .d directories, for programs that read only files.
func syncCommand() *command {
	var (
		to              string
		watch, restored bool
	)
	return &command{
		name:    "sync",
		uses:    globalNone | globalStoreArg,
		args:    "STORE-URL --to HOME [--watch] [--restored]",
		summary: "mirror a store's trust entries (etcd://…) into a home's .d directories",
		help: `Writes each entry of the store at STORE-URL (etcd://HOST:PORT/PREFIX; the
etcd build of keytool) to the file of that name in HOME's authorized_keys.d,
revoked_keys.d or trusted_hosts.d, atomically and mode 0644, and removes the
files of entries that have gone, so that programs reading only files (the
core keytool, a daemon with the Go API on files) enforce what the store says.
HOME must be there, a directory the strict-modes rule takes (not writable
by group or others, the user's or root's), empty or a keytool home (an
identity, a trust file or .d directory): it is checked before the store
is opened or anything is made or locked in it (mkdir -m 700 HOME for a new
one).

sync keeps the list of the files it wrote, with their SHA-256, in
HOME/.keytool-sync.json and its journal .keytool-sync.log (mode 0600),
and touches no other file: a file
that sync did not write, or that was changed since sync wrote it, is never
overwritten or removed; it is reported (exit 1 at the end, after
everything else was mirrored), as is an entry whose name is no file name
(under revoked_keys/ it is mirrored as a file that refuses every key, under
trusted_hosts/ as one that refuses every host no other pin holds, as the
stores reading the store do). A revocation whose file is left as it
is is still written, under a name of sync's (revoked_keys.d/keytool-sync-…).
Revocations are written first and removed last; the files of vanished
pins are removed last too (an unpinned address is one a client may take
any key for); a revocation file sync rewrites is kept as it was, under a
name of sync's, until the end, so that none lapses in between.
Authorization files are written and removed in an order that never lets a
key several of them hold (the first file holding it wins) in with rights
neither state gives it; where no order does, those keys are held revoked
until every file is written. A home is synced from one store. The
temporary files of sync's writes (.NAME.DIGITS.keytool-sync.tmp) that a
sync killed mid-write left are removed by the next, under its lock.

Every sync records in the manifest the store's revision it mirrored
(and the store's cluster), and no sync moves the home back: a list
older than what the home was mirrored to, by this sync or another
(--watch beside a sync from cron), is not mirrored. A one-shot sync
lists the store again, three times in all, then leaves the home as it
is and exits 1. --restored mirrors the store as it is even so, for a
store restored from a backup to an older revision.

One pass by default. --watch keeps mirroring each change until SIGINT or
SIGTERM, through the same watch, cache (in HOME) and staleness bound as
keytool proxy --store: only the entries that changed, and the whole store
every 5 minutes. While the store's view is unusable (not yet listed,
stale) nothing is written or removed. A mirror that did not happen (the
store not listed, a write that failed) is tried again after 1 second,
then twice as long each time, up to a minute.`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			set.StringVar(&to, "to", "", "mirror into the home `DIR`")
			set.BoolVar(&watch, "watch", false, "keep mirroring each change until SIGINT or SIGTERM")
			set.BoolVar(&restored, "restored", false, "mirror the store even if its revision is older than the home's (a store restored from a backup)")
		},
		run: func(c *cli, args []string) error {
			switch {
			case len(args) != 1:
				return usagef("sync takes one STORE-URL (etcd://HOST:PORT/PREFIX)")
			case to == "":
				return usagef("--to HOME is required: the home whose .d directories receive the entries")
			}
			c.store.url, c.store.fromArg = args[0], true
			if err := c.store.check(); err != nil {
				return err
			}
			s := &syncer{c: c, home: home.Dir(to), store: args[0], restored: restored}
			// The home first: a bad one is reported at once, before the
			// store is opened, its cache and watch started, or a lock
			// or directory made in a place that is no home.
			if err := s.checkHome(); err != nil {
				return err
			}
			if err := s.checkHomeFiles(); err != nil {
				return err
			}
			if watch {
				return s.watch()
			}
			return s.once()
		},
	}
}

type syncer struct {
	c     *cli
	home  home.Dir
	store string
	// maxValue is the store's bound on a value (Store.MaxValue): a larger
	// entry is mirrored as its live view takes it, as nothing (fileOf).
	maxValue int
	// shared are the entries (KIND/NAME) that share a file with another
	// on the home's file system (sharedFiles), while mirror runs.
	shared map[string]bool

	// atStore is the store (StoreListing.Identity) of the last list sync
	// --watch read: its view's revisions are that store's.
	atStore string
	viewAt  int64 // the revision of the last view read
	// restored: the next mirror may move the home to an older revision
	// of the store than the manifest says it was mirrored to (--restored,
	// or sync --watch's view gone back: the store's history is another),
	// and records that one instead (moveForward).
	restored bool
	// locked: the lock prepare took is held (flock works here), so no
	// other sync of the home is writing (removeLeft).
	locked bool

	// The manifest as the last read or save left it, and the stamps of
	// its files then (loadManifest).
	manifest *syncManifest
	stamps   [2]trustfile.Stamp

	// unsettled are the files unplace removed whose directory is not yet
	// synced, by directory (settle).
	unsettled map[string][]string
}

func (s *syncer) manifestPath() string { return filepath.Join(string(s.home), ".keytool-sync.json") }

// once lists the store and mirrors it.
func (s *syncer) once() error {
	ctx := context.Background()
	st, err := s.c.store.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	s.maxValue = st.MaxValue()
	var kept int
	for try := 1; ; try++ {
		l, err := st.List(ctx)
		if err != nil {
			return err
		}
		kept, err = s.mirror(l.Entries, syncAt{l.Revision, l.Identity})
		var behind *syncBehindError
		if errors.As(err, &behind) && try < syncBehindTries {
			// Most often another sync of the home (--watch) mirrored a
			// newer change between this list and the lock: a list made
			// now holds it. Persistently older, the store's answer is
			// behind the home (a member behind the others, a restore):
			// nothing written, exit 1 (syncBehindError).
			time.Sleep(syncBehindWait)
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	if kept > 0 {
		return fmt.Errorf("%d entries not mirrored or files left as they are in %s (above): sync writes and removes only the files it made", kept, s.home)
	}
	return nil
}

// watch mirrors at start and after each change of the store's view. The
// view says when to mirror and whether it may (not while unusable); what
// is mirrored is a fresh list, which, unlike the view, holds every value,
// an oversized one included (mirrored as the view takes it: fileOf), as
// the one-shot sync reads it.
func (s *syncer) watch() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)
	log := s.c.logger()
	st, err := s.c.store.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	s.maxValue = st.MaxValue()
	s.c.home = string(s.home) // the store's cache goes in the home it mirrors to
	f, err := s.c.followStore(ctx, log)
	if err != nil {
		return err
	}
	changed := make(chan struct{}, 1)
	for _, kind := range StoreKinds {
		ch, stop := f.Feed(kind).Subscribe()
		defer stop()
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-ch:
					select {
					case changed <- struct{}{}:
					default:
					}
				}
			}
		}()
	}
	var mirrored map[string]uint64
	full := time.NewTicker(syncFullEvery)
	defer full.Stop()
	// A mirror that did not happen (the store not listed, a write that
	// failed, no usable view yet) is tried again soon, then less often:
	// the view the proxy enforces may hold a revocation the home does
	// not, and the next change of the store may be hours away. Before, it
	// waited for that change or the full pass (TestSyncWatchRetriesAFailedMirror).
	retry := time.NewTimer(syncRetryFirst)
	defer retry.Stop()
	var wait time.Duration
	for {
		mirrored = s.mirrorNow(ctx, st, f, log, mirrored)
		if mirrored == nil {
			wait = min(max(2*wait, syncRetryFirst), syncRetryMax)
			retry.Reset(wait)
		} else {
			wait = 0
			retry.Stop()
		}
		select {
		case sig := <-signals:
			log.Info("sync stopped", "signal", sig.String())
			return nil
		case <-changed:
		case <-retry.C:
		case <-full.C:
			mirrored = nil
		}
	}
}

// syncRetryFirst and syncRetryMax bound how long sync --watch waits
// before it tries again a mirror that did not happen: the first wait,
// doubled at each failure up to the second.
const (
	syncRetryFirst = time.Second
	syncRetryMax   = time.Minute
)

// syncFullEvery is how often sync --watch mirrors a fresh list of the
// whole store even if its view says nothing changed: between two, it
// mirrors only the entries that changed, and a file of sync's removed
// or changed by hand meanwhile is made what the store says again then.
const syncFullEvery = 5 * time.Minute

// mirrorNow mirrors the store, unless the view says its state is not
// usable now. mirrored are the generations of the views (by kind) the
// last mirror brought the home to, nil if none did: when each view tells
// what changed since (keydir.FeedSet.ChangedSince), only those entries
// are mirrored, from the view; otherwise a fresh list of the whole store,
// which, unlike the view, holds every value, an oversized one included
// (mirrored as the view takes it: fileOf), as the one-shot sync reads it.
// It returns the generations the home
// is at now.
func (s *syncer) mirrorNow(ctx context.Context, st Store, f Follower, log *slog.Logger, mirrored map[string]uint64) map[string]uint64 {
	views, err := storeViews(f)
	if err != nil {
		log.Warn("store view not usable: nothing mirrored until it is", "store", s.store, "err", err)
		return mirrored
	}
	// The home only moves forward in the store's revisions: a list may be
	// ahead of the view (its watch a little behind), or behind what the
	// view brought the home to (a member behind the others answered it).
	// Mirrored, the view's change at 11 after a list at 12 put back what
	// 12 removed (alice authorized again) until the watch brought 12, and
	// a list at 11 after the view's 12 did the same until the next pass
	// (TestSyncWatchNeverMovesBack).
	// The revision the home was mirrored to is the manifest's, which
	// every sync of the home records (moveForward): a one-shot sync from
	// cron may have mirrored a newer list than this view.
	at := viewsRevision(views)
	if at < s.viewAt {
		// The view itself went back: the store's history is another
		// (etcd restored from a backup, which may keep the cluster's
		// identity); its revisions start again, and so do the home's.
		log.Warn("store's view went back to an older revision (restored?): mirrored as it now is", "store", s.store, "revision", at, "was", s.viewAt)
		s.restored = true
	}
	s.viewAt = at
	var kept int
	var behind *syncBehindError
	if changed, deleted, ok := changesSince(views, mirrored); ok && syncExactNames(s.home) {
		kept, err = s.mirrorChanged(changed, deleted, syncAt{at, s.atStore})
		if errors.As(err, &behind) {
			// Every change it holds is in the home already, as new or
			// newer: mirrored once the view has caught up, from the same
			// generations.
			return mirrored
		}
	} else {
		var l StoreListing
		if l, err = st.List(ctx); err != nil {
			log.Warn("store not listed: nothing mirrored", "store", s.store, "err", err)
			return nil
		}
		s.atStore = l.Identity
		kept, err = s.mirror(l.Entries, syncAt{l.Revision, l.Identity})
		if errors.As(err, &behind) {
			log.Warn("store's list older than what the home was mirrored to (a member behind the others answered): nothing mirrored", "store", s.store, "revision", l.Revision, "mirrored", behind.Mirrored)
			return nil
		}
	}
	if err != nil {
		log.Error("sync failed", "err", err)
		return nil
	}
	if kept > 0 {
		log.Warn("entries not mirrored or files left as they are (above)", "count", kept)
	}
	gens := map[string]uint64{}
	for kind, v := range views {
		gens[kind] = v.Set.Gen() // 0 without a set: the next mirror lists the store
	}
	return gens
}

// viewsRevision is the store's revision views (of one State: storeViews)
// hold, where their State says it (a StoreState), else 0.
func viewsRevision(views map[string]keydir.FeedView) int64 {
	if st, ok := views[StoreAuthorized].State.(StoreState); ok {
		return st.Revision()
	}
	return 0
}

// storeViews reads the views of the three kinds, all of one state of the
// store (keydir.FeedView.State): they are read one after the other, and
// a change published between two reads (a transaction removing bob's
// authorization and his revocation together) would otherwise be
// mirrored half, the home admitting a key that neither state admits
// (TestSyncWatchNeverMirrorsTwoStates). It reads them again until they
// are, a hundred times at most; an error if a view is unusable or they
// never were.
func storeViews(f Follower) (map[string]keydir.FeedView, error) {
	for range 100 {
		views := map[string]keydir.FeedView{}
		one := true
		for _, kind := range []string{StoreAuthorized, StoreTrusted, StoreRevoked} {
			v := f.Feed(kind).View()
			if v.Err != nil {
				return nil, v.Err
			}
			first := views[StoreAuthorized]
			one = one && (kind == StoreAuthorized || v.Group == nil || v.Group != first.Group || v.State == first.State)
			views[kind] = v
		}
		if one {
			return views, nil
		}
	}
	return nil, keydir.ErrFeedsMixed
}

// changesSince returns the entries of views changed since the
// generations mirrored: those put, with their values, and those deleted;
// false if any view cannot tell (no set, or history not kept that far)
// or holds a changed entry it rejected (a value over the view's bound,
// which only a list of the store holds).
func changesSince(views map[string]keydir.FeedView, mirrored map[string]uint64) (changed, deleted []StoreEntry, ok bool) {
	if mirrored == nil {
		return nil, nil, false
	}
	for _, kind := range StoreKinds {
		v := views[kind]
		if v.Set == nil || mirrored[kind] == 0 {
			return nil, nil, false
		}
		names, ok := v.Set.ChangedSince(mirrored[kind])
		if !ok {
			return nil, nil, false
		}
		slices.Sort(names)
		for _, name := range slices.Compact(names) {
			e, present := v.Set.Get(name)
			switch {
			case present && e.Err != nil:
				return nil, nil, false
			case present:
				changed = append(changed, StoreEntry{Kind: kind, Name: name, Value: e.Data})
			default:
				deleted = append(deleted, StoreEntry{Kind: kind, Name: name})
			}
		}
	}
	return changed, deleted, true
}

// mirror makes the home's .d directories hold entries, as far as the
// files sync made go; it returns how many files it left as they are.
func (s *syncer) mirror(entries []StoreEntry, at syncAt) (kept int, err error) {
	m, unlock, err := s.prepare()
	if err != nil {
		return 0, err
	}
	defer unlock()
	if err := s.moveForward(m, at); err != nil {
		return 0, err
	}
	s.removeLeft()
	if s.shared, err = s.sharedFiles(entries); err != nil {
		return 0, err
	}
	defer func() { s.shared = nil }()
	tighten, loosen, kept := s.filesOf(entries)
	want := wanted(tighten, loosen)
	var gone []string
	for _, rel := range slices.Sorted(maps.Keys(m.Files)) {
		if !want[rel] {
			gone = append(gone, rel)
		}
	}
	k, err := s.apply(m, tighten, loosen, want, gone)
	return kept + k, err
}

// mirrorChanged is mirror for the entries changed since the last mirror
// (sync --watch, from the store's view): changed holds each entry put
// since, with its value, deleted each one gone (Kind and Name). Only
// their files are examined, so that a change costs the same in a store
// of any size — and so only on a file system that keeps names as given
// (mirrorNow): elsewhere a changed entry may share its file with one that
// did not change, which only the whole list shows (sharedFiles).
func (s *syncer) mirrorChanged(changed, deleted []StoreEntry, at syncAt) (kept int, err error) {
	m, unlock, err := s.prepare()
	if err != nil {
		return 0, err
	}
	defer unlock()
	if err := s.moveForward(m, at); err != nil {
		return 0, err
	}
	tighten, loosen, kept := s.filesOf(changed)
	want := wanted(tighten, loosen)
	gone := map[string]bool{}
	for _, e := range slices.Concat(changed, deleted) {
		for _, rel := range syncFilesOf(e) {
			if _, ours := m.Files[rel]; ours && !want[rel] {
				gone[rel] = true
			}
		}
	}
	k, err := s.apply(m, tighten, loosen, want, slices.Sorted(maps.Keys(gone)))
	return kept + k, err
}

// prepare takes sync's lock on the home, loads the manifest and makes
// the .d directories; the caller calls unlock once the manifest is saved.
// The lock (HOME/.keytool-sync.lock, flock) keeps two syncs of one home —
// sync --watch and a one-shot sync from cron — from each rewriting the
// manifest from what it read before the other wrote: the files one of
// them made would not be sync's any more, and would stay once their
// entries go.
func (s *syncer) prepare() (m *syncManifest, unlock func(), err error) {
	if err := s.checkHome(); err != nil {
		return nil, nil, err
	}
	release, held, err := keydir.LockFile(filepath.Join(string(s.home), ".keytool-sync.lock"))
	if err != nil {
		return nil, nil, err
	}
	s.locked = held
	if m, err = s.loadManifest(); err != nil {
		release()
		return nil, nil, err
	}
	// Written only where the home's readers would read (the strict-modes
	// rule, up to the home): in a home another user owns or may write, a
	// .d directory may be their link to another home's, which would then
	// trust what sync writes.
	rule := trustfile.Rule{Top: string(s.home)}
	for _, kind := range StoreKinds {
		if err := os.MkdirAll(kindDir(s.home, kind), 0o755); err != nil {
			release()
			return nil, nil, err
		}
		if err := rule.CheckDir(kindDir(s.home, kind)); err != nil {
			release()
			return nil, nil, fmt.Errorf("not syncing into %s: %w", s.home, err)
		}
	}
	return m, release, nil
}

// checkHome refuses a HOME sync may not mirror into, before anything is
// made or locked in it: one that does not exist (a typo in --to, which
// would be mirrored where no server reads while the home meant went
// stale: homeToWrite's rule for a home named), one that is no directory,
// or one the strict-modes rule refuses, or whose .d directories, where
// there, it refuses — the home's readers would refuse what sync wrote, and
// in a home another user owns or may write a .d directory may be their
// link to a home that would trust it (and, as the command starts, one that
// holds files but none of a home's: checkHomeFiles). Before, sync --watch opened the
// store and started its cache and watch in such a place, and either mode
// made the home, its lock and its .d directories there before refusing
// it (TestSyncChecksTheHomeFirst).
func (s *syncer) checkHome() error {
	fi, err := os.Stat(string(s.home))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &noHomeError{home: string(s.home), by: "--to", gen: "keytool -H " + shellQuote(string(s.home)) + " gen"}
	case err != nil:
		return fmt.Errorf("not syncing into %s: %w", s.home, err)
	case !fi.IsDir():
		return fmt.Errorf("not syncing into %s: not a directory (--to names the home whose .d directories receive the entries)", s.home)
	}
	rule := trustfile.Rule{Top: string(s.home)}
	if err := rule.CheckDir(string(s.home)); err != nil {
		return fmt.Errorf("not syncing into %s: %w", s.home, err)
	}
	for _, kind := range StoreKinds {
		if _, err := os.Lstat(kindDir(s.home, kind)); errors.Is(err, fs.ErrNotExist) {
			continue // made by prepare, under the lock
		}
		if err := rule.CheckDir(kindDir(s.home, kind)); err != nil {
			return fmt.Errorf("not syncing into %s: %w", s.home, err)
		}
	}
	return nil
}

// checkHomeFiles refuses a directory that holds files but none of a
// keytool home's (an identity, a trust file or directory, sync's
// manifest): --to naming the directory above the home (/etc/myd for
// /etc/myd/keytool), or any other, where sync would make .d directories
// no server reads. An empty directory is a new home. Asked once, as the
// command starts: sync --watch then puts the store's cache there.
func (s *syncer) checkHomeFiles() error {
	d, err := os.Open(string(s.home))
	if err != nil {
		return fmt.Errorf("not syncing into %s: %w", s.home, err)
	}
	names, err := d.Readdirnames(1)
	d.Close()
	if errors.Is(err, io.EOF) || err == nil && len(names) == 0 {
		return nil
	}
	h := s.home
	for _, p := range append(h.Paths(), s.manifestPath()) {
		if _, err := os.Lstat(p); err == nil {
			return nil
		}
	}
	return fmt.Errorf("not syncing into %s: it holds files, but none of a keytool home's (an identity, authorized_keys.d, trusted_hosts.d, revoked_keys.d, %s): --to names the home whose .d directories receive the entries (a new one: an empty directory, mkdir -m 700 %s)",
		s.home, filepath.Base(s.manifestPath()), shellQuote(string(s.home)))
}

// filesOf returns the files that mirror entries: revocations (tighten)
// and the others (loosen), by name, and how many entries are mirrored
// otherwise than as they are (fileOf).
func (s *syncer) filesOf(entries []StoreEntry) (tighten, loosen []syncFile, kept int) {
	slices.SortFunc(entries, func(a, b StoreEntry) int { return strings.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name) })
	for _, e := range entries {
		if !slices.Contains(StoreKinds, e.Kind) {
			continue
		}
		f, ok := s.fileOf(e)
		if !ok || f.stood {
			kept++
		}
		if !ok {
			continue
		}
		if e.Kind == StoreRevoked {
			tighten = append(tighten, f)
		} else {
			loosen = append(loosen, f)
		}
	}
	return tighten, loosen, kept
}

func wanted(tighten, loosen []syncFile) map[string]bool {
	want := map[string]bool{}
	for _, f := range slices.Concat(tighten, loosen) {
		want[f.rel] = true
	}
	return want
}

// syncFilesOf are the files that may mirror entry e: its own, and for a
// revocation the stand-ins sync writes in its place (fileOf, apply).
func syncFilesOf(e StoreEntry) []string {
	var files []string
	own := e.Kind + ".d/" + e.Name
	if !strings.HasPrefix(e.Name, syncOwnPrefix) { // such an entry is never written under its name
		files = append(files, own)
		if e.Kind == StoreRevoked || e.Kind == StoreTrusted {
			files = append(files, revocationAlt(own))
		}
	}
	switch e.Kind {
	case StoreRevoked:
		stand := unmirrorableRevocation(e.Name, "").rel
		files = append(files, stand, revocationAlt(stand))
	case StoreTrusted:
		files = append(files, unmirrorablePin(e.Name, "").rel)
	}
	return files
}

// syncOwnPrefix begins the names of the files sync writes in an entry's
// place: no entry is mirrored under such a name.
const syncOwnPrefix = "keytool-sync-"

// revocationAlt is the name of sync's, in rel's directory, under which
// the revocation of file rel is written when a file sync may not touch
// holds rel, and the revocation or pin of an entry whose name the home's
// loader skips (entryFile, fileOf).
func revocationAlt(rel string) string {
	dir, _, _ := strings.Cut(rel, "/")
	return dir + "/" + syncOwnPrefix + contentSum([]byte(rel))[:16]
}

// apply places the files of tighten and loosen and removes those of gone
// (the manifest's files no entry wants now), in the order that never
// loosens trust before it is tightened:
//
// What tightens trust is done first — revocations written, the files of
// vanished authorizations removed — and what loosens it last, so that a
// program reading the home between two writes, or after a failure
// halfway, never admits a key the store no longer admits. A revocation
// file of sync's that is rewritten is held as it was until the end
// (hold): the store may have moved what it revokes to another entry,
// written after it. The files of vanished pins go last too, after the
// pins written, and a pin file of sync's rewritten is held as well: an
// address pinned to nothing is one a client asks about or, under
// accept-new, takes any key for — a pin moved to another entry (renamed,
// or two swapping their addresses) would otherwise leave its address
// unpinned in between, and an interceptor's key taken then is pinned for
// good (TestSyncMovedPinNeverLapses). The authorization files are
// written and removed in the order authOrder gives, which never lets a key
// several of them hold in with rights neither state gives it.
func (s *syncer) apply(m *syncManifest, tighten, loosen []syncFile, want map[string]bool, gone []string) (kept int, err error) {
	var goneLast, authGone []string // revocations and pins: removed last
	var held []string               // removed last of all (hold)
	for _, rel := range gone {
		if revocationOrPin(rel) {
			goneLast = append(goneLast, rel)
		} else {
			authGone = append(authGone, rel)
		}
	}
	var auth, pins []syncFile
	for _, f := range loosen {
		if strings.HasPrefix(f.rel, StoreAuthorized+".d/") {
			auth = append(auth, f)
		} else {
			pins = append(pins, f)
		}
	}
	// The authorization files in the order that never widens a key held
	// by several (authOrder), the removals it puts first made before
	// anything is written.
	steps, holdKeys := s.authOrder(m, auth, authGone)
	if len(holdKeys) > 0 {
		h, err := s.holdRevoked(m, holdKeys)
		if err != nil {
			return kept, errors.Join(err, s.saveManifest(m))
		}
		held, want[h] = append(held, h), true
	}
	for len(steps) > 0 && steps[0].gone {
		kept += s.unplace(m, steps[0].f.rel)
		steps = steps[1:]
	}
	kept += s.settle(m)
	if err := s.claim(m, slices.Concat(tighten, loosen)); err != nil {
		return kept, err
	}
	place := func(f syncFile) error {
		kept += s.settle(m) // the removals before it durable first
		k, h, err := s.placeHeld(m, f, want)
		held = append(held, h...)
		kept += k
		if err != nil {
			// What was placed so far is sync's: keep the manifest.
			return errors.Join(err, s.saveManifest(m))
		}
		return nil
	}
	for _, f := range tighten {
		if err := place(f); err != nil {
			return kept, err
		}
	}
	for _, st := range steps {
		if st.gone {
			kept += s.unplace(m, st.f.rel)
		} else if err := place(st.f); err != nil {
			return kept, err
		}
	}
	for _, f := range pins {
		if err := place(f); err != nil {
			return kept, err
		}
	}
	for _, rel := range goneLast {
		if !want[rel] {
			kept += s.unplace(m, rel)
		}
	}
	out := s.c.stdout
	s.c.stdout = io.Discard // sync's own, never the store's: not said
	for _, rel := range held {
		kept += s.unplace(m, rel)
	}
	s.c.stdout = out
	kept += s.settle(m)
	return kept, s.saveManifest(m)
}

// placeHeld places f, holding what its file held first (hold), and for a
// revocation whose name a file sync may not touch holds, under a name of
// sync's; it returns how many files it left as they are and the names of
// the copies held, which apply removes last of all.
func (s *syncer) placeHeld(m *syncManifest, f syncFile, want map[string]bool) (kept int, held []string, err error) {
	place := func(rel string, val []byte) (int, error) {
		h, err := s.hold(m, rel, val)
		if h != "" {
			held = append(held, h)
		}
		if err != nil {
			return 0, err
		}
		return s.place(m, rel, val)
	}
	k, err := place(f.rel, f.val)
	if err == nil && k > 0 && f.revocation {
		// A file sync may not touch holds the name: the revocation
		// is still enforced, under a name of sync's.
		alt := syncFile{rel: revocationAlt(f.rel), val: f.val}
		want[alt.rel] = true
		if err = s.claim(m, []syncFile{alt}); err != nil {
			return k, held, err
		}
		if k, err = place(alt.rel, alt.val); err == nil && k == 0 {
			fmt.Fprintf(s.c.stderr, "keytool sync: %s: the store's revocation is mirrored as %s instead\n", s.shown(f.rel), s.shown(alt.rel))
		}
		k = 1 // still reported
	}
	return k, held, err
}

// hold writes, before sync rewrites its revocation or pin file rel to
// hold val, what rel holds now under a name of sync's (heldCopy), which
// apply removes once every file is placed; it returns that name ("" if
// nothing was held). Rewritten one after the other, such files would
// otherwise lapse in between: a store whose r1 revoking A and B became,
// in one change, r1 revoking A and r2 revoking B admitted B between r1's
// rewrite and r2's write (as would r1 and r2 swapping their keys), which
// no state of the store does (TestSyncRewrittenRevocationsNeverLapse);
// two pins swapping their addresses left one unpinned
// (TestSyncMovedPinNeverLapses). A sync cut short leaves the file in its
// manifest: the next one removes it, last, as it removes a revocation or
// pin gone from the store.
func (s *syncer) hold(m *syncManifest, rel string, val []byte) (string, error) {
	if !revocationOrPin(rel) || m.Files[rel] == "" {
		return "", nil // not a revocation or pin of sync's: placed only if none is there
	}
	cur, _, err := readRegular(filepath.Join(string(s.home), rel))
	if err != nil || bytes.Equal(cur, val) || !m.owns(rel, contentSum(cur)) {
		return "", nil // nothing of sync's rewritten (place says why)
	}
	h := syncFile{rel: heldCopy(rel), val: cur}
	k, err := s.placeOwn(m, h)
	if err != nil || k > 0 {
		return "", err // a file not sync's under that name: left, said (place)
	}
	return h.rel, nil
}

// revocationOrPin reports whether rel (kind.d/NAME) is a revocation or a
// pin file: one whose removal loosens trust (a key no longer refused, an
// address no longer pinned), where an authorization's tightens it.
func revocationOrPin(rel string) bool {
	return strings.HasPrefix(rel, StoreRevoked+".d/") || strings.HasPrefix(rel, StoreTrusted+".d/")
}

// heldCopy is the name of sync's, in rel's directory, under which hold
// keeps what its file rel held while rel is rewritten.
func heldCopy(rel string) string {
	dir, _, _ := strings.Cut(rel, "/")
	return dir + "/" + syncOwnPrefix + "held-" + contentSum([]byte(rel))[:16]
}

// claim records in the manifest, before any is created, the files sync
// is about to create, and the new SHA-256 of those of its own it is about
// to rewrite (keeping the old one as its own too: syncManifest.Was): a
// sync killed between a file and the manifest (kill -9, a power cut)
// still owns the file, and removes it once its entry goes, instead of
// leaving an authorization no manifest names, or one it takes for
// changed by hand.
func (s *syncer) claim(m *syncManifest, files []syncFile) error {
	claimed := false
	for _, f := range files {
		sum, had := contentSum(f.val), m.Files[f.rel]
		if had == sum {
			continue
		}
		cur, _, err := readRegular(filepath.Join(string(s.home), f.rel))
		curSum := ""
		if err == nil && had != "" {
			curSum = contentSum(cur)
		}
		switch {
		case had == "" && errors.Is(err, fs.ErrNotExist):
			m.set(f.rel, sum)
		case had != "" && errors.Is(err, fs.ErrNotExist):
			m.rewriting(f.rel, sum, "") // place writes it
		case had != "" && err == nil && m.owns(f.rel, curSum):
			m.rewriting(f.rel, sum, curSum) // place writes it
		default:
			continue // not sync's to write, or the same bytes (place says)
		}
		claimed = true
	}
	if !claimed {
		return nil
	}
	return s.saveManifest(m)
}

// syncFile is a file sync writes: its path relative to the home, and its
// bytes.
type syncFile struct {
	rel string
	val []byte
	// revocation: if another file holds rel, write val under a name of
	// sync's instead.
	revocation bool
	stood      bool // a stand-in for an entry sync cannot write as it is
}

// fileOf is the file that mirrors entry e, and false when none does
// (entryFile), each entry not mirrored as it is reported. Beyond what the
// stores reading the store do, an entry holding a private key, which the
// home's .d files, readable by everyone (0644), must never hold, is not
// written as it is: an authorization is left out, a revocation written
// as the stand-in that refuses every key, a pin as the one that refuses
// every host no other pin holds (unmirrorablePin).
func (s *syncer) fileOf(e StoreEntry) (f syncFile, ok bool) {
	f, ok, n := entryFile(e, s.maxValue)
	switch {
	case n.what == "" && s.shared[e.Kind+"/"+e.Name]:
		// Both written, one would be lost, and the manifest would call
		// the file both entries': refused as an edit command refuses
		// them (sameFileError), a revocation on the safe side.
		n = fileNote{what: sameFileName, why: "shares its file with another entry on the home's file system", until: "one of them is renamed", home: true}
		f, ok = n.standIn(e)
	case n.what == "" && valueHoldsPrivateKey(e.Value):
		n = fileNote{what: "holds a private key", why: "holds a private key", until: "the entry holds only the public key", home: true}
		f, ok = n.standIn(e)
	}
	if e.Kind == StoreTrusted && !ok {
		// A pin left out would leave its address unpinned, which a
		// client under ask or accept-new takes any key for, where the
		// stores reading the store pin it (a name the loader skips) or
		// skip an input, refusing every host no pin holds
		// (knownhosts.Skipped): written under a name of sync's, or as
		// the stand-in that the home's stores skip the same way
		// (TestSyncPinNotMirroredAsItIsNeverUnpins).
		if n.skipped {
			f, ok = syncFile{rel: revocationAlt(e.Kind + ".d/" + e.Name), val: e.Value, stood: true}, true
		} else if n.what != "" {
			f, ok = unmirrorablePin(e.Name, n.why), true
		}
	}
	refuses := "every key"
	if e.Kind == StoreTrusted {
		refuses = "every host no other pin holds"
	}
	// A name that is no file name may hold anything (a newline, a
	// terminal's escape), and one that is may still hold a bidi control
	// (U+202E, which CheckFileName lets through): shown quoted, it cannot
	// forge a line of sync's nor reorder one.
	name := termtext.Safe(e.Name)
	switch {
	case n.skipped && ok:
		fmt.Fprintf(s.c.stderr, "keytool sync: %s/%s: a name the home's stores skip (a temporary file's): mirrored as %s (rename the entry)\n", e.Kind, name, s.shown(f.rel))
	case n.skipped:
		fmt.Fprintf(s.c.stderr, "keytool sync: %s/%s: a name the home's stores skip (a temporary file's): not mirrored\n", e.Kind, name)
	case n.what != "" && !ok:
		fmt.Fprintf(s.c.stderr, "keytool sync: %s/%s: %s: not mirrored\n", e.Kind, name, n.what)
	case n.what != "" && n.home:
		fmt.Fprintf(s.c.stderr, "keytool sync: %s/%s: %s: mirrored as %s, which refuses %s until %s\n",
			e.Kind, name, n.what, s.shown(f.rel), refuses, n.until)
	case n.what != "":
		fmt.Fprintf(s.c.stderr, "keytool sync: %s/%s: %s: mirrored as %s, which refuses %s (as the stores reading %s do) until %s\n",
			e.Kind, name, n.what, s.shown(f.rel), refuses, s.store, n.until)
	}
	return f, ok
}

// fileNote says why an entry is not mirrored as the file of its name:
// what it is, why the stores reading the store do not take it as it is,
// and until when; skipped: its name is one the home's loader skips;
// home: the reason is the home's (a file others read, a file system's
// names), not the stores reading the store, which take the entry.
type fileNote struct {
	what, why, until string
	skipped, home    bool
}

// entryFile is the file (under HOME, a .d directory of e's kind) by which
// a home holds store entry e as the stores reading the store take it, and
// false when none does: sync writes it, and the copy of the store an edit
// command runs on (materialize, the store's mirror) holds it, so that what
// the command shows and checks is what the fleet enforces. An entry those
// stores cannot take as it is — its name is no file name, or one sync
// keeps for its own files, or its value is larger than their live view
// takes (maxValue; 0: no bound) — grants nothing: an authorization or pin
// has no file; a revocation has the stand-in that refuses every key
// (stood), as those stores refuse every key for it. An entry whose name
// the home's loader skips (keydir.Ignored) but those stores take: a
// revocation is held, as it is, under a name of sync's (stood); another
// kind has no file. n says which (empty: the entry's own file).
func entryFile(e StoreEntry, maxValue int) (f syncFile, ok bool, n fileNote) {
	f = syncFile{rel: e.Kind + ".d/" + e.Name, val: e.Value, revocation: e.Kind == StoreRevoked}
	switch {
	case keydir.CheckFileName(e.Name) != nil:
		n = fileNote{what: "not a file name", why: "has a name that is no file name", until: "the entry is renamed"}
	case strings.HasPrefix(e.Name, syncOwnPrefix):
		// The names sync gives the revocations it writes in another's
		// place (revocationAlt, unmirrorableRevocation): an entry of that
		// name would be taken for one of them, and one of them for it.
		n = fileNote{what: "a name sync keeps for its own files (" + syncOwnPrefix + "…)", why: "has a name sync keeps for its own files", until: "the entry is renamed"}
	case maxValue > 0 && len(e.Value) > maxValue:
		// The stores reading the store take no such entry (etcd's
		// TooLargeError), and a file that large the home's loader would
		// take: the home must not grant what the store does not.
		n = fileNote{
			what:  fmt.Sprintf("%d bytes, more than the %d an entry may hold", len(e.Value), maxValue),
			why:   fmt.Sprintf("is larger than the %d bytes an entry may hold", maxValue),
			until: "the entry is made smaller",
		}
	case keydir.Ignored(e.Name) && e.Kind == StoreRevoked:
		// A name the stores reading the store take (CheckFileName) but a
		// directory's loader skips: the revocation refuses its key there,
		// and must here, under a name of sync's that the loader reads.
		f.rel, f.stood = revocationAlt(f.rel), true
		return f, true, fileNote{skipped: true}
	case keydir.Ignored(e.Name):
		return f, false, fileNote{skipped: true}
	default:
		return f, true, fileNote{}
	}
	f, ok = n.standIn(e)
	return f, ok, n
}

// standIn is what holds entry e, which cannot be held as it is for n's
// reason: for a revocation the file that refuses every key, else none.
func (n fileNote) standIn(e StoreEntry) (syncFile, bool) {
	if e.Kind != StoreRevoked {
		return syncFile{}, false
	}
	return unmirrorableRevocation(e.Name, n.why), true
}

// unmirrorableRevocation is the file that stands for a revocation entry
// sync cannot write as it is (its name is no file name, its value is over
// the store's bound, or it holds a private key, which a file others can
// read must not): a revocation file
// that does not parse, which the stores read as they read an unusable
// entry in the store: every key refused (docs/design.md, "input skipped").
func unmirrorableRevocation(name, why string) syncFile {
	return unmirrorable(StoreRevoked, name, why, "every key")
}

// unmirrorablePin is the file that stands for a pin entry sync cannot
// write as it is (as unmirrorableRevocation): a pin file that does not
// parse, which the home's stores skip, refusing every host no other pin
// holds (knownhosts.Skipped), as the stores reading the store do for an
// entry they cannot take — never an address left unpinned.
func unmirrorablePin(name, why string) syncFile {
	return unmirrorable(StoreTrusted, name, why, "every host no other pin holds")
}

// unmirrorable is the stand-in file, in kind's directory, of the entry
// name sync cannot write as it is (why), saying what it refuses.
func unmirrorable(kind, name, why, refuses string) syncFile {
	sum := sha256.Sum256([]byte(name))
	return syncFile{
		rel:   kind + ".d/" + syncOwnPrefix + "unmirrorable-" + hex.EncodeToString(sum[:8]),
		val:   fmt.Appendf(nil, "keytool sync: the store's entry %s/%q %s: this file refuses %s until the entry is fixed\n", kind, name, why, refuses),
		stood: true,
	}
}

func contentSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// place writes the entry rel unless a file sync did not make (or that was
// changed since) is there.
func (s *syncer) place(m *syncManifest, rel string, val []byte) (kept int, err error) {
	path, shown := filepath.Join(string(s.home), rel), s.shown(rel)
	cur, fi, rerr := readRegular(path)
	if !errors.Is(rerr, fs.ErrNotExist) {
		// A file there is looked at again and written under the lock
		// keytool's writers of the directory take (keydir.EditFile:
		// authorize --remove of a key in a file of sync's): an edit made
		// between the look and the write would otherwise be lost under
		// sync's rename, a key its administrator was told removed
		// authorized again (TestSyncRewriteWaitsForAnEdit). A name with
		// no file is created only where none is yet (below), which needs
		// no lock: a first mirror of many entries takes none.
		unlock, _, err := keydir.LockWriters(filepath.Dir(path))
		if err != nil {
			return 0, err
		}
		defer unlock()
		cur, fi, rerr = readRegular(path)
	}
	switch {
	case rerr == nil && bytes.Equal(cur, val) && m.Files[rel] == "" && revocationOrPin(rel):
		// Someone else's revocation or pin that says the same: it stays
		// theirs, never removed by sync when the entry goes. A pin's
		// removal loosens too: an address pinned to nothing is one a
		// client asks about, or under accept-new takes any key for
		// (TestSyncKeepsOthersPins).
		return 0, nil
	case rerr == nil && bytes.Equal(cur, val):
		m.set(rel, contentSum(val)) // the same bytes: sync's from now on
		return 0, nil
	case rerr != nil && !errors.Is(rerr, fs.ErrNotExist):
		fmt.Fprintf(s.c.stderr, "keytool sync: %s: %s: left as it is\n", shown, termtext.Safe(rerr.Error()))
		return 1, nil
	case rerr == nil && m.Files[rel] == "":
		fmt.Fprintf(s.c.stderr, "keytool sync: %s was not written by sync and differs from %s/%s: left as it is (remove it to let sync write it)\n", shown, s.store, termtext.Safe(relKey(rel)))
		return 1, nil
	case rerr == nil && !m.owns(rel, contentSum(cur)):
		fmt.Fprintf(s.c.stderr, "keytool sync: %s was changed since sync wrote it (mode %04o): left as it is (remove it to let sync write it)\n", shown, fi.Mode().Perm())
		return 1, nil
	}
	if err := s.revisionSaved(m, rel); err != nil {
		return 0, err
	}
	if syncWriting != nil {
		syncWriting(path)
	}
	write := syncTag.Write // a temporary file a kill leaves is sync's to remove (removeLeft)
	if rerr != nil {
		// None was there: created only where none is yet, never over a
		// file another writer made since the look above (keytool revoke
		// on the home), which would otherwise be taken for sync's and
		// removed with the entry (TestSyncNeverWritesOverAFileMadeMeanwhile).
		write = syncTag.Create
	}
	if err := write(path, val, 0o644); errors.Is(err, fs.ErrExist) {
		m.drop(rel) // claimed, but not sync's
		fmt.Fprintf(s.c.stderr, "keytool sync: %s was made by another writer as sync was writing it: left as it is (remove it to let sync write it)\n", shown)
		return 1, nil
	} else if err != nil {
		return 0, err
	}
	verb := "wrote"
	if rerr == nil {
		verb = "updated"
	}
	m.set(rel, contentSum(val))
	fmt.Fprintf(s.c.stdout, "%s %s\n", verb, shown)
	return 0, nil
}

// syncWriting, if set, runs in place between its look at a file and its
// write (tests make another writer's file appear there).
var syncWriting func(path string)

// unplace removes the file of a vanished entry if it is still what sync
// wrote.
func (s *syncer) unplace(m *syncManifest, rel string) (kept int) {
	path, shown := filepath.Join(string(s.home), rel), s.shown(rel)
	unlock, _, err := keydir.LockWriters(filepath.Dir(path)) // as place
	if err != nil {
		fmt.Fprintf(s.c.stderr, "keytool sync: %s\n", termtext.Safe(err.Error()))
		return 1
	}
	defer unlock()
	cur, _, err := readRegular(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil || !m.owns(rel, contentSum(cur)):
		fmt.Fprintf(s.c.stderr, "keytool sync: %s is gone from the store, but the file was changed since sync wrote it: left as it is\n", shown)
		kept = 1
	default:
		if err := s.revisionSaved(m, rel); err != nil {
			fmt.Fprintf(s.c.stderr, "keytool sync: %s: not removed: %s\n", shown, termtext.Safe(err.Error()))
			return 1
		}
		if err := os.Remove(path); err != nil {
			fmt.Fprintf(s.c.stderr, "keytool sync: %s\n", termtext.Safe(err.Error()))
			return 1
		}
		fmt.Fprintf(s.c.stdout, "removed %s\n", shown)
		// The manifest forgets the file once the removal is durable
		// (settle).
		if s.unsettled == nil {
			s.unsettled = map[string][]string{}
		}
		dir := filepath.Dir(path)
		s.unsettled[dir] = append(s.unsettled[dir], rel)
		return 0
	}
	m.drop(rel)
	return kept
}

// settle makes the removals unplace made durable — each directory synced
// once, for all of them — and only then lets the manifest forget their
// files: brought back by a power loss, a file the manifest no longer
// names would be one sync does not own, and a key the store dropped
// would stay trusted. apply settles before each file it writes after a
// removal, so that removals and writes reach the disk in the order they
// were made (tighten first), and before the manifest is saved; a
// directory that cannot be synced keeps its files in the manifest (the
// next pass finds them gone and lets them go) and counts them as left.
func (s *syncer) settle(m *syncManifest) (kept int) {
	for _, dir := range slices.Sorted(maps.Keys(s.unsettled)) {
		rels := s.unsettled[dir]
		if err := atomicfile.SyncDir(dir); err != nil {
			fmt.Fprintf(s.c.stderr, "keytool sync: %d files removed from %s, but the directory could not be synced, so the removals may not survive a power loss: %s\n", len(rels), termtext.Safe(dir), termtext.Safe(err.Error()))
			kept += len(rels)
			continue
		}
		for _, rel := range rels {
			m.drop(rel)
		}
	}
	s.unsettled = nil
	return kept
}

// shown is the path of the home's file rel as sync's messages show it:
// quoted if it holds what a terminal acts on (termtext.Safe). An entry's
// name that is a file name (keydir.CheckFileName) may still hold a bidi
// control (U+202E), which would reorder the line that names its file.
func (s *syncer) shown(rel string) string {
	return termtext.Safe(filepath.Join(string(s.home), rel))
}

// relKey turns "authorized_keys.d/alice.json" into the store's
// "authorized_keys/alice.json".
func relKey(rel string) string {
	dir, name := filepath.Split(rel)
	return filepath.Base(dir)[:len(filepath.Base(dir))-2] + "/" + name
}

// readRegular reads a regular file (no link, FIFO or directory) through
// the file-trust reader.
func readRegular(path string) ([]byte, fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fi, fmt.Errorf("%w (sync writes regular files only)", trustfile.ErrNotRegular)
	}
	return trustfile.Read(path)
}

// syncExactNames is exactNames; a test makes it say that the home's file
// system folds names, which one here cannot.
var syncExactNames = exactNames

// sharedFiles returns the entries (KIND/NAME) that would share one file
// with another of entries on the home's file system, one that folds case
// or normalizes Unicode (exactNames says whether it does; none if not):
// Bob.json and bob.json. Written one after the other, the second would
// replace the first — a revocation lost, or an authorization taken for
// another's — as the edit commands' copy of the store refuses too
// (materialize, sameFileError). The file system tells, as it does there:
// each entry's file name is created exclusively in a directory made in its
// kind's (ext4's casefold is a directory's, which its subdirectories
// take), and a name found taken shares its file with the one that took it.
// A revocation or pin whose name only differs in case from sync's own names
// (keytool-sync-…, ASCII) could replace one of sync's files there: it is
// shared too.
func (s *syncer) sharedFiles(entries []StoreEntry) (map[string]bool, error) {
	if syncExactNames(s.home) {
		return nil, nil
	}
	shared := map[string]bool{}
	for _, kind := range StoreKinds {
		dir, err := os.MkdirTemp(kindDir(s.home, kind), syncScratchPrefix+"*") // a name every loader skips; one a kill leaves, removeLeft removes
		if err != nil {
			return nil, err
		}
		err = s.sharedNames(dir, kind, entries, shared)
		if rerr := os.RemoveAll(dir); err == nil {
			err = rerr
		}
		if err != nil {
			return nil, err
		}
	}
	return shared, nil
}

// sharedNames is sharedFiles for the entries of kind, in dir.
func (s *syncer) sharedNames(dir, kind string, entries []StoreEntry, shared map[string]bool) error {
	var made []string
	for _, e := range entries {
		if e.Kind != kind {
			continue
		}
		if f, ok, _ := entryFile(e, s.maxValue); !ok || f.stood {
			continue // no file of its name
		}
		if kind != StoreAuthorized && len(e.Name) >= len(syncOwnPrefix) && strings.EqualFold(e.Name[:len(syncOwnPrefix)], syncOwnPrefix) {
			shared[kind+"/"+e.Name] = true
			continue
		}
		path := filepath.Join(dir, e.Name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			shared[kind+"/"+e.Name] = true
			fi, err := os.Lstat(path)
			if err != nil {
				return err
			}
			for _, other := range made { // rare: a pair found costs a look at the others
				if ofi, err := os.Lstat(filepath.Join(dir, other)); err == nil && os.SameFile(fi, ofi) {
					shared[kind+"/"+other] = true
				}
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		made = append(made, e.Name)
	}
	return nil
}

// placeOwn claims and places a file of sync's own (a held copy), saying
// nothing of it: it is never the store's. It returns what place does.
func (s *syncer) placeOwn(m *syncManifest, f syncFile) (int, error) {
	if err := s.claim(m, []syncFile{f}); err != nil {
		return 0, err
	}
	out := s.c.stdout
	s.c.stdout = io.Discard
	defer func() { s.c.stdout = out }()
	return s.place(m, f.rel, f.val)
}
