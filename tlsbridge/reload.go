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
	"time"

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
// stays.
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
	ctx     context.Context // the watch's: a Reload's wait ends with it
	cancel  context.CancelFunc
	done    chan struct{}
	close   sync.Once
}

// IdentityWatchOptions say what an IdentityWatcher loads and watches.
type IdentityWatchOptions struct {
	// Files are the files the identity is made of (the key, the
	// certificate, the next key): a change to any of them, including one
	// appearing or going away, loads the identity again.
	Files []string
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
	srcs := make([]keydir.Source, len(o.Files))
	for i, f := range o.Files {
		srcs[i] = keydir.Source{Path: f}
	}
	w := &IdentityWatcher{load: o.Load, log: o.Logger, onChange: o.OnChange, done: make(chan struct{})}
	w.loader = keydir.New(keydir.Config[struct{}]{
		Sources: srcs,
		Home:    o.Home,
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
	w.changed, w.unsub = w.loader.Subscribe()
	ctx, w.cancel = context.WithCancel(ctx)
	w.ctx = ctx
	w.loader.Watch(ctx)
	select { // the first read's notice: the identity is loaded below
	case <-w.changed:
	default:
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
// the next key it announces.
func WatchHomeIdentity(ctx context.Context, home string, opts CertOptions, log *slog.Logger) (*IdentityWatcher, error) {
	return WatchIdentity(ctx, IdentityWatchOptions{
		Files:  HomeIdentityFiles(home),
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

func (w *IdentityWatcher) run(ctx context.Context) {
	defer close(w.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
			_ = w.Reload()
		}
	}
}

// CurrentIdentity returns the identity presented in new handshakes.
func (w *IdentityWatcher) CurrentIdentity() *Identity { return w.cur.Load() }

// publicRetry is how long a reload refused because a public half is not
// its key's (*PublicKeyError) waits before it loads once more (Reload).
var publicRetry = time.Second

// Reload loads the identity now, whether or not its files changed (a
// daemon's SIGHUP). On failure the identity in use stays, and the error
// is returned and logged.
//
// A load refused because a public half (pub_key.*) is not its key's is
// made once more after publicRetry. A writer that takes no lock of the
// identity's writers — an editor or config management writing key.json
// then pub_key.json, a keytool whose lock file cannot be used —, or one
// whose lock this user cannot take (a server run as a user of its own),
// is met between its two writes: the key new, its public half the key
// it replaced. pub_key.* is not watched (a server presents no public
// half, and a reload at each of its writes would change nothing), so
// the refusal stood, and the server presented the replaced key, until
// the next change of the key or SIGHUP (found by review, 2026-12-05).
// Looked at once more, the public half written meanwhile, the reload
// presents the new key; still refused, it is refused as before.
func (w *IdentityWatcher) Reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.cur.Load()
	id, err := w.load()
	var pk *PublicKeyError
	if errors.As(err, &pk) && !pk.Rotated {
		w.log.Warn("identity not reloaded yet: a public half is not its key's, as between a writer's two writes; loading it again",
			"fingerprint", old.Key.Fingerprint(), "file", pk.File, "retry_in", publicRetry.String())
		select {
		case <-time.After(publicRetry):
			id, err = w.load()
		case <-w.ctx.Done():
		}
	}
	if err != nil {
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
	})
	return nil
}
