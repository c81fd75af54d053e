package trustfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Dir is an open directory of trust files that only this program writes
// (the admin index, docs/design.md "The admin index"), read many at a
// time: the directory and those above it up to Top are checked once,
// when it is opened, and each file is then read relative to the open
// directory, never through a symbolic link, with only its own check —
// four system calls a file instead of a climb of its path.
type Dir struct {
	h    dirHandle
	path string
	rule Rule
}

// OpenDir opens the directory path and checks it as CheckDir does; the
// path must still name the directory opened once it is checked.
func (r Rule) OpenDir(path string) (*Dir, error) {
	h, fi, err := openDirHandle(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		err = fmt.Errorf("%s: not a directory", path)
	}
	if err == nil {
		err = r.CheckDir(path)
	}
	if err == nil {
		if now, serr := os.Stat(path); serr != nil || !sameFile(now, fi) {
			err = &ChangedError{Path: path, Err: serr}
		}
	}
	if err != nil {
		h.close()
		return nil, err
	}
	return &Dir{h: h, path: path, rule: r}, nil
}

// ReadFile reads the file name of the directory as Read does, refusing a
// symbolic link, and checks its owner and mode.
func (d *Dir) ReadFile(name string) ([]byte, fs.FileInfo, error) {
	path := filepath.Join(d.path, name)
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, filepath.Separator) {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrInvalid}
	}
	f, err := d.h.openAt(name, path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, fi, err := readOpen(f)
	if err != nil {
		return nil, fi, err
	}
	if err := d.rule.CheckMode(path, fi); err != nil {
		return nil, fi, err
	}
	return data, fi, nil
}

// Close closes the directory.
func (d *Dir) Close() error { return d.h.close() }
