package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/internal/trustfile"
)

// Trust stores elsewhere than the home (--store URL; docs/fleet.md,
// "Command line"). The core keytool knows none: a build with more trust
// sources (the etcd module's keytool) registers them with RegisterStore
// before calling Main. A store holds named entries of three kinds, each
// the bytes of the file of that name in the home's .d directory of that
// kind, so that every command reads and writes them with the code it uses
// for files:
//
//   - authorize, revoke and trust-host run on a private copy of the store's
//     entries in a home of their own (the mirror kept in the user's home,
//     storemirror.go, else a temporary one: materialize), and what they
//     changed there is written back in one transaction that compares the
//     revision of every entry it touches with the one read (Store.Apply):
//     the same bytes, the same checks (a name taken, a key under another
//     name, a revoked key) and nothing overwritten that changed meanwhile;
//   - proxy reads the store as feeds of its trust stores (Store.Follow);
//   - sync mirrors it into a home's .d directories for programs that only
//     read files.

// The kinds of entry of a Store: the names of the home's .d directories
// without ".d".
const (
	StoreAuthorized = "authorized_keys"
	StoreRevoked    = "revoked_keys"
	StoreTrusted    = "trusted_hosts"
)

// StoreKinds lists the kinds of entry, in the order they are listed.
var StoreKinds = []string{StoreAuthorized, StoreRevoked, StoreTrusted}

// kindDir is the home's directory of entries of kind.
func kindDir(h home.Dir, kind string) string {
	switch kind {
	case StoreAuthorized:
		return h.AuthorizedDir()
	case StoreRevoked:
		return h.RevokedDir()
	}
	return h.TrustedDir()
}

// StoreEntry is one entry of a Store: what the file Name in the home's
// directory of its kind would hold.
type StoreEntry struct {
	Kind, Name string
	Value      []byte
	// Revision is the store's revision of the entry as listed (etcd: its
	// ModRevision); Apply compares it.
	Revision int64
}

// StoreListing is a Store's entries at one moment: without their values
// (ListRevisions), or with them (List).
type StoreListing struct {
	Entries []StoreEntry // Revision set; Value nil from ListRevisions
	// Revision is the store's revision the listing is consistent at:
	// never lower at a later listing of the same store, unless it was
	// restored from a backup.
	Revision int64
	// Identity says which store answered (etcd: its cluster ID): the
	// mirror of another is not used.
	Identity string
	// Count is how many keys the store's range holds (StoreDelta.Count).
	Count int64
}

// StoreChange is one change of an Apply.
type StoreChange struct {
	Kind, Name string
	Value      []byte // nil: delete the entry
	// Revision is the entry's revision when it was read: 0 means it did
	// not exist, and must not exist when the change is made (create only);
	// otherwise it must still be at this revision.
	Revision int64
}

// StoreConflictError means an entry changed in the store between the
// read and the write: nothing was written.
type StoreConflictError struct {
	Store   string // where, as the user named it
	Changes []StoreChange
}

func (e *StoreConflictError) Error() string {
	var names []string
	for _, c := range e.Changes {
		names = append(names, c.Kind+"/"+c.Name)
	}
	return fmt.Sprintf("%s changed while keytool was writing it (%s created, changed or removed by someone else since it was read); nothing was written: look at the entries again and run the command again",
		e.Store, strings.Join(names, ", "))
}

// A Store is a trust store outside the home, opened from a --store URL by
// the backend registered for its scheme.
type Store interface {
	// List returns every entry of every kind with its value, consistent
	// at one moment, and that moment (Revision; 0 if the store cannot
	// tell) and the store (Identity): keytool sync --watch never mirrors a
	// list older than what it mirrored last (syncer.mirrorNow).
	List(ctx context.Context) (StoreListing, error)
	// ListRevisions returns every entry of every kind without its value
	// (Value nil), consistent at one moment, and that moment: for the
	// mirror of the store's entries that an edit keeps in the home, which
	// then follows the store's changes since that moment (StoreHistory).
	ListRevisions(ctx context.Context) (StoreListing, error)
	// Values reads the Value of each of entries as it was at revision (a
	// ListRevisions's), all at once.
	Values(ctx context.Context, revision int64, entries []StoreEntry) error
	// Apply makes all the changes or none: if any entry's revision is not
	// the one given, nothing is written and the error is a
	// *StoreConflictError. It returns the store's revision of the write.
	Apply(ctx context.Context, changes []StoreChange) (revision int64, err error)
	// Follow keeps a live view of the entries as feeds of the trust stores
	// until ctx ends (proxy, sync --watch).
	Follow(ctx context.Context, o FollowOptions) (Follower, error)
	// MaxValue is the largest value the live view (Follow) takes; a
	// larger entry grants nothing there (under revoked_keys, refuses
	// every key), and sync mirrors it as such. 0: no bound.
	MaxValue() int
	Close() error
}

// FollowOptions are what a Store's live view may use of the command's.
type FollowOptions struct {
	Home   string       // the home: a backend keeps its cache there
	Logger *slog.Logger // the command's log
}

// A Follower is a Store's live view.
type Follower interface {
	// Feed is the entries of kind as a feed (keydir.Feed: authkeys and
	// knownhosts Options.Feeds and RevokedFeeds).
	Feed(kind string) keydir.Feed
	Close() error
}

// A StoreState is the State of a Follower's views (keydir.FeedView.State)
// that says the store's revision they hold (etcd: the revision of the last
// change the view holds), comparable with List's: keytool sync --watch
// never mirrors from a view older than the list it mirrored last.
type StoreState interface {
	Revision() int64
}

// A MeteredFollower is a Follower with Prometheus metrics of its own (the
// etcd view's staleness, revision and relists): keytool proxy
// --metrics-listen serves them on /metrics with the proxy's.
type MeteredFollower interface {
	Follower
	Collector() prometheus.Collector
}

// Usagef is a mistake in the command line (exit 2), for a backend's
// flags.
func Usagef(format string, args ...any) error { return usagef(format, args...) }

// StoreOpener opens the store at u with the values of the backend's flags.
type StoreOpener func(ctx context.Context, u *url.URL) (Store, error)

// StoreBackend is a kind of store a build of keytool can open.
type StoreBackend struct {
	// Schemes are the URL schemes it opens ("etcd", "etcds").
	Schemes []string
	// Flags registers the backend's flags (its connection's) on a command's
	// flag set and returns the opener that reads them. It is called for
	// every flag set of a run, so that no value outlives the run.
	Flags func(fs *pflag.FlagSet) StoreOpener
}

var (
	backendsMu sync.Mutex
	backends   []StoreBackend
)

// RegisterStore adds a backend for --store URLs. A build of keytool calls
// it before Main (the etcd module's keytool does).
func RegisterStore(b StoreBackend) {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	backends = append(backends, b)
}

func registeredBackends() []StoreBackend {
	backendsMu.Lock()
	defer backendsMu.Unlock()
	return slices.Clone(backends)
}

// storeFlags is --store and the flags of the registered backends.
type storeFlags struct {
	url     string
	fromArg bool                   // url is sync's STORE-URL argument, not --store
	openers map[string]StoreOpener // by scheme, bound to this run's flags
	names   map[string]bool        // the backends' flag names
	flags   []*pflag.Flag          // the backends' flags on the command's flag set
}

// given spells --store and the backend flags given, for the commands
// keytool suggests (homeFlag).
func (s *storeFlags) given() string {
	if s.url == "" {
		return ""
	}
	b := " --store " + shellQuote(s.url)
	for _, f := range s.flags {
		if f.Changed {
			b += " --" + f.Name + " " + shellQuote(f.Value.String())
		}
	}
	return b
}

// register adds --store and the backends' flags to fs, each hidden unless
// the command takes it: a command that takes the store as its argument
// (sync) takes the backends' flags, not --store.
func (s *storeFlags) register(fs *pflag.FlagSet, hideStore, hidden bool) {
	fs.StringVar(&s.url, "store", "", "keep the trust entries in the store at `URL` (etcd://HOST:PORT/PREFIX) instead of the home")
	fs.Lookup("store").Hidden = hideStore
	if s.openers == nil {
		s.openers, s.names = map[string]StoreOpener{}, map[string]bool{}
	}
	s.flags = nil // this flag set's: the command's, registered after the root's
	for _, b := range registeredBackends() {
		before := map[string]bool{}
		fs.VisitAll(func(f *pflag.Flag) { before[f.Name] = true })
		open := b.Flags(fs)
		fs.VisitAll(func(f *pflag.Flag) {
			if !before[f.Name] {
				s.names[f.Name] = true
				s.flags = append(s.flags, f)
				f.Hidden = hidden
			}
		})
		for _, scheme := range b.Schemes {
			s.openers[scheme] = open
		}
	}
}

// storeEditHelp ends the help of the commands that edit a store.
const storeEditHelp = `

--store URL (etcd://HOST:PORT/PREFIX, in the etcd build of keytool): the
entries are the store's, PREFIX/KIND/NAME instead of HOME/KIND.d/NAME, with
the same names, bytes and checks; the change is written in one transaction
that fails, writing nothing, if an entry it touches changed since it was
read. An entry the stores reading the store do not take (a value over
their bound) grants nothing: --list reports it as a skipped file, --remove
NAME removes it, and a new entry of its name is refused. The home, if it
exists, keeps a copy of the entries between commands (HOME/.store-mirror),
so that the next one reads only what changed in the store (docs/fleet.md).`

// storeSchemes are the schemes keytool's own builds can open, and how to
// get the build that does.
var storeSchemes = map[string]string{
	"etcd":  etcdBuildAdvice,
	"etcds": etcdBuildAdvice,
}

const etcdBuildAdvice = `this keytool is built without etcd support
(it keeps the core module free of etcd and gRPC). Build the keytool of the
etcd module, the same command line with etcd stores, from a keytool source
checkout:
  cd etcd && go build -o keytool ./cmd/keytool
(go install …/etcd/cmd/keytool@VERSION does not work: that module's go.mod
replaces the core module with its checkout); docs/fleet.md, "Command line"`

// open opens the store --store names.
func (s *storeFlags) open(ctx context.Context) (Store, error) {
	open, u, err := s.opener()
	if err != nil {
		return nil, err
	}
	return open(ctx, u)
}

// check refuses, before anything else runs, a --store this build cannot
// open, so that the user learns it first.
func (s *storeFlags) check() error {
	if s.url == "" {
		return nil
	}
	_, _, err := s.opener()
	return err
}

// opener returns the backend's opener for --store, or why there is none.
func (s *storeFlags) opener() (StoreOpener, *url.URL, error) {
	// Name the URL as the user gave it: sync takes it as its argument,
	// where "--store" would name a flag not given.
	given := "--store "
	if s.fromArg {
		given = ""
	}
	u, err := url.Parse(s.url)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, nil, usagef("%s%q: give a URL like etcd://HOST:PORT/PREFIX", given, redactURL(s.url))
	}
	if open := s.openers[u.Scheme]; open != nil {
		return open, u, nil
	}
	if advice, ok := storeSchemes[u.Scheme]; ok {
		return nil, nil, fmt.Errorf("%s%s: %s", given, u.Redacted(), advice)
	}
	return nil, nil, usagef("%s%q: unknown kind of store %q", given, u.Redacted(), u.Scheme)
}

// redactURL hides the password of a URL that may not parse, before it
// is printed (a terminal's scrollback, a unit's log).
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	if i, j := strings.Index(raw, "://"), strings.LastIndex(raw, "@"); i >= 0 && j > i {
		return raw[:i+3] + "xxxxx" + raw[j:]
	}
	return raw
}

// inStore runs an editing command (authorize, revoke, trust-host) on the
// store of --store instead of the home: on a home that holds the store's
// entries (the mirror kept in the home, else a temporary one), whose
// changes are then written back to the store in one transaction,
// comparing every touched entry's revision with the one read. What the
// command prints names the store's entries, not the files, and is printed
// only once the transaction is done; if the command fails, what it printed
// is, but not the removals of the entries the copy does not hold
// (removeUnheld), which are not written then.
func (c *cli) inStore(identity bool, run func() error) (err error) {
	ctx := context.Background()
	st, err := c.store.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	where := strings.TrimSuffix(c.store.url, "/")
	work, read, m, done, err := c.storeHome(ctx, st, where)
	if err != nil {
		return err
	}
	defer done()
	// The identity stays the home's (trust-host connects with it), read
	// as that home's (keyHome), not as a key given with -i.
	if identity && c.identity == "" {
		c.identityHome = c.home
	}
	stdout, stderr := c.stdout, c.stderr
	var out, removed bytes.Buffer
	names := newNameRewriter(work, where)
	c.stdout, c.stderr = names.writer(&out), names.writer(stderr)
	c.storeRemoved = names.writer(&removed)
	c.home, c.storeCopy = work, true
	defer func() { c.stdout, c.stderr, c.storeCopy, c.storeRemoved = stdout, stderr, false, nil }()
	var o *observer
	if m != nil {
		o = m.observe()
	}
	runErr := run()
	if runErr != nil && m == nil {
		_, _ = out.WriteTo(stdout)
		return names.error(runErr)
	}
	var changes []StoreChange
	if m != nil {
		changes, err = m.changes(ctx, st, o)
	} else {
		changes, _, err = changesOf(home.Dir(work), read)
	}
	if err == nil {
		changes = ownRemovals(changes, c.storeRemovals)
		err = standInsUnchanged(changes)
	}
	if err == nil {
		err = unheldWrittenOver(home.Dir(work), changes)
	}
	if err == nil {
		changes = append(changes, c.storeRemovals...)
	}
	if err == nil && runErr == nil && len(changes) > 0 {
		var rev int64
		rev, err = st.Apply(ctx, changes)
		if m != nil && err == nil {
			// If nothing else was written in between, the files hold the
			// store's entries at the write's revision, and the next
			// command, if nothing is written meanwhile, asks for no change.
			m.applied(changes, rev)
		}
	}
	if m != nil {
		// Kept if it holds the store's entries: a command refused before
		// it changed anything, or its change written.
		m.settle(err == nil && (runErr == nil || len(changes) == 0))
	}
	if runErr != nil {
		_, _ = out.WriteTo(stdout)
		return names.error(runErr)
	}
	if err != nil {
		var conflict *StoreConflictError
		if errors.As(err, &conflict) {
			conflict.Store = c.store.url
		}
		var hidden *HiddenEntryError
		if errors.As(err, &hidden) {
			hidden.Fix = c.removeUnheldCommand(hidden.Kind, hidden.Name)
		}
		return err
	}
	// The removals of entries the copy did not hold come first: the
	// command makes them before its own (removeUnheld).
	if _, err = removed.WriteTo(stdout); err != nil {
		return err
	}
	_, err = out.WriteTo(stdout)
	return err
}

// storeHome makes the home the command runs on: the store's mirror in
// the home if it can be had (storemirror.go), else a temporary home that
// holds a copy of every entry; done unlocks the one or removes the other.
func (c *cli) storeHome(ctx context.Context, st Store, where string) (dir string, read map[string]copied, m *mirror, done func(), err error) {
	if _, ok := st.(StoreHistory); ok {
		if m = openMirror(c.home, where); m != nil {
			if err = m.sync(ctx, st); err != nil {
				m.close()
				return "", nil, nil, nil, fmt.Errorf("%s: %w", where, err)
			}
			return m.dir, nil, m, m.close, nil
		}
	}
	l, err := st.List(ctx)
	if err != nil {
		return "", nil, nil, nil, err
	}
	entries := l.Entries
	tmp, err := os.MkdirTemp("", "keytool-store-*")
	if err != nil {
		return "", nil, nil, nil, err
	}
	stop := removeOnSignal(tmp)
	done = func() {
		stop()
		os.RemoveAll(tmp)
	}
	if read, err = materialize(home.Dir(tmp), entries, false, st.MaxValue()); err != nil {
		done()
		return "", nil, nil, nil, fmt.Errorf("%s: %w", where, err)
	}
	return tmp, read, nil, done, nil
}

// removeOnSignal removes dir if the process is interrupted (SIGINT,
// SIGTERM, SIGHUP: a prompt answered with Ctrl-C, a closed terminal)
// before the returned stop is called, and then dies of the signal as it
// would have: the temporary copy of a store's entries must not outlive
// the command.
func removeOnSignal(dir string) (stop func()) {
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	for _, sig := range []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		if !signal.Ignored(sig) { // under nohup, SIGHUP stays ignored
			signal.Notify(sigs, sig)
		}
	}
	go func() {
		select {
		case sig := <-sigs:
			os.RemoveAll(dir)
			signal.Stop(sigs) // the default action again
			if p, err := os.FindProcess(os.Getpid()); err == nil {
				_ = p.Signal(sig)
			}
		case <-done:
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

// materialize writes entries into h's .d directories, mode 0644, as the
// stores reading the store take them (heldFile: an entry they take no
// file of, or one standing for it), and returns them by path, each with
// the file's stamp once written, and the note of each entry it holds
// otherwise than as its own file (noteOf). A temporary copy is read
// once, so it gets no admin index (building one would cost more than it
// saves): unless indexed, a file where the index directory would be makes
// the stores load in full. The mirror, kept, gets one.
func materialize(h home.Dir, entries []StoreEntry, indexed bool, maxValue int) (map[string]copied, error) {
	for _, kind := range StoreKinds {
		if err := os.MkdirAll(kindDir(h, kind), 0o700); err != nil {
			return nil, err
		}
	}
	if !indexed {
		if err := os.WriteFile(h.Index(), nil, 0o600); err != nil {
			return nil, err
		}
	}
	// One after the other: creating files in one directory does not go
	// faster on more goroutines (measured: slower).
	read := make(map[string]copied, len(entries))
	for _, e := range entries {
		if rel, note, ok := noteOf(e, maxValue); ok {
			// Not in read: a note is no entry (changesOf skips it).
			if err := os.WriteFile(filepath.Join(string(h), rel), note, 0o600); err != nil {
				return nil, err
			}
		}
		held, ok := heldFile(h, e, maxValue)
		if !ok {
			continue
		}
		path := filepath.Join(kindDir(h, held.Kind), held.Name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			return nil, sameFileError(e)
		}
		if err != nil {
			return nil, err
		}
		_, err = f.Write(held.Value)
		fi, serr := f.Stat()
		if cerr := f.Close(); err == nil {
			err = errors.Join(serr, cerr)
		}
		if err != nil {
			return nil, err
		}
		read[path] = copied{entryOf(held), sha256.Sum256(held.Value), stampOf(fi)}
	}
	return read, nil
}

// heldFile is the file by which a copy of the store in the home h holds
// entry e, as sync mirrors it (entryFile): an entry whose own file the
// stores reading the store would not take as it is — a name no file has,
// a value over their bound (maxValue), a name the home's loader skips —
// has none, or, a revocation, one of sync's names (keytool-sync-…): the
// stand-in that refuses every key, or its value under another name. held
// is that file as an entry (its Kind, the file's Name, the Value it
// holds, e's Revision); false if there is none.
func heldFile(h home.Dir, e StoreEntry, maxValue int) (held StoreEntry, ok bool) {
	if !slices.Contains(StoreKinds, e.Kind) {
		return StoreEntry{}, false
	}
	f, ok, _ := entryFile(e, maxValue)
	if !ok {
		return StoreEntry{}, false
	}
	return StoreEntry{Kind: e.Kind, Name: filepath.Base(f.rel), Value: f.val, Revision: e.Revision}, true
}

// StandInChangedError refuses a command that changed, made or removed a
// file of the store's copy named as sync names its own (keytool-sync-…):
// such a file stands for an entry the stores reading the store do not
// take as it is (heldFile), and is no entry to write.
type StandInChangedError struct {
	Kind, Name string
}

func (e *StandInChangedError) Error() string {
	return fmt.Sprintf("%s/%s: a file that stands for an entry of the store the stores reading it do not take as it is (a name that is no file name or that they skip, or a value over their bound), or a name keytool keeps for such files: the command may not change it; nothing was written to the store", e.Kind, termtext.Safe(e.Name))
}

// standInsUnchanged refuses changes to the files heldFile names as sync
// names its own.
func standInsUnchanged(changes []StoreChange) error {
	for _, c := range changes {
		if strings.HasPrefix(c.Name, syncOwnPrefix) {
			return &StandInChangedError{Kind: c.Kind, Name: c.Name}
		}
	}
	return nil
}

// mirrored says whether e is an entry whose name a file can have (the
// mirror's manifest names it as its witness).
func mirrored(e StoreEntry) bool {
	return slices.Contains(StoreKinds, e.Kind) && keydir.CheckFileName(e.Name) == nil && !keydir.Ignored(e.Name)
}

// sameFileError: a file system that folds case or normalizes names holds
// one file for two entries: the command would see one, and the write-back
// would remove or overwrite the other.
func sameFileError(e StoreEntry) error {
	return fmt.Errorf("%s/%s: %s: rename one of them", e.Kind, e.Name, sameFileName)
}

// sameFileName says why two entries cannot each have a file of their
// name: sameFileError, and sync's report (syncer.sharedFiles).
const sameFileName = "another entry of the store has the same name on this file system (differing only in case or Unicode normalization)"

// entryOf is e without its value.
func entryOf(e StoreEntry) StoreEntry {
	return StoreEntry{Kind: e.Kind, Name: e.Name, Revision: e.Revision}
}

// stampOf is a file's trustfile.Stamp as bytes, to keep in the mirror's
// manifest.
func stampOf(fi fs.FileInfo) string {
	b, _ := trustfile.StampOf(fi).AppendBinary(nil)
	return string(b)
}

// copied is an entry as materialize (or the mirror) wrote it.
type copied struct {
	StoreEntry          // no Value; Revision 0: not known (the mirror reads it again)
	sum        [32]byte // SHA-256 of the value
	stamp      string   // of the file once written: unchanged, the file was not touched
}

// changesOf compares h's .d directories with what materialize wrote: a
// file whose stamp (inode, size, times, mode) is the one written was not
// touched (keytool replaces files by renaming a new one over them, which
// changes the inode); the others are read and compared. now is every
// file as it is: the entries not changed keep their revision.
func changesOf(h home.Dir, read map[string]copied) (changes []StoreChange, now map[string]copied, err error) {
	now = make(map[string]copied, len(read))
	for _, kind := range StoreKinds {
		dir := kindDir(h, kind)
		files, err := statDir(dir) // before the reads: a change after it shows in the next stamp
		if err != nil {
			return nil, nil, err
		}
		for _, de := range files {
			if errors.Is(de.err, fs.ErrNotExist) || de.err == nil && !de.fi.Mode().IsRegular() || keydir.Ignored(de.name) {
				continue
			}
			if de.err != nil {
				return nil, nil, de.err
			}
			path, fi := filepath.Join(dir, de.name), de.fi
			old, ok := read[path]
			if ok && stampOf(fi) == old.stamp {
				now[path] = old
				continue
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, nil, err
			}
			cur := copied{StoreEntry{Kind: kind, Name: de.name}, sha256.Sum256(data), stampOf(fi)}
			if ok && old.sum == cur.sum {
				cur.Revision = old.Revision
				now[path] = cur
				continue
			}
			now[path] = cur
			changes = append(changes, StoreChange{Kind: kind, Name: de.name, Value: data, Revision: old.Revision})
		}
	}
	for path, e := range read {
		if _, ok := now[path]; !ok {
			changes = append(changes, StoreChange{Kind: e.Kind, Name: e.Name, Revision: e.Revision})
		}
	}
	slices.SortFunc(changes, func(a, b StoreChange) int { return strings.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name) })
	return changes, now, nil
}

// statted is a directory entry and its lstat.
type statted struct {
	name string
	fi   fs.FileInfo
	err  error
}

// statDir lists dir, unsorted, with each entry's lstat, a few at a time:
// at 100,000 entries, twice as fast as os.ReadDir and os.Lstat one after
// the other (the sort, and the path walked for each).
func statDir(dir string) ([]statted, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	des, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]statted, len(des))
	const workers = 4
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(des); i += workers {
				out[i].name = des[i].Name()
				out[i].fi, out[i].err = des[i].Info()
			}
		})
	}
	wg.Wait()
	return out, nil
}

// nameRewriter rewrites the store's home's paths into the store's names:
// TMP/authorized_keys.d/alice.json → etcd://host/prefix/authorized_keys/alice.json.
type nameRewriter struct{ r *strings.Replacer }

func newNameRewriter(tmp, store string) nameRewriter {
	dirs := []string{tmp}
	if abs, err := filepath.Abs(tmp); err == nil && abs != tmp {
		// A home named relative to the working directory (-H home: the
		// mirror's) is named absolute too by what the command prints.
		dirs = []string{abs, tmp}
	}
	var pairs []string
	for _, dir := range dirs {
		h := home.Dir(dir)
		for _, kind := range StoreKinds {
			pairs = append(pairs, kindDir(h, kind), store+"/"+kind)
		}
		pairs = append(pairs, dir, store)
	}
	return nameRewriter{strings.NewReplacer(pairs...)}
}

// writer rewrites each Write (a message: keytool writes each with one
// call, so no path is cut in two).
func (n nameRewriter) writer(w io.Writer) io.Writer { return namesWriter{n, w} }

func (n nameRewriter) error(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	var ue *usageError
	switch {
	case errors.As(err, &ee):
		return err
	case errors.As(err, &ue):
		return &usageError{n.r.Replace(ue.msg)}
	}
	return renamedError{msg: n.r.Replace(err.Error()), err: err}
}

// renamedError is err with the store's names in its message; it unwraps
// to err, so that the advice for it is still found.
type renamedError struct {
	msg string
	err error
}

func (e renamedError) Error() string { return e.msg }
func (e renamedError) Unwrap() error { return e.err }

type namesWriter struct {
	n nameRewriter
	w io.Writer
}

func (w namesWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(w.w, w.n.r.Replace(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// followStore opens --store and its live view, both kept until ctx ends.
func (c *cli) followStore(ctx context.Context, log *slog.Logger) (Follower, error) {
	st, err := c.store.open(ctx)
	if err != nil {
		return nil, err
	}
	f, err := st.Follow(ctx, FollowOptions{Home: c.home, Logger: log})
	if err != nil {
		st.Close()
		return nil, err
	}
	context.AfterFunc(ctx, func() {
		f.Close()
		st.Close()
	})
	return f, nil
}
