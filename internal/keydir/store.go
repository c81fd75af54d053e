package keydir

import (
	"context"
	"log/slog"
	"time"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/jwk"
)

// Options say where a trust store's keys are: the one set of options of
// authkeys and knownhosts (each package names it Options). Every path is
// optional: a file or directory that does not exist is an empty set.
type Options struct {
	Files        []string // single files of keys (authorized_keys.json, trusted_hosts.json, …)
	Dirs         []string // directories of key files; the stores add to the first
	RevokedFiles []string // single files of refused keys
	RevokedDirs  []string // directories of refused keys
	// Feeds and RevokedFeeds are entries from elsewhere than files (an
	// etcd prefix): each is read like a directory of key files, through
	// the same parser and rules (Feed).
	Feeds        []Feed
	RevokedFeeds []Feed

	// Home is the top of the trust tree: strict modes check every
	// directory from a file up to it, and a file reached through a link
	// outside it up to the root (docs/design.md, "One file-trust rule").
	// Empty: each file's own directory is the top.
	Home string
	// NoStrictModes turns off the refusal of files and directories that
	// group or others may write to, or that another user owns. Use it only
	// where the file system's permissions mean nothing (some containers).
	NoStrictModes bool
	// Logger receives the problems (once per change) and watching trouble;
	// nil discards them.
	Logger *slog.Logger
	// Debounce and Rescan tune watching; zero means the defaults of 50 ms
	// and one minute, a negative Rescan turns the rescan off.
	Debounce time.Duration
	Rescan   time.Duration
	// Index is the directory of the admin index, which admin commands
	// load through (LoadFor) to read only the files they need; empty:
	// none. Watching stores use it only for a server's first decisions
	// (Loader.LoadProved: authkeys.OpenEarly).
	Index string
}

// HomeOptions are the options of a store in the keytool home dir: its
// single files and .d directory, and the home's revocation inputs, which
// every store reads.
func HomeOptions(dir string, files []string, keysDir string) Options {
	h := home.Dir(dir)
	return Options{
		Files:        files,
		Dirs:         []string{keysDir},
		RevokedFiles: h.RevokedFiles(),
		RevokedDirs:  []string{h.RevokedDir()},
		Home:         dir,
		Index:        h.Index(),
	}
}

// sources lists the options' paths as the loader's sources.
func (o Options) sources() []Source {
	var out []Source
	for _, p := range o.Files {
		out = append(out, Source{Path: p})
	}
	for _, p := range o.Dirs {
		out = append(out, Source{Path: p, Dir: true})
	}
	for _, p := range o.RevokedFiles {
		out = append(out, Source{Path: p, Revocation: true})
	}
	for _, p := range o.RevokedDirs {
		out = append(out, Source{Path: p, Dir: true, Revocation: true})
	}
	for _, f := range o.Feeds {
		out = append(out, Source{Path: f.Name(), Dir: true, Feed: f})
	}
	for _, f := range o.RevokedFeeds {
		out = append(out, Source{Path: f.Name(), Dir: true, Revocation: true, Feed: f})
	}
	return out
}

// Lifecycle is what both trust stores do alike: load once or keep
// watching, reload, tell subscribers, close. A store embeds it, so that
// its methods are the store's.
type Lifecycle[T any] struct {
	l *Loader[T]
}

// NewLifecycle returns the lifecycle of a store reading opts, converting
// each key with convert, indexing each new snapshot with onReload, and
// telling entries' keys by keyOf (for OnChange).
func NewLifecycle[T any](opts Options, convert func(src SourceRef, path string, k *jwk.Key) (T, error), keyOf func(*T) [32]byte, onReload func(*Snapshot[T])) Lifecycle[T] {
	return Lifecycle[T]{l: New(Config[T]{
		Sources:       opts.sources(),
		Home:          opts.Home,
		NoStrictModes: opts.NoStrictModes,
		Convert:       convert,
		OnReload:      onReload,
		KeyOf:         keyOf,
		Logger:        opts.Logger,
		Debounce:      opts.Debounce,
		Rescan:        opts.Rescan,
		Index:         opts.Index,
	})}
}

// IndexBy says what the admin index maps to an entry's file (the key, and
// the names or addresses the store's admin lookups use); call it before
// LoadFor.
func (lc Lifecycle[T]) IndexBy(terms func(f *File[T], i int) []Term) { lc.l.cfg.Terms = terms }

// KeepRare says what an entry carries beyond T (Config.Rare); call it
// before Start.
func (lc Lifecycle[T]) KeepRare(rare func(src SourceRef, path string, k *jwk.Key) (any, error)) {
	lc.l.cfg.Rare = rare
}

// LoadFor reads the files once, as Start without watching does, but only
// those an admin command looking for q needs (Loader.LoadFor). Call
// finish when the command is done.
func (lc Lifecycle[T]) LoadFor(q Query) (finish func()) { return lc.l.LoadFor(q) }

// Start reads the files: once, or, when watch is set, keeping the store
// current until ctx is cancelled or Close is called.
func (lc Lifecycle[T]) Start(ctx context.Context, watch bool) {
	if watch {
		lc.l.Watch(ctx)
	} else {
		lc.l.Reload()
	}
}

// Loader returns the loader behind the store.
func (lc Lifecycle[T]) Loader() *Loader[T] { return lc.l }

// Close stops watching. Lookups keep answering from the last snapshot.
func (lc Lifecycle[T]) Close() error { return lc.l.Close() }

// Reload rescans the files now (a watching store does this by itself).
func (lc Lifecycle[T]) Reload() { lc.l.Reload() }

// Subscribe returns a channel that receives a value after each change of
// the store's contents (coalesced), and a function to unsubscribe.
func (lc Lifecycle[T]) Subscribe() (<-chan struct{}, func()) { return lc.l.Subscribe() }

// OnChange calls fn with what changed after each reload that changed the
// store, until stop is called. fn runs inside the reload, once lookups see
// the new state: it must return soon and must not change or reload the
// store.
func (lc Lifecycle[T]) OnChange(fn func(Change)) (stop func()) { return lc.l.OnChange(fn) }

// Unlocked returns why the store's edits went ahead without their
// directory's lock (Loader.Unlocked).
func (lc Lifecycle[T]) Unlocked() []*UnlockedError { return lc.l.Unlocked() }

// Problems returns the files skipped in the current snapshot.
func (lc Lifecycle[T]) Problems() []Problem {
	return append([]Problem(nil), lc.l.Snapshot().Problems...)
}
