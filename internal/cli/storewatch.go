package cli

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/trustfile"
)

// An observer watches the mirror's .d directories while the command runs,
// so that the files it touched are known without a look at the others
// (inotify on Linux). It can fail: a watch that cannot be added, an
// overflow of the kernel's queue, any error; then finish says so, and the
// mirror compares every file instead (mirror.changes).
type observer struct {
	w      keydir.Watcher    // nil: no watch
	kinds  map[string]string // a watched .d directory → its kind
	cookie string            // made and removed by a round: its removal ends the events before it
	seen   chan struct{}     // a cookie's removal read, or an error
	done   chan struct{}     // closed when the reading goroutine ends

	since time.Time // the ctime of a change made as the watch began (mark); zero: not known

	mu      sync.Mutex
	touched map[string]bool // paths of entry files with events
	broken  bool
}

// newWatcher makes an observer's watcher: one that reports the names
// made, removed or renamed in the directories added (fsnotify's Create,
// Remove, Rename) and the removal or renaming of such a directory itself
// (storewatch_linux.go: inotify for names only; elsewhere fsnotify, whose
// writes and mode changes the observer takes as touches too); tests
// replace it.
var newWatcher = newDirWatcher

// observe starts watching the mirror's .d directories, and its own (for
// the cookie). A failure leaves an observer whose finish says it saw
// nothing reliable.
func (m *mirror) observe() *observer {
	h := home.Dir(m.dir)
	m.edits = keydir.RecordEdits(m.dir)
	o := &observer{kinds: map[string]string{}, cookie: filepath.Join(m.dir, ".observed"),
		seen: make(chan struct{}, 1), done: make(chan struct{}), touched: map[string]bool{}}
	for _, kind := range StoreKinds {
		o.kinds[kindDir(h, kind)] = kind
	}
	defer o.mark(m.dir)
	w, err := newWatcher()
	if err != nil {
		return o
	}
	for _, dir := range append(slices.Collect(maps.Keys(o.kinds)), m.dir) {
		if err := w.Add(dir); err != nil {
			w.Close()
			return o
		}
	}
	o.w = w
	go o.read()
	return o
}

// mark sets since to the ctime of a file made (and removed) in dir: a
// file written after has a ctime at least that (the kernel's clock; no
// user can set a ctime).
func (o *observer) mark(dir string) {
	f, err := os.CreateTemp(dir, ".since-*")
	if err != nil {
		return
	}
	if fi, err := f.Stat(); err == nil {
		o.since = trustfile.StampOf(fi).Changed()
	}
	f.Close()
	os.Remove(f.Name())
}

// wake tells a waiting round that a cookie or an error came.
func (o *observer) wake() {
	select {
	case o.seen <- struct{}{}:
	default:
	}
}

// read takes the watcher's events until it is closed.
func (o *observer) read() {
	defer close(o.done)
	for {
		select {
		case ev, ok := <-o.w.Events():
			if !ok {
				return
			}
			o.mu.Lock()
			switch dir := filepath.Dir(ev.Name); {
			case ev.Name == o.cookie:
				if ev.Has(fsnotify.Remove) {
					o.wake()
				}
			case o.kinds[ev.Name] != "":
				o.broken = true // a watched directory itself removed or renamed
				o.wake()
			case o.kinds[dir] != "" && !keydir.Ignored(filepath.Base(ev.Name)):
				o.touched[ev.Name] = true
			}
			o.mu.Unlock()
		case err, ok := <-o.w.Errors():
			if !ok {
				return
			}
			if err != nil { // fsnotify.ErrEventOverflow among others
				o.mu.Lock()
				o.broken = true
				o.mu.Unlock()
				o.wake()
			}
		}
	}
}

// observeTimeout bounds the wait for the cookie's events.
const observeTimeout = 10 * time.Second

// round makes and removes the cookie and waits until its removal is read:
// events arrive in the order of the changes (one inotify queue), so every
// change made before it was read then.
func (o *observer) round() bool {
	f, err := os.OpenFile(o.cookie, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		err = errors.Join(f.Close(), os.Remove(o.cookie))
	}
	if err != nil {
		_ = os.Remove(o.cookie)
		return false
	}
	select {
	case <-o.seen:
		return true
	case <-time.After(observeTimeout):
		return false
	}
}

// finish stops watching and returns the paths of the entry files touched
// since observe, sorted; ok false if the watch cannot vouch for them.
func (o *observer) finish() (paths []string, ok bool) {
	if o.w == nil {
		return nil, false
	}
	ok = o.round()
	o.mu.Lock()
	ok = ok && !o.broken
	for p := range o.touched {
		paths = append(paths, p)
	}
	o.mu.Unlock()
	// What the removal of the watches reports comes after: not looked at.
	for _, dir := range o.w.WatchList() {
		_ = o.w.Remove(dir)
	}
	time.AfterFunc(closeAfter, o.close)
	if !ok {
		return nil, false
	}
	slices.Sort(paths)
	return paths, true
}

// closeAfter is when finish closes the watch it stopped. Closing an
// inotify instance waits for the kernel to release its marks (an SRCU
// grace period: 5–20 ms measured, most of a warm edit's cost beyond the
// home's), and so does a process's exit with one open; with its watches
// removed first (inotify_rm_watch) and left open, an exit costs nothing
// measurable (0.3 ms against 5–19 ms, median of 80). A command's process
// has ended long before; a longer-lived caller gets it closed.
const closeAfter = 2 * time.Second

// close closes the watch.
func (o *observer) close() {
	o.w.Close()
	<-o.done
}
