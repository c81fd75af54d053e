package cli

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
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
	h := home.Dir(c.home)
	// The home, and each of its trust paths, which may be links out of
	// it (docs/security.md: a link in the home is written through): the
	// directory as given and as its links resolve, against each as given
	// and as resolved.
	inside := append([]string{c.home, h.AuthorizedDir(), h.RevokedDir()}, h.AuthorizedFiles()...)
	inside = append(inside, h.RevokedFiles()...)
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
			if !within(d, ps[0]) && !within(d, ps[1]) {
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
// (realPath).
func bothPaths(path string) ([2]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return [2]string{}, err
	}
	real, err := realPath(abs)
	return [2]string{abs, real}, err
}

// realPath is path made absolute with the links of its longest existing
// part followed (the rest does not exist yet), a link to what does not
// exist yet included (revoked_keys.json, a link to a file not made).
func realPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	for range 40 { // links to links, as the kernel bounds them
		var rest []string
		p := abs
		for {
			if real, err := filepath.EvalSymlinks(p); err == nil {
				return filepath.Join(append([]string{real}, rest...)...), nil
			}
			if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
				break // a link to what does not exist: follow it by hand
			}
			if filepath.Dir(p) == p {
				return abs, nil
			}
			rest = append([]string{filepath.Base(p)}, rest...)
			p = filepath.Dir(p)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return abs, nil
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		abs = filepath.Join(append([]string{target}, rest...)...)
	}
	return abs, nil
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
