package keydir

import (
	"os"
	"path/filepath"
	"sync"

	"github.com/fsnotify/fsnotify"
)

// Watcher is what watches directories: for a loader, a subscription to
// the process's shared inotify instance (the default) or a watcher of its
// own (Config.NewWatcher, FSNotify); for the store mirror's command
// (internal/cli), one for the names made, removed or renamed in a few
// directories. An error from Errors, fsnotify.ErrEventOverflow among
// them, means events were lost.
type Watcher interface {
	Add(dir string) error
	Remove(dir string) error
	WatchList() []string
	Events() <-chan fsnotify.Event
	Errors() <-chan error
	Close() error
}

// FSNotify is w as a Watcher.
func FSNotify(w *fsnotify.Watcher) Watcher { return ownWatcher{w} }

// ownWatcher is an fsnotify watcher of its own (FSNotify).
type ownWatcher struct{ *fsnotify.Watcher }

func (w ownWatcher) Events() <-chan fsnotify.Event { return w.Watcher.Events }
func (w ownWatcher) Errors() <-chan error          { return w.Watcher.Errors }

// The process's one file watcher, shared by every watching loader that
// did not ask for its own. An inotify instance is a per-user resource
// (fs.inotify.max_user_instances, 128 by default): a program with an
// authorized-keys store, a trusted-hosts store, an identity watcher and a
// CA directory would otherwise take four, and a test binary running
// hundreds of loaders in parallel would run out. Each loader subscribes
// with the directories it watches; an event goes to the loaders watching
// its directory (or the directory itself); a directory is watched while
// any loader wants it; a loader that does not keep up gets an overflow
// error (it then rescans) rather than holding the others back; the
// watcher and its goroutine end with the last subscription.
var (
	sharedMu sync.Mutex // serialises subscribing and the last unsubscribing
	shared   *sharedWatcher
)

// subBuffer is how many events a subscription holds before it overflows.
const subBuffer = 4096

type sharedWatcher struct {
	fw   *fsnotify.Watcher
	done chan struct{} // closed when the dispatching goroutine ends

	mu   sync.Mutex
	subs map[*subscription]struct{}
	refs map[string]int         // watched directory → subscriptions wanting it
	fis  map[string]os.FileInfo // watched directory → the directory watched
}

// subscription is one loader's share of the shared watcher.
type subscription struct {
	w      *sharedWatcher
	events chan fsnotify.Event
	errs   chan error
	dirs   map[string]bool // under w.mu
	closed bool            // under sharedMu
}

// subscribeShared returns a new subscription to the shared watcher,
// making the watcher if there is none.
func subscribeShared() (*subscription, error) {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		fw, err := fsnotify.NewWatcher()
		if err != nil {
			return nil, err
		}
		shared = &sharedWatcher{fw: fw, done: make(chan struct{}), subs: map[*subscription]struct{}{}, refs: map[string]int{}, fis: map[string]os.FileInfo{}}
		go shared.dispatch()
	}
	s := &subscription{w: shared, events: make(chan fsnotify.Event, subBuffer), errs: make(chan error, 1), dirs: map[string]bool{}}
	shared.mu.Lock()
	shared.subs[s] = struct{}{}
	shared.mu.Unlock()
	return s, nil
}

// dispatch hands each event to the subscriptions watching its directory,
// and each error to every subscription, until the watcher is closed.
func (w *sharedWatcher) dispatch() {
	defer close(w.done)
	events, errs := w.fw.Events, w.fw.Errors
	for events != nil || errs != nil {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			dir := filepath.Dir(ev.Name)
			w.mu.Lock()
			for s := range w.subs {
				if s.dirs[dir] || s.dirs[ev.Name] {
					select {
					case s.events <- ev:
					default:
						s.fail(fsnotify.ErrEventOverflow)
					}
				}
			}
			w.mu.Unlock()
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.mu.Lock()
			for s := range w.subs {
				s.fail(err)
			}
			w.mu.Unlock()
		}
	}
}

// fail hands err to s unless an error is pending already (one is enough:
// each makes the loader rescan everything).
func (s *subscription) fail(err error) {
	select {
	case s.errs <- err:
	default:
	}
}

func (s *subscription) Events() <-chan fsnotify.Event { return s.events }
func (s *subscription) Errors() <-chan error          { return s.errs }

// Add watches dir for s. A directory other subscriptions watch already
// is watched once; if the path now names another directory than the one
// watched (a symlink swapped, a directory renamed over it), the watch
// moves to the new one, for every subscription.
func (s *subscription) Add(dir string) error {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if w.refs[dir] > 0 && !os.SameFile(w.fis[dir], fi) {
		_ = w.fw.Remove(dir)
		delete(w.fis, dir)
	}
	if w.fis[dir] == nil {
		if err := w.fw.Add(dir); err != nil {
			return err
		}
		w.fis[dir] = fi
	}
	if !s.dirs[dir] {
		s.dirs[dir] = true
		w.refs[dir]++
	}
	return nil
}

// Remove stops watching dir for s; the directory stays watched while
// another subscription wants it.
func (s *subscription) Remove(dir string) error {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	s.remove(dir)
	return nil
}

// remove is Remove with w.mu held.
func (s *subscription) remove(dir string) {
	w := s.w
	if !s.dirs[dir] {
		return
	}
	delete(s.dirs, dir)
	if w.refs[dir]--; w.refs[dir] > 0 {
		return
	}
	delete(w.refs, dir)
	if w.fis[dir] != nil {
		_ = w.fw.Remove(dir)
		delete(w.fis, dir)
	}
}

// WatchList is the directories s watches.
func (s *subscription) WatchList() []string {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	dirs := make([]string, 0, len(s.dirs))
	for d := range s.dirs {
		dirs = append(dirs, d)
	}
	return dirs
}

// Close ends s, and the shared watcher with the last subscription.
func (s *subscription) Close() error {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	w := s.w
	w.mu.Lock()
	for d := range s.dirs {
		s.remove(d)
	}
	delete(w.subs, s)
	last := len(w.subs) == 0
	w.mu.Unlock()
	if last {
		shared = nil
		err := w.fw.Close()
		<-w.done
		return err
	}
	return nil
}
