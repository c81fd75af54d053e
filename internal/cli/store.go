package cli

import (
	"bytes"
	"context"
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

	"github.com/spf13/pflag"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
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
//     entries in a temporary home (materialize), and what they changed there
//     is written back in one transaction that compares the revision of
//     every entry it touches with the one read (Store.Apply): the same
//     bytes, the same checks (a name taken, a key under another name, a
//     revoked key) and nothing overwritten that changed meanwhile;
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
	// List returns every entry of every kind, consistent at one moment.
	List(ctx context.Context) ([]StoreEntry, error)
	// Apply makes all the changes or none: if any entry's revision is not
	// the one given, nothing is written and the error is a
	// *StoreConflictError.
	Apply(ctx context.Context, changes []StoreChange) error
	// Follow keeps a live view of the entries as feeds of the trust stores
	// until ctx ends (proxy, sync --watch).
	Follow(ctx context.Context, o FollowOptions) (Follower, error)
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

// register adds --store and the backends' flags to fs, hidden unless the
// command reads a store.
func (s *storeFlags) register(fs *pflag.FlagSet, hidden bool) {
	fs.StringVar(&s.url, "store", "", "keep the trust entries in the store at `URL` (etcd://HOST:PORT/PREFIX) instead of the home")
	fs.Lookup("store").Hidden = hidden
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
read (docs/fleet.md).`

// storeSchemes are the schemes keytool's own builds can open, and how to
// get the build that does.
var storeSchemes = map[string]string{
	"etcd":  etcdBuildAdvice,
	"etcds": etcdBuildAdvice,
}

const etcdBuildAdvice = `this keytool is built without etcd support (it keeps the core module free of
etcd and gRPC). Build the keytool of the etcd module, the same command line
with etcd stores, from a keytool source checkout:
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
	u, err := url.Parse(s.url)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, nil, usagef("--store %q: give a URL like etcd://HOST:PORT/PREFIX", redactURL(s.url))
	}
	if open := s.openers[u.Scheme]; open != nil {
		return open, u, nil
	}
	if advice, ok := storeSchemes[u.Scheme]; ok {
		return nil, nil, fmt.Errorf("--store %s: %s", u.Redacted(), advice)
	}
	return nil, nil, usagef("--store %q: unknown kind of store %q", u.Redacted(), u.Scheme)
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
// store of --store instead of the home: on a temporary home that holds
// the store's entries, whose changes are then written back to the store
// in one transaction, comparing every touched entry's revision with the
// one read. What the command prints names the store's entries, not the
// temporary files, and is printed only once the transaction is done.
func (c *cli) inStore(identity bool, run func() error) (err error) {
	ctx := context.Background()
	st, err := c.store.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	entries, err := st.List(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "keytool-store-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	defer removeOnSignal(tmp)()
	read, err := materialize(home.Dir(tmp), entries)
	if err != nil {
		return fmt.Errorf("%s: %w", strings.TrimSuffix(c.store.url, "/"), err)
	}
	// The identity stays the home's (trust-host connects with it).
	if identity && c.identity == "" {
		if p, perr := c.identityPath(); perr == nil {
			c.identity = p
		}
	}
	stdout, stderr := c.stdout, c.stderr
	var out bytes.Buffer
	names := newNameRewriter(tmp, strings.TrimSuffix(c.store.url, "/"))
	c.stdout, c.stderr = names.writer(&out), names.writer(stderr)
	c.home, c.homeSet = tmp, false
	defer func() { c.stdout, c.stderr = stdout, stderr }()
	if err = run(); err != nil {
		_, _ = out.WriteTo(stdout)
		return names.error(err)
	}
	changes, err := changesOf(home.Dir(tmp), read)
	if err != nil {
		return err
	}
	if len(changes) > 0 {
		if err := st.Apply(ctx, changes); err != nil {
			var conflict *StoreConflictError
			if errors.As(err, &conflict) {
				conflict.Store = c.store.url
			}
			return err
		}
	}
	_, err = out.WriteTo(stdout)
	return err
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

// materialize writes entries into h's .d directories, mode 0644, and
// returns them by path, each with the file's stamp once written. Entries
// whose names are no file name (the stores report them when they read the
// store) are left out: no command changes them. The copy is read once, so
// it gets no admin index (building one would cost more than it saves): a
// file where the index directory would be makes the stores load in full.
func materialize(h home.Dir, entries []StoreEntry) (map[string]copied, error) {
	for _, kind := range StoreKinds {
		if err := os.MkdirAll(kindDir(h, kind), 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(h.Index(), nil, 0o600); err != nil {
		return nil, err
	}
	var todo []StoreEntry
	for _, e := range entries {
		if slices.Contains(StoreKinds, e.Kind) && keydir.CheckName(e.Name) == nil && !keydir.Ignored(e.Name) {
			todo = append(todo, e)
		}
	}
	// One after the other: creating files in one directory does not go
	// faster on more goroutines (measured: slower).
	read := make(map[string]copied, len(todo))
	for _, e := range todo {
		path := filepath.Join(kindDir(h, e.Kind), e.Name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			// A file system that folds case or normalizes names holds one
			// file for two entries: the command would see one, and the
			// write-back would remove or overwrite the other.
			return nil, fmt.Errorf("%s/%s: another entry of the store has the same name on this file system (differing only in case or Unicode normalization): rename one of them", e.Kind, e.Name)
		}
		if err != nil {
			return nil, err
		}
		_, err = f.Write(e.Value)
		fi, serr := f.Stat()
		if cerr := f.Close(); err == nil {
			err = errors.Join(serr, cerr)
		}
		if err != nil {
			return nil, err
		}
		read[path] = copied{e, trustfile.StampOf(fi)}
	}
	return read, nil
}

// copied is an entry as materialize wrote it.
type copied struct {
	StoreEntry
	stamp trustfile.Stamp // of the file once written: unchanged, the file was not touched
}

// changesOf compares h's .d directories with what materialize wrote: a
// file whose stamp (inode, size, times, mode) is the one written was not
// touched (keytool replaces files by renaming a new one over them, which
// changes the inode); the others are read and compared.
func changesOf(h home.Dir, read map[string]copied) ([]StoreChange, error) {
	var changes []StoreChange
	seen := map[string]bool{}
	for _, kind := range StoreKinds {
		dir := kindDir(h, kind)
		des, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		for _, de := range des {
			if !de.Type().IsRegular() || keydir.Ignored(de.Name()) {
				continue
			}
			path := filepath.Join(dir, de.Name())
			seen[path] = true
			old, ok := read[path]
			if ok {
				if fi, err := os.Lstat(path); err == nil && trustfile.StampOf(fi) == old.stamp {
					continue
				}
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, err
			}
			if ok && bytes.Equal(old.Value, data) {
				continue
			}
			changes = append(changes, StoreChange{Kind: kind, Name: de.Name(), Value: data, Revision: old.Revision})
		}
	}
	for path, e := range read {
		if !seen[path] {
			changes = append(changes, StoreChange{Kind: e.Kind, Name: e.Name, Revision: e.Revision})
		}
	}
	slices.SortFunc(changes, func(a, b StoreChange) int { return strings.Compare(a.Kind+"/"+a.Name, b.Kind+"/"+b.Name) })
	return changes, nil
}

// nameRewriter rewrites the temporary home's paths into the store's names:
// TMP/authorized_keys.d/alice.json → etcd://host/prefix/authorized_keys/alice.json.
type nameRewriter struct{ r *strings.Replacer }

func newNameRewriter(tmp, store string) nameRewriter {
	var pairs []string
	h := home.Dir(tmp)
	for _, kind := range StoreKinds {
		pairs = append(pairs, kindDir(h, kind), store+"/"+kind)
	}
	pairs = append(pairs, tmp, store)
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
