package cli

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/keytool/keytool/internal/keydir"
)

// inotifyWatcher watches directories for names made, removed and renamed
// only: no IN_MODIFY, no IN_ATTRIB, which fsnotify always asks for. A
// directory watched for events its children can have (those two) makes
// the kernel mark every child's cached dentry when the watch is added
// (fsnotify_set_children_dentry_flags): 12–17 ms for a mirror's
// authorized_keys.d of 100,000 files, a third of a warm edit, where a
// watch for names costs 30 µs. keytool replaces an entry's file by
// renaming a new one over it (atomicfile) and never writes one in place,
// so the names say every file a command touched; a file rewritten in
// place by something else is not the command's, and the mirror never
// writes one to the store (docs/fleet.md).
type inotifyWatcher struct {
	fd     int      // the inotify instance, for adding and removing watches
	f      *os.File // the same, non-blocking, read through the runtime's poller (Close ends a Read)
	events chan fsnotify.Event
	errors chan error

	mu   sync.Mutex
	dirs map[int32]string // by watch descriptor
}

// nameEvents are what an inotifyWatcher asks of each directory.
const nameEvents = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW

func newDirWatcher() (keydir.Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	w := &inotifyWatcher{fd: fd, f: os.NewFile(uintptr(fd), "inotify"),
		events: make(chan fsnotify.Event), errors: make(chan error), dirs: map[int32]string{}}
	go w.read()
	return w, nil
}

func (w *inotifyWatcher) Events() <-chan fsnotify.Event { return w.events }
func (w *inotifyWatcher) Errors() <-chan error          { return w.errors }

func (w *inotifyWatcher) Add(dir string) error {
	wd, err := unix.InotifyAddWatch(w.fd, dir, nameEvents)
	if err != nil {
		return &os.PathError{Op: "inotify_add_watch", Path: dir, Err: err}
	}
	w.mu.Lock()
	w.dirs[int32(wd)] = dir
	w.mu.Unlock()
	return nil
}

func (w *inotifyWatcher) Remove(dir string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for wd, d := range w.dirs {
		if d == dir {
			delete(w.dirs, wd)
			if _, err := unix.InotifyRmWatch(w.fd, uint32(wd)); err != nil {
				return &os.PathError{Op: "inotify_rm_watch", Path: dir, Err: err}
			}
		}
	}
	return nil
}

func (w *inotifyWatcher) WatchList() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var dirs []string
	for _, d := range w.dirs {
		dirs = append(dirs, d)
	}
	return dirs
}

// Close ends the watch; the channels are closed once read ends.
func (w *inotifyWatcher) Close() error { return w.f.Close() }

// read turns the instance's events into fsnotify's until it is closed.
func (w *inotifyWatcher) read() {
	defer close(w.errors)
	defer close(w.events)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.f.Read(buf)
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			w.errors <- fmt.Errorf("inotify: %w", err)
			return
		}
		for b := buf[:n]; len(b) >= unix.SizeofInotifyEvent; {
			wd := int32(binary.NativeEndian.Uint32(b[0:4]))
			mask := binary.NativeEndian.Uint32(b[4:8])
			size := unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(b[12:16]))
			if size > len(b) {
				w.errors <- errors.New("inotify: an event cut short")
				return
			}
			name := string(bytes.TrimRight(b[unix.SizeofInotifyEvent:size], "\x00"))
			b = b[size:]
			if mask&unix.IN_Q_OVERFLOW != 0 {
				w.errors <- fsnotify.ErrEventOverflow
				continue
			}
			w.mu.Lock()
			dir, ok := w.dirs[wd]
			w.mu.Unlock()
			var op fsnotify.Op
			switch {
			case !ok || mask&unix.IN_IGNORED != 0:
				continue // a watch removed
			case mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0:
				op = fsnotify.Create
			case mask&(unix.IN_DELETE|unix.IN_DELETE_SELF|unix.IN_UNMOUNT) != 0:
				op = fsnotify.Remove
			case mask&(unix.IN_MOVED_FROM|unix.IN_MOVE_SELF) != 0:
				op = fsnotify.Rename
			default:
				continue
			}
			path := dir
			if name != "" {
				path = filepath.Join(dir, name)
			}
			w.events <- fsnotify.Event{Name: path, Op: op}
		}
	}
}
