// Package trustfile is keytool's one rule for reading a trust input — an
// authorized, revoked or trusted-host key file, a .d directory of them,
// ca.pem, crl.pem, the invitations directory, the identity: every reader
// of such a file goes through it, so that no input is checked more loosely
// than another (docs/design.md, "One file-trust rule").
//
// Two things make up the rule:
//
//   - Read reads a regular file without ever blocking and up to MaxSize
//     bytes: a FIFO, a device or a huge file cannot hang or exhaust the
//     reader.
//   - Rule.CheckFile and Rule.CheckDir are OpenSSH's StrictModes
//     (auth2-pubkeyfile.c, safe_path): the file, the target of a symbolic
//     link, and every directory from the file up to the top of the trust
//     tree (the keytool home) must be owned by root or the effective user
//     and not be writable by group or others. A file outside the top is
//     checked up to the root directory. Symbolic links are resolved first
//     and the real path is checked, as OpenSSH does with realpath(3), and
//     so is the directory holding each link followed on the way.
//
// The errors are *PermissionError and *LinkError; the callers turn them
// into their own problems, and cmd/keytool into advice.
package trustfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/keytool/keytool/internal/termtext"
)

// MaxSize bounds what Read reads. A JWK Set of 100,000 keys is about
// 20 MiB; anything much larger is not a trust file.
const MaxSize = 64 << 20

// ErrTooLarge means a file exceeds MaxSize.
var ErrTooLarge = errors.New("file too large")

// ErrNotRegular means a path names something other than a regular file: a
// FIFO, a device, a socket or a directory.
var ErrNotRegular = errors.New("is not a regular file")

// Read reads the regular file at path, following symbolic links, without
// blocking (a FIFO is refused, never waited on) and refusing more than
// MaxSize bytes. It returns the content and the file's information, taken
// from the open file.
func Read(path string) ([]byte, fs.FileInfo, error) {
	f, err := openFile(path, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return readOpen(f)
}

// ReadListed reads, as Read does, a file that a directory listing showed
// as a regular file and that no stat has checked since, but does not
// follow a symbolic link: a name replaced by a link after the listing is
// a *ChangedError. The caller checks such a file from what the read
// returns alone (its own mode and owner, in a directory checked as a
// whole), which is the whole rule for a regular file but not for a
// link, whose target's directories must be checked too (Rule.CheckFile):
// a link is to be stat'ed and checked first, then read with Read.
func ReadListed(path string) ([]byte, fs.FileInfo, error) {
	f, err := openFile(path, noFollow)
	if isLinkRefused(err) {
		return nil, nil, &ChangedError{Path: path}
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return readOpen(f)
}

// readOpen is Read of a file opened.
func readOpen(f openedFile) ([]byte, fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if fi.IsDir() {
		return nil, fi, fmt.Errorf("%w: it is a directory", ErrNotRegular)
	}
	if !fi.Mode().IsRegular() {
		return nil, fi, ErrNotRegular
	}
	if fi.Size() > MaxSize {
		return nil, fi, fmt.Errorf("%w: %d bytes, more than the %d MiB a trust file may hold", ErrTooLarge, fi.Size(), MaxSize>>20)
	}
	data := make([]byte, 0, fi.Size()+1)
	for {
		want := cap(data) - len(data)
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fi, err
		}
		if len(data) > MaxSize {
			return nil, fi, fmt.Errorf("%w: more than the %d MiB a trust file may hold", ErrTooLarge, MaxSize>>20)
		}
		if n < want && int64(len(data)) == fi.Size() {
			// A short read that ends where the file's size said: the end
			// of the file, without the system call that would say so.
			// (A file that grew meanwhile reads as it was before.)
			break
		}
		if len(data) == cap(data) {
			data = slices.Grow(data, 4096)
		}
	}
	return data, fi, nil
}

// openedFile is what Read needs of an open file: os.File, or on Linux the
// bare descriptor (read_linux.go).
type openedFile interface {
	io.ReadCloser
	Stat() (fs.FileInfo, error)
}

// Rule is the strict-modes check of one trust tree.
type Rule struct {
	// Top is the highest directory checked above a file inside it: the
	// keytool home. A file outside Top, or every file when Top is empty,
	// is checked up to the root directory.
	Top string
	// Off turns the ownership and permission checks off, for file systems
	// whose permissions mean nothing (some containers). Read's limits still
	// apply.
	Off bool
}

// PermissionError means a trust file or directory could be changed by
// someone other than its owner or root, so what it says cannot be
// trusted. Path is the file or directory at fault, which for a file
// reached through a symbolic link or a directory above the file is not
// the path that was checked (For).
type PermissionError struct {
	Path  string      // the file or directory at fault
	For   string      // the trust input being checked
	Mode  fs.FileMode // its mode
	Owner int         // -1, unless the fault is the owner: its uid
	Euid  int         // this process's effective user
}

func (e *PermissionError) Error() string {
	// A file may have any name: none may drive a terminal or forge a
	// line of the message (termtext).
	path, target := termtext.Safe(e.Path), termtext.Safe(e.For)
	what := "file"
	if e.Mode.IsDir() {
		what = "directory"
	}
	via := ""
	if e.For != "" && e.For != e.Path {
		via = fmt.Sprintf(" (on the way to %s)", target)
	}
	if e.Owner >= 0 {
		return fmt.Sprintf("%s %s%s is owned by uid %d, neither root nor this process's user (uid %d), who could change what it trusts",
			what, path, via, e.Owner, e.Euid)
	}
	return fmt.Sprintf("permissions %04o for %s %s%s are too open: group or others could write to it and so change what it trusts",
		octal(e.Mode), what, path, via)
}

// octal is the mode as chmod and ls spell it, special bits included: /tmp
// is 1777, not 0777.
func octal(m fs.FileMode) uint32 {
	o := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		o |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		o |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		o |= 0o1000
	}
	return o
}

// LinkError means a symbolic link leads nowhere (dangling) or cannot be
// followed. In a revocation input it fails closed like any unreadable
// file; elsewhere the link is skipped and reported.
type LinkError struct {
	Path string
	Err  error
}

func (e *LinkError) Error() string {
	if errors.Is(e.Err, fs.ErrNotExist) {
		return fmt.Sprintf("%s is a symbolic link to a file that does not exist", termtext.Safe(e.Path))
	}
	return fmt.Sprintf("%s: following the symbolic link: %v", termtext.Safe(e.Path), e.Err)
}

func (e *LinkError) Unwrap() error { return e.Err }

// CheckMode applies the rule to one file or directory whose information
// fi was taken with stat (following links): owned by root or the
// effective user, not writable by group or others.
func (r Rule) CheckMode(path string, fi fs.FileInfo) error {
	if r.Off {
		return nil
	}
	return checkMode(path, "", fi)
}

func checkMode(path, forPath string, fi fs.FileInfo) error {
	if fi.Mode().Perm()&0o022 != 0 {
		return &PermissionError{Path: path, For: forPath, Mode: fi.Mode(), Owner: -1, Euid: os.Geteuid()}
	}
	if uid, ok := Owner(fi); ok && uid != 0 && uid != os.Geteuid() {
		return &PermissionError{Path: path, For: forPath, Mode: fi.Mode(), Owner: uid, Euid: os.Geteuid()}
	}
	return nil
}

// CheckDir checks dir and every directory above it up to Top (or the
// root), after resolving symbolic links, and the directories holding the
// links followed below Top (resolve). A directory that does not
// exist is reported as such (errors.Is(err, fs.ErrNotExist)).
func (r Rule) CheckDir(dir string) error {
	if r.Off {
		return nil
	}
	c := r.climber()
	real, links, err := c.resolve(dir, "")
	if err != nil {
		return err
	}
	if err := c.climb(real, dir); err != nil {
		return err
	}
	return c.climbLinks(links, dir)
}

// climbLinks checks each directory holding a symbolic link followed on
// the way to forPath, and those above it: whoever may write there may
// point the link elsewhere — the last link of the path or any before it,
// a linked directory on the way included.
func (c *climber) climbLinks(dirs []string, forPath string) error {
	for _, d := range dirs {
		if err := c.climb(d, forPath); err != nil {
			return err
		}
	}
	return nil
}

// CheckFile checks a trust file that is not a directory: the file itself
// (through any symbolic links: fi is from stat) and, when path is a
// symbolic link or sits in a directory not yet checked, the directories
// of its real path up to Top, and those holding every link followed on
// the way; unless the caller checked the file's directory already (a .d
// directory: dirChecked), whose files need only their own checks and,
// for a link, the target's, with the links followed from the directory
// on.
func (r Rule) CheckFile(path string, fi fs.FileInfo, isLink, dirChecked bool) error {
	if r.Off {
		return nil
	}
	if !isLink {
		if err := checkMode(path, "", fi); err != nil {
			return err
		}
		if dirChecked {
			return nil
		}
	}
	known := ""
	if dirChecked {
		known = filepath.Dir(path)
	}
	c := r.climber()
	real, links, err := c.resolve(path, known)
	if err != nil {
		if isLink {
			return &LinkError{Path: path, Err: err}
		}
		return err
	}
	if isLink {
		// Name the target, which is what is at fault.
		if err := checkMode(real, path, fi); err != nil {
			return err
		}
	}
	if err := c.climbLinks(links, path); err != nil {
		return err
	}
	return c.climb(filepath.Dir(real), path)
}

// ChangedError means a trust file was replaced between its checks and its
// read: what was read is not what was checked, so it is not used (it is
// read again at the next reload).
type ChangedError struct {
	Path string
	Err  error // why the path no longer names the file read: fs.ErrNotExist when it was removed; nil when replaced
}

func (e *ChangedError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s went away while it was being read (%v); not used", e.Path, e.Err)
	}
	return fmt.Sprintf("%s was replaced while it was being read; not used until it is read again", e.Path)
}

// Unwrap lets a caller tell a file removed meanwhile (errors.Is
// fs.ErrNotExist) from one replaced.
func (e *ChangedError) Unwrap() error { return e.Err }

// climber resolves paths and checks real directories and their
// ancestors up to Top for one check (CheckDir, CheckFile), each path
// stat'ed once and each directory checked once: the climbs from a link's
// directory and from the file's own share their ancestors (a Kubernetes
// volume: NAME -> ..data/NAME, ..data -> ..2024_…/, climbed from the .d
// directory and from ..2024_…, which is in it), Top and the directory
// known to the caller are resolved along the same directories, and each
// directory checked was stat'ed resolving them. A check is of the paths
// as they were during it, as before: a file is still read afterwards.
type climber struct {
	r       Rule
	top     string                 // Top's real path; "" if there is none or it does not resolve
	checked []string               // the directories checked, each with its ancestors up to where its climb stopped
	stats   map[string]fs.FileInfo // lstat of each path stat'ed in this check
}

func (r Rule) climber() *climber {
	c := &climber{r: r, stats: map[string]fs.FileInfo{}}
	if r.Top != "" {
		if t, err := c.realPath(r.Top); err == nil {
			c.top = t
		}
	}
	return c
}

// lstat is os.Lstat, once for each path in a check.
func (c *climber) lstat(p string) (fs.FileInfo, error) {
	if fi, ok := c.stats[p]; ok {
		return fi, nil
	}
	fi, err := os.Lstat(p)
	if err == nil {
		c.stats[p] = fi
	}
	return fi, err
}

// climb checks the real directory dir and its ancestors up to Top (the
// root for a directory outside Top). A directory this climber checked
// already ends the climb: its climb went on from there to the same top
// (a directory within Top has its ancestors within or at Top), or to the
// root, past it.
func (c *climber) climb(dir, forPath string) error {
	top := "/"
	if c.top != "" && (c.top == dir || isWithin(c.top, dir)) {
		top = c.top
	}
	for d := dir; ; d = filepath.Dir(d) {
		if slices.Contains(c.checked, d) {
			return nil
		}
		fi, err := c.lstat(d)
		if err != nil {
			return err
		}
		if err := checkMode(d, forPath, fi); err != nil {
			return err
		}
		c.checked = append(c.checked, d)
		if d == top || d == filepath.Dir(d) {
			return nil
		}
	}
}

// ReadFile checks a trust file that stands alone (ca.pem, crl.pem, an
// invitation, the identity) — the file, a link's target and every
// directory up to Top — and reads it as Read does.
func (r Rule) ReadFile(path string) ([]byte, fs.FileInfo, error) {
	lfi, err := os.Lstat(path)
	if err != nil {
		return nil, nil, err
	}
	isLink := lfi.Mode()&fs.ModeSymlink != 0
	data, fi, err := Read(path)
	if err != nil {
		if isLink && errors.Is(err, fs.ErrNotExist) {
			return nil, nil, &LinkError{Path: path, Err: err}
		}
		return nil, fi, err
	}
	if err := r.CheckFile(path, fi, isLink, false); err != nil {
		return nil, fi, err
	}
	// The checks followed the path as it is now: it must still name the
	// file that was read (OpenSSH checks the file it opened, with fstat).
	if now, err := os.Stat(path); err != nil || !sameFile(now, fi) {
		return nil, fi, &ChangedError{Path: path, Err: err}
	}
	return data, fi, nil
}

// realPath is the absolute path with every symbolic link resolved (as
// filepath.EvalSymlinks, through the check's lstats).
func (c *climber) realPath(p string) (string, error) { return c.realPathOf(p, false) }

// RealPath is path made absolute with every symbolic link followed as
// the kernel follows them — one name at a time, a ".." after a link
// taken from where the link led, at most 255 links (a loop is an error,
// not a hang) — where a name that does not exist, and every one after
// it, is kept as it is: the path a file made there would have, a link to
// a file not made yet followed to its target (revoked_keys.json linked
// out of the home).
func RealPath(path string) (string, error) {
	return (&climber{stats: map[string]fs.FileInfo{}}).realPathOf(path, true)
}

// realPathOf is realPath, and where missing is set RealPath: p made
// absolute and resolved from the root (resolveFrom).
func (c *climber) realPathOf(p string, missing bool) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	vol := filepath.VolumeName(abs)
	real, _, err := c.resolveFrom(vol+string(filepath.Separator), abs[len(vol):], missing)
	return real, err
}

// Within reports whether path is dir or below it, as the names go
// (filepath.Rel): no link is followed.
func Within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsLocal(rel)
}

// maxLinks bounds the symbolic links resolve follows, as EvalSymlinks
// does: a loop of links is an error, not a hang.
const maxLinks = 255

// resolve is realPath that also returns the real directories holding
// the symbolic links it follows — the path's last component, a linked
// directory on the way, a link a link leads to — but not those on the way
// to known, a directory above p that the caller has checked (dirChecked),
// or, when known is "" and p is below Top, to Top: where the home is
// found is the admin's business, as the directories above it are (Top
// itself is checked as a link, as it always was). OpenSSH's realpath(3)
// keeps no such list; keytool checks where each link is, since whoever
// may write there may point it elsewhere
// (TestRuleChecksEveryLinkOnTheWay).
func (c *climber) resolve(p, known string) (real string, linkDirs []string, err error) {
	r := c.r
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", nil, err
	}
	if known == "" && r.Top != "" {
		if top, err := filepath.Abs(r.Top); err == nil {
			switch {
			case isWithin(top, abs):
				known = top
			case top == abs:
				known = filepath.Dir(top)
			}
		}
	}
	root := filepath.VolumeName(abs) + string(filepath.Separator)
	start, rest := root, abs
	if known != "" {
		if k, err := filepath.Abs(known); err == nil && k != root && isWithin(k, abs) {
			if start, err = c.realPath(k); err != nil {
				return "", nil, err
			}
			rest = abs[len(k):]
		}
	}
	return c.resolveFrom(start, rest, false)
}

// resolveFrom resolves the path rest relative to the real directory dest
// (as filepath.EvalSymlinks walks it), returning the real path and the
// directories holding the links followed. Where missing is set, a name
// that does not exist is taken as it is (RealPath); else it is an error.
func (c *climber) resolveFrom(dest, rest string, missing bool) (string, []string, error) {
	var linkDirs []string
	links := 0
	for rest != "" {
		var name string
		rest = strings.TrimLeft(rest, string(filepath.Separator))
		name, rest, _ = strings.Cut(rest, string(filepath.Separator))
		switch name {
		case "", ".":
			continue
		case "..":
			dest = filepath.Dir(dest)
			continue
		}
		next := filepath.Join(dest, name)
		fi, err := c.lstat(next)
		if missing && errors.Is(err, fs.ErrNotExist) {
			dest = next // not made yet
			continue
		}
		if err != nil {
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			dest = next
			continue
		}
		if links++; links > maxLinks {
			return "", nil, &fs.PathError{Op: "resolve", Path: next, Err: errors.New("too many symbolic links")}
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", nil, err
		}
		linkDirs = append(linkDirs, dest)
		if filepath.IsAbs(target) || strings.HasPrefix(target, string(filepath.Separator)) {
			// From the root: the target's volume, or (Windows' \dir)
			// the link's own.
			vol := filepath.VolumeName(target)
			if vol == "" {
				vol = filepath.VolumeName(dest)
			}
			dest = vol + string(filepath.Separator)
			rest = target[len(vol):] + string(filepath.Separator) + rest
			continue
		}
		rest = target + string(filepath.Separator) + rest
	}
	return dest, linkDirs, nil
}

// isWithin reports whether path is strictly below dir.
func isWithin(dir, path string) bool {
	if dir == "/" {
		return path != "/" && strings.HasPrefix(path, "/")
	}
	return len(path) > len(dir) && strings.HasPrefix(path, dir) && path[len(dir)] == filepath.Separator
}
