package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
)

// The mirror of a store (docs/fleet.md, "authorize, revoke, trust-host"):
// an edit with --store runs on a home that holds the store's entries as
// files. Rather than write every entry for every command, the home keeps
// that copy between commands,
//
//	HOME/.store-mirror/<SHA-256 of the store's URL>/   0700
//	  lock       held (flock) by the one command using the mirror
//	  manifest   the store's identity and revision, then per file:
//	             the entry's revision, the SHA-256 of its value, the file's stamp
//	  authorized_keys.d/ revoked_keys.d/ trusted_hosts.d/ .index/
//
// and each command lists the store's keys with their revisions only,
// reads the values of the entries that changed since, rewrites those
// files and removes the vanished ones; the admin index stays valid in
// between, so the command reads only the files it needs. The revisions
// Apply compares are always the ones just listed, never the manifest's.
// The mirror is trusted only if every file's stamp is the one the
// manifest recorded (nothing else wrote a file, renamed or removed one,
// or changed a mode), the store is the same (etcd: its cluster ID), and
// its revision did not go back (a restore): otherwise it is rebuilt from
// the store, as a temporary copy would be. A mirror another command is
// using, or one that cannot be made (no home), leaves the command on a
// temporary copy.

const (
	mirrorDir   = ".store-mirror"
	mirrorMagic = "keytool-store-mirror 1"
)

// mirror is a store's mirror, locked by this process.
type mirror struct {
	dir      string // the home the command runs on
	unlock   func()
	identity string // of the store, as listed
	revision int64  // of the listing
}

// openMirror locks the mirror of the store where in the home h, making
// it if need be; nil if there is none to be had: no home, or another
// command using it.
func openMirror(h, where string) *mirror {
	if fi, err := os.Stat(h); err != nil || !fi.IsDir() {
		return nil // a --store command does not make a home
	}
	top := filepath.Join(h, mirrorDir)
	sum := sha256.Sum256([]byte(where))
	dir := filepath.Join(top, hex.EncodeToString(sum[:16]))
	if !makePrivateDir(top) || !makePrivateDir(dir) {
		return nil
	}
	unlock, ok := keydir.TryLock(filepath.Join(dir, "lock"))
	if !ok {
		return nil
	}
	return &mirror{dir: dir, unlock: unlock}
}

// makePrivateDir makes dir, mode 0700, unless it is there already as a
// private directory: anything else in its place (a directory others may
// enter, a link, a file) is removed first, as a cache in doubt is. It
// says whether dir is then a private directory.
func makePrivateDir(dir string) bool {
	if privateDir(dir) {
		return true
	}
	if err := os.RemoveAll(dir); err != nil { // a link itself, not what it points to
		return false
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return false
	}
	return privateDir(dir)
}

// privateDir says whether dir is a directory (not a link to one) that
// only its owner may enter.
func privateDir(dir string) bool {
	fi, err := os.Lstat(dir)
	return err == nil && fi.IsDir() && fi.Mode().Perm()&0o077 == 0
}

func (m *mirror) close() { m.unlock() }

func (m *mirror) manifestPath() string { return filepath.Join(m.dir, "manifest") }

// sync brings the mirror to the store's entries as listed now, and
// returns them by path, as materialize does.
func (m *mirror) sync(ctx context.Context, st Store) (map[string]copied, error) {
	l, err := st.ListRevisions(ctx)
	if err != nil {
		return nil, err
	}
	m.identity, m.revision = l.Identity, l.Revision
	var listed []StoreEntry
	for _, e := range l.Entries {
		if mirrored(e) {
			listed = append(listed, e)
		}
	}
	files, ok := m.trusted(l)
	if !ok {
		return m.rebuild(ctx, st, listed)
	}
	h := home.Dir(m.dir)
	var fetch []StoreEntry
	keep := make(map[string]bool, len(listed))
	for _, e := range listed {
		path := filepath.Join(kindDir(h, e.Kind), e.Name)
		keep[path] = true
		if f, ok := files[path]; !ok || f.Revision != e.Revision {
			fetch = append(fetch, e)
		}
	}
	for path := range files {
		if !keep[path] {
			if err := os.Remove(path); err != nil {
				return nil, err
			}
			delete(files, path)
		}
	}
	if err := st.Values(ctx, l.Revision, fetch); err != nil {
		return nil, err
	}
	for _, e := range fetch {
		if err := m.put(files, e); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// put makes e's file hold its value, rewriting it only if it differs.
func (m *mirror) put(files map[string]copied, e StoreEntry) error {
	path := filepath.Join(kindDir(home.Dir(m.dir), e.Kind), e.Name)
	sum := sha256.Sum256(e.Value)
	f, known := files[path]
	if known && f.sum == sum {
		f.Revision = e.Revision // the same value (keytool's own last write)
		files[path] = f
		return nil
	}
	if !known {
		if _, err := os.Lstat(path); err == nil {
			return sameFileError(e)
		}
	}
	// Written whole or not at all, and unsynced: a crash leaves a file
	// whose stamp is not the manifest's, and the mirror is rebuilt.
	if err := atomicfile.WriteCache(path, e.Value, 0o644); err != nil {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	files[path] = copied{entryOf(e), sum, stampOf(fi)}
	return nil
}

// ownFiles are the names the mirror's directory holds: anything else (a
// home's single trust files, which the command would read) is not its.
var ownFiles = map[string]bool{"lock": true, "manifest": true, ".index": true,
	StoreAuthorized + ".d": true, StoreRevoked + ".d": true, StoreTrusted + ".d": true}

// onlyOwnFiles says whether the mirror's directory holds only ownFiles.
func (m *mirror) onlyOwnFiles() bool {
	des, err := os.ReadDir(m.dir)
	if err != nil {
		return false
	}
	for _, de := range des {
		if !ownFiles[de.Name()] {
			return false
		}
	}
	return true
}

// rebuild empties the mirror (but its lock) and writes every listed
// entry.
func (m *mirror) rebuild(ctx context.Context, st Store, listed []StoreEntry) (map[string]copied, error) {
	h := home.Dir(m.dir)
	if err := os.Remove(m.manifestPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	des, err := os.ReadDir(m.dir)
	if err != nil {
		return nil, err
	}
	for _, de := range des {
		if de.Name() != "lock" {
			if err := os.RemoveAll(filepath.Join(m.dir, de.Name())); err != nil {
				return nil, err
			}
		}
	}
	if err := st.Values(ctx, m.revision, listed); err != nil {
		return nil, err
	}
	return materialize(h, listed, true)
}

// trusted reads the manifest and checks the mirror against it and the
// listing; ok false: rebuild.
func (m *mirror) trusted(l StoreListing) (files map[string]copied, ok bool) {
	identity, revision, files, err := readManifest(m.manifestPath(), home.Dir(m.dir))
	if err != nil || identity != l.Identity || revision > l.Revision {
		return nil, false
	}
	h := home.Dir(m.dir)
	if !m.onlyOwnFiles() {
		return nil, false
	}
	seen := 0
	for _, kind := range StoreKinds {
		dir := kindDir(h, kind)
		if !privateDir(dir) {
			return nil, false
		}
		des, err := statDir(dir)
		if err != nil {
			return nil, false
		}
		for _, de := range des {
			if keydir.Ignored(de.name) {
				continue // as the stores do: an editor's or atomicfile's leftover
			}
			f, ok := files[filepath.Join(dir, de.name)]
			if !ok || de.err != nil || stampOf(de.fi) != f.stamp {
				return nil, false
			}
			seen++
		}
	}
	return files, seen == len(files)
}

// settle records the mirror's files as they are after the command (now,
// from changesOf) if they hold the store's entries (ok), else removes the
// manifest, so that the next command rebuilds the mirror.
func (m *mirror) settle(now map[string]copied, ok bool) {
	if ok && now != nil && writeManifest(m.manifestPath(), m.identity, m.revision, now) == nil {
		return
	}
	_ = os.Remove(m.manifestPath())
}

// The manifest is text: a first line "keytool-store-mirror 1", the store's
// identity and revision, tab-separated; then a line per file: the entry's
// revision (0: not known), the SHA-256 of the value and the file's stamp
// in hex, and KIND/NAME, tab-separated (a name holds no tab or newline:
// keydir.CheckName).
func writeManifest(path, identity string, revision int64, files map[string]copied) error {
	if strings.ContainsAny(identity, "\t\n") {
		return errors.New("identity with a tab or newline")
	}
	b := fmt.Appendf(nil, "%s\t%s\t%d\n", mirrorMagic, identity, revision)
	for _, f := range files {
		b = strconv.AppendInt(b, f.Revision, 10)
		b = append(b, '\t')
		b = hex.AppendEncode(b, f.sum[:])
		b = append(b, '\t')
		b = hex.AppendEncode(b, []byte(f.stamp))
		b = append(append(append(append(append(b, '\t'), f.Kind...), '/'), f.Name...), '\n')
	}
	return atomicfile.WriteCache(path, b, 0o600)
}

// readManifest reads what writeManifest wrote, by path in h; any doubt
// is an error.
func readManifest(path string, h home.Dir) (identity string, revision int64, files map[string]copied, err error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return "", 0, nil, err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 {
		return "", 0, nil, errors.New("manifest: not a regular file of mode 0600")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", 0, nil, err
	}
	return parseManifest(string(data), h)
}

// parseManifest parses a manifest's text.
func parseManifest(data string, h home.Dir) (identity string, revision int64, files map[string]copied, err error) {
	head, body, _ := strings.Cut(data, "\n")
	f := strings.Split(head, "\t")
	if len(f) != 3 || f[0] != mirrorMagic {
		return "", 0, nil, errors.New("manifest: bad header")
	}
	if revision, err = strconv.ParseInt(f[2], 10, 64); err != nil || revision < 0 {
		return "", 0, nil, errors.New("manifest: bad revision")
	}
	files = map[string]copied{}
	for line := range strings.Lines(body) {
		c, err := parseManifestLine(strings.TrimSuffix(line, "\n"))
		if err != nil {
			return "", 0, nil, err
		}
		files[filepath.Join(kindDir(h, c.Kind), c.Name)] = c
	}
	return f[1], revision, files, nil
}

func parseManifestLine(line string) (copied, error) {
	var c copied
	bad := errors.New("manifest: bad line")
	f := strings.Split(line, "\t")
	if len(f) != 4 {
		return c, bad
	}
	rev, err := strconv.ParseInt(f[0], 10, 64)
	sum, serr := hex.DecodeString(f[1])
	stamp, terr := hex.DecodeString(f[2])
	kind, name, _ := strings.Cut(f[3], "/")
	if err != nil || serr != nil || terr != nil || rev < 0 || len(sum) != len(c.sum) || !mirrored(StoreEntry{Kind: kind, Name: name}) {
		return c, bad
	}
	c.Kind, c.Name, c.Revision, c.stamp = kind, name, rev, string(stamp)
	copy(c.sum[:], sum)
	return c, nil
}
