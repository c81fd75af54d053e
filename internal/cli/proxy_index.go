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
// index by) — or inside a directory of trust, where the index's own
// writes would be changes to the trust files the proxy watches.
func checkIndexDir(c *cli, o proxyOptions) error {
	switch {
	case o.indexDir == "":
		return nil
	case o.client:
		return usagef("--index-dir keeps the index of the authorized keys, in server mode; it has no use with --client")
	case c.store.url != "":
		return usagef("--index-dir keeps the index of the home's authorized_keys.d; with --store the client keys are the store's, which have no index")
	}
	dir, err := filepath.Abs(o.indexDir)
	if err != nil {
		return usagef("--index-dir %q: %v", o.indexDir, err)
	}
	h := home.Dir(c.home)
	for _, trust := range []string{h.AuthorizedDir(), h.RevokedDir()} {
		if t, err := filepath.Abs(trust); err == nil && within(dir, t) {
			return usagef("--index-dir %s is inside %s, whose every change the proxy reads as a change of trust: choose a directory outside it (/var/cache/keytool)", o.indexDir, trust)
		}
	}
	return nil
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
// early (keydir.NotProvedError), or wrote no index for its next start
// (keydir.IndexNotWrittenError), because this user may not write the
// index: another user's, or a read-only file system.
func indexNotWritable(err error) bool {
	var np *keydir.NotProvedError
	var nw *keydir.IndexNotWrittenError
	if !errors.As(err, &np) && !errors.As(err, &nw) {
		return false
	}
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS)
}
