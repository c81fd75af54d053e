package cli

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"syscall"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
)

// checkIndexDir refuses --index-dir where it has no use — with --client
// (no authorized keys) or --store (entries with no stamps to prove an
// index by) — or inside the home: there the proxy may use the home's own
// index (HOME/.index, without the flag) if it may write at all, and a
// directory of the home's trust (authorized_keys.d, a revocation file
// not yet made) would take the index's writes as changes of trust, or
// be made a directory. Links are followed on both sides (realPath).
func checkIndexDir(c *cli, o proxyOptions) error {
	switch {
	case o.indexDir == "":
		return nil
	case o.client:
		return usagef("--index-dir keeps the index of the authorized keys, in server mode; it has no use with --client")
	case c.store.url != "":
		return usagef("--index-dir keeps the index of the home's authorized_keys.d; with --store the client keys are the store's, which have no index")
	}
	dir, err := realPath(o.indexDir)
	if err != nil {
		return usagef("--index-dir %q: %v", o.indexDir, err)
	}
	if h, err := realPath(c.home); err == nil && within(dir, h) {
		return usagef("--index-dir %s is inside the home %s: give the proxy a directory of its own outside it (/var/cache/keytool); the home's own index, %s, is used without the flag where the proxy may write it", o.indexDir, c.home, home.Dir(c.home).Index())
	}
	return nil
}

// realPath is path made absolute with the links of its longest existing
// part followed (the rest does not exist yet).
func realPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	var rest []string
	for p := abs; ; p = filepath.Dir(p) {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if filepath.Dir(p) == p {
			return abs, nil
		}
		rest = append([]string{filepath.Base(p)}, rest...)
	}
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsLocal(rel)
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
