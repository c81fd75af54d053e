package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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
	// The home, and each path it reads (trust, PKI, identity), which may
	// be links out of it (docs/security.md: a link in the home is written
	// through): the directory as given and as its links resolve, against
	// each as given and as resolved.
	inside := []string{c.home, h.AuthorizedDir(), h.RevokedDir(), h.TrustedDir(), h.CA(), h.CRL(), h.CADir(), h.Cert(), h.Invites()}
	for _, files := range [][]string{h.AuthorizedFiles(), h.RevokedFiles(), h.TrustedFiles(), h.Identity(), h.Public(), h.Next(), h.NextPublic()} {
		inside = append(inside, files...)
	}
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

// realPath is path made absolute with its links followed as the kernel
// follows them — one name at a time, a ".." after a link taken from
// where the link led — a link to what does not exist yet included
// (revoked_keys.json, a link to a file not made), and the rest, which
// does not exist yet, kept as it is. At most maxLinks links are followed
// in all: a cycle, growing or not, is an error, as ELOOP (found by
// review: a search by the longest existing prefix ran for minutes on a
// growing cycle, and resolved a ".." in a link's target lexically).
func realPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	const maxLinks = 255
	sep := string(filepath.Separator)
	vol := filepath.VolumeName(abs)
	done := vol + sep
	rest := strings.Split(abs[len(vol):], sep)
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			done = filepath.Dir(done)
			continue
		}
		next := filepath.Join(done, name)
		fi, err := os.Lstat(next)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			done = next // a real entry, or one not made yet
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", path)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			v := filepath.VolumeName(target)
			done, target = v+sep, target[len(v):]
		}
		rest = append(strings.Split(target, sep), rest...)
	}
	return done, nil
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
