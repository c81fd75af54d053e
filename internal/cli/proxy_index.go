package cli

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"syscall"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/trustfile"
)

// checkIndexDir refuses --index-dir where it has no use — with --client
// (no authorized keys) or --store (entries with no stamps to prove an
// index by) — or inside the home: there the proxy may use the home's own
// index (HOME/.index, without the flag) if it may write at all, and a
// directory of the home's trust (authorized_keys.d, a revocation file
// not yet made) would take the index's writes as changes of trust, or
// be made a directory. Links are followed on both sides (bothPaths).
func checkIndexDir(c *cli, o proxyOptions) error {
	switch {
	case o.indexDir == "":
		return nil
	case o.client:
		return usagef("--index-dir keeps the index of the authorized keys, in server mode; it has no use with --client")
	case c.store.url != "":
		return usagef("--index-dir keeps the index of the home's authorized_keys.d; with --store the client keys are the store's, which have no index")
	}
	h := home.Dir(c.home)
	// The home, and each path it reads (trust, PKI, identity), which may
	// be links out of it (docs/security.md: a link in the home is written
	// through): the directory as given and as its links resolve, against
	// each as given and as resolved.
	inside := append([]string{c.home}, h.Paths()...)
	dirs, err := bothPaths(o.indexDir)
	if err != nil {
		return usagef("--index-dir %q: %v", o.indexDir, err)
	}
	for _, p := range inside {
		ps, err := bothPaths(p)
		if err != nil {
			continue
		}
		for _, d := range dirs {
			if !trustfile.Within(ps[0], d) && !trustfile.Within(ps[1], d) {
				continue
			}
			where := "the home " + c.home
			if p != c.home {
				where = p + ", the home's"
			}
			return usagef("--index-dir %s is inside %s: give the proxy a directory of its own outside the home (/var/cache/keytool); the home's own index, %s, is used without the flag where the proxy may write it", o.indexDir, where, h.Index())
		}
	}
	return nil
}

// bothPaths is path made absolute, and that with its links followed
// (trustfile.RealPath).
func bothPaths(path string) ([2]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return [2]string{}, err
	}
	real, err := trustfile.RealPath(abs)
	return [2]string{abs, real}, err
}

// indexAdvice is the handler of a proxy's authorized-keys store without
// --index-dir: to its lines saying that the first clients wait for the
// full load, or that no admin index was written, because this user may
// not write the home's index, it adds the flag that mends it.
type indexAdvice struct{ slog.Handler }

func (h indexAdvice) Handle(ctx context.Context, r slog.Record) error {
	mend := false
	r.Attrs(func(a slog.Attr) bool {
		err, ok := a.Value.Any().(error)
		mend = ok && indexNotWritable(err)
		return !mend
	})
	if mend {
		r = r.Clone()
		r.AddAttrs(slog.String("advice", "this user may not write the home's admin index: give the proxy a directory of its own for one, --index-dir DIR (docs/deploy.md)"))
	}
	return h.Handler.Handle(ctx, r)
}

func (h indexAdvice) WithAttrs(as []slog.Attr) slog.Handler {
	return indexAdvice{h.Handler.WithAttrs(as)}
}

func (h indexAdvice) WithGroup(name string) slog.Handler {
	return indexAdvice{h.Handler.WithGroup(name)}
}

// indexNotWritable reports whether err says that a server decides nothing
// early because of the index itself (keydir.NotProvedError of the
// store, not of one directory: its lock, its making), or wrote no index
// for its next start (keydir.IndexNotWrittenError), because this user
// may not write it: another user's, or a read-only file system.
func indexNotWritable(err error) bool {
	var np *keydir.NotProvedError
	var nw *keydir.IndexNotWrittenError
	if !(errors.As(err, &np) && np.Dir == "") && !errors.As(err, &nw) {
		return false
	}
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}

// indexBeforeExit is run by a stopping proxy once its drain has ended:
// where its full load is published and the admin index for the next
// start is still being written (authkeys.OpenEarly, after that load;
// 1–3 s at 100,000 files), it waits for the write, until ctx ends (what
// is left of --drain-timeout, or a second signal). A proxy stopped within
// those seconds of its full load left no index, and its next start read
// every file before deciding, as this one did. A stop during the full
// load does not wait for it: the next start loads again, as this one.
func indexBeforeExit(ctx context.Context, store *authkeys.Store, log *slog.Logger) {
	select {
	case <-store.Loaded():
	default:
		return
	}
	// The write alone (before the proxy's context ends: OpenEarly writes
	// nothing after), not Close, which would wait for a rescan under way
	// too, with nothing for the next start in it.
	settled := store.Settled()
	said := time.NewTimer(100 * time.Millisecond) // no line for a store with nothing to write
	defer said.Stop()
	for {
		select {
		case <-settled:
			return
		case <-ctx.Done(): // the drain took all its time, or a second signal
			log.Warn("exiting before the admin index was written: the next start reads every file before it decides")
			return
		case <-said.C:
			log.Info("writing the admin index before exiting, so that the next start decides from it", "at_most", timeLeft(ctx))
		}
	}
}

// timeLeft is the time until ctx's deadline, rounded to 10 ms, or 0.
func timeLeft(ctx context.Context) time.Duration {
	d, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return max(time.Until(d), 0).Round(10 * time.Millisecond)
}
