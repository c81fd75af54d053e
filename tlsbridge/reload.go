package tlsbridge

import (
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	homedir "github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/trustfile"
)

// IdentitySource gives the identity a Server or Client presents in a new
// handshake: an *Identity, always the same, or an *IdentityWatcher, the
// identity on disk now (docs/design.md, "Identity reload").
type IdentitySource interface {
	CurrentIdentity() *Identity
}

// CurrentIdentity returns id itself: an Identity never changes.
func (id *Identity) CurrentIdentity() *Identity { return id }

// IdentityWatcher keeps an identity current from its files: when one of
// them changes (or on Reload, which a daemon calls on SIGHUP), the
// identity is loaded again and, if it loads, presented from the next
// handshake on. Connections already open keep the identity they were
// made with. A change that does not load — a key that does not parse or
// whose file is readable by others, a certificate for another key, a file
// the trust-file rule refuses — is logged and refused: the identity in use
// stays. A change to a public half of its keys loads it again only
// while the last load was refused for one (IdentityWatchOptions.Public).
//
// The files are watched by the stores' own loader (internal/keydir), so
// the same debouncing, rescans and strict modes apply.
type IdentityWatcher struct {
	cur    atomic.Pointer[Identity]
	load   func() (*Identity, error)
	loader *keydir.Loader[struct{}]
	log    *slog.Logger
	// onChange: IdentityWatchOptions.OnChange
	onChange func(*Identity)

	mu      sync.Mutex // one load at a time
	changed <-chan struct{}
	unsub   func()
	// public watches IdentityWatchOptions.Public (nil without them):
	// publicChanged receives after each change to one of them.
	public        *keydir.Loader[struct{}]
	publicChanged <-chan struct{}
	publicUnsub   func()
	// awaitPublic (under mu): the last load was refused for a public
	// half (*PublicKeyError), so a change to one loads again.
	awaitPublic bool
	// publicPassed (under mu) counts the changes to a public half that
	// loaded nothing, none being awaited: for tests.
	publicPassed int
	cancel       context.CancelFunc
	done         chan struct{}
	close        sync.Once
}

// IdentityWatchOptions say what an IdentityWatcher loads and watches.
type IdentityWatchOptions struct {
	// Files are the files the identity is made of (the key, the
	// certificate, the next key): a change to any of them, including one
	// appearing or going away, loads the identity again.
	Files []string
	// Public are the public halves of Files' keys (pub_key.*,
	// pub_key.next.*, a named key's pub_NAME.*), which Load checks
	// against them: a change to one loads the identity again only while
	// the last load was refused because a public half was not its key's
	// (*PublicKeyError) — a writer between its key and its public half
	// (Reload). Otherwise a server has nothing to reload for them: it
	// presents no public half.
	Public []string
	// Home is the top of the trust tree for the strict-modes check of the
	// watched files (as keydir.Options.Home); empty: each file's own
	// directory.
	Home string
	// Load makes the identity from the files. Required.
	Load func() (*Identity, error)
	// Logger receives a line for every identity loaded or refused; nil
	// means slog.Default().
	Logger *slog.Logger
	// OnChange, if set, is called with each identity loaded after the
	// first, once new handshakes present it.
	OnChange func(*Identity)
}

// WatchIdentity loads the identity with o.Load and keeps it current until
// ctx is cancelled or Close is called. The first load must succeed.
func WatchIdentity(ctx context.Context, o IdentityWatchOptions) (*IdentityWatcher, error) {
	if o.Load == nil {
		return nil, errors.New("tlsbridge: IdentityWatchOptions.Load is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	w := &IdentityWatcher{load: o.Load, log: o.Logger, onChange: o.OnChange, done: make(chan struct{})}
	ctx, w.cancel = context.WithCancel(ctx)
	w.loader, w.changed, w.unsub = watchChanges(ctx, o.Files, o.Home, false)
	if len(o.Public) > 0 {
		// Any change to a public half is told, whatever its mode: the
		// load reads it and decides.
		w.public, w.publicChanged, w.publicUnsub = watchChanges(ctx, o.Public, o.Home, true)
	}
	id, err := o.Load()
	if err != nil {
		close(w.done)
		w.Close()
		return nil, err
	}
	w.cur.Store(id)
	go w.run(ctx)
	return w, nil
}

// WatchHomeIdentity is WatchIdentity for the identity of a keytool home,
// loaded as LoadHomeIdentity does: its key.{json,jwk,pem}, cert.pem, and
// the next key it announces; their public halves (HomePublicFiles) load
// it again only after a load refused for one (IdentityWatchOptions.Public).
func WatchHomeIdentity(ctx context.Context, home string, opts CertOptions, log *slog.Logger) (*IdentityWatcher, error) {
	return WatchIdentity(ctx, IdentityWatchOptions{
		Files:  HomeIdentityFiles(home),
		Public: HomePublicFiles(home),
		Home:   home,
		Load:   func() (*Identity, error) { return LoadHomeIdentity(home, opts) },
		Logger: log,
	})
}

// HomeIdentityFiles lists the files a home's identity is made of: the
// identity's names, cert.pem, and the names of the next key.
func HomeIdentityFiles(home string) []string {
	h := homedir.Dir(home)
	return slices.Concat(h.Identity(), []string{h.Cert()}, h.Next())
}

// HomePublicFiles lists the public halves LoadHomeIdentity checks: the
// identity's (pub_key.*) and the next key's (pub_key.next.*).
func HomePublicFiles(home string) []string {
	h := homedir.Dir(home)
	return slices.Concat(h.Public(), h.NextPublic())
}

// watchChanges watches files with the stores' loader, made a mere change
// detector: it tells that one of them changed, and the caller reads them.
// The first read's notice is taken: the caller reads the files next.
// noStrictModes: keydir.Config.NoStrictModes.
func watchChanges(ctx context.Context, files []string, home string, noStrictModes bool) (*keydir.Loader[struct{}], <-chan struct{}, func()) {
	srcs := make([]keydir.Source, len(files))
	for i, f := range files {
		srcs[i] = keydir.Source{Path: f}
	}
	l := keydir.New(keydir.Config[struct{}]{
		Sources:       srcs,
		Home:          home,
		NoStrictModes: noStrictModes,
		// The loader only tells that a file changed; Load reads the files
		// and decides (a private key's stricter mode included).
		Parse: func(keydir.SourceRef, string, []byte) ([]struct{}, error) { return nil, nil },
		// The loader tells a change by the content's hash: the mode is
		// added to the content, so that a key made private by chmod alone
		// is loaded again too.
		ReadFile: func(path string) ([]byte, fs.FileInfo, error) {
			data, fi, err := trustfile.Read(path)
			if err == nil && fi != nil {
				data = binary.BigEndian.AppendUint32(data, uint32(fi.Mode()))
			}
			return data, fi, err
		},
	})
	changed, unsub := l.Subscribe()
	l.Watch(ctx)
	select { // the first read's notice
	case <-changed:
	default:
	}
	return l, changed, unsub
}

func (w *IdentityWatcher) run(ctx context.Context) {
	defer close(w.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
			_ = w.Reload()
		case <-w.publicChanged: // nil, never ready, without public halves
			w.publicChange()
		}
	}
}

// CurrentIdentity returns the identity presented in new handshakes.
func (w *IdentityWatcher) CurrentIdentity() *Identity { return w.cur.Load() }

// Reload loads the identity now, whether or not its files changed (a
// daemon's SIGHUP). On failure the identity in use stays, and the error
// is returned and logged.
func (w *IdentityWatcher) Reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reload()
}

// publicChange is a change to a public half (IdentityWatchOptions.Public):
// it loads the identity again only while the last load was refused for a
// public half that was not its key's.
//
// A writer that takes no lock of the identity's writers — config
// management or an editor writing key.json then pub_key.json, perhaps in
// two tasks of one run, a keytool whose lock file cannot be used — or
// one whose lock this user cannot take (a server run as a user of its
// own) is met between its two writes: the key new, its public half the
// key it replaced, and the load refused (*PublicKeyError). With only the
// key watched, the refusal stood, and the server presented the replaced
// key until the next change of the key or SIGHUP (found by review,
// 2026-12-05); a load made once more a second later covered only a
// writer quicker than that. The public half's write is what the refused
// load waits for, so that write loads again, however late it comes. In
// the normal case (nothing refused: keytool gen or rotate writing a
// public half after its key, a copy of pub_key.json made) nothing is
// loaded: a server presents no public half.
func (w *IdentityWatcher) publicChange() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.awaitPublic {
		w.publicPassed++
		return
	}
	_ = w.reload()
}

// reload is Reload under w.mu.
func (w *IdentityWatcher) reload() error {
	old := w.cur.Load()
	id, err := w.load()
	var pk *PublicKeyError
	w.awaitPublic = errors.As(err, &pk)
	if err != nil {
		if w.awaitPublic {
			w.log.Warn("identity not reloaded yet: a public half is not its key's, as between a writer's two writes; loading it again when a public half changes",
				"fingerprint", old.Key.Fingerprint(), "file", pk.File)
		}
		w.log.Error("identity not reloaded: keeping the current one", "fingerprint", old.Key.Fingerprint(), "error", err)
		return err
	}
	w.cur.Store(id)
	attrs := []any{"fingerprint", id.Key.Fingerprint()}
	if !id.Key.Equal(old.Key) {
		attrs = append(attrs, "previous", old.Key.Fingerprint())
	}
	if next := id.Announced(); len(next) > 0 {
		attrs = append(attrs, "announces", next[0].Fingerprint())
	}
	w.log.Info("identity reloaded", attrs...)
	if w.onChange != nil {
		w.onChange(id)
	}
	return nil
}

// Close stops watching; the last identity stays in use.
func (w *IdentityWatcher) Close() error {
	w.close.Do(func() {
		w.cancel()
		<-w.done
		w.loader.Close()
		w.unsub()
		if w.public != nil {
			w.public.Close()
			w.publicUnsub()
		}
	})
	return nil
}
