package keydir

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/keytool/keytool/internal/trustfile"
)

// Feed is a source of key entries other than files: a distributed store
// (the etcd module), or any program that holds a consistent view of named
// key files. The loader reads a feed like a directory: each entry's bytes
// are what a key file would hold, and go through the same parse, the same
// per-entry problems and the same fail-closed rule for revocations
// (docs/design.md, "Trust from elsewhere than files").
type Feed interface {
	// Name names the feed where a file's path would be: entry NAME is
	// reported, and its keys' File set, as Name()+"/"+NAME. It must not
	// be a file path (etcd:/fleet/authorized_keys, not /fleet/…).
	Name() string
	// View returns the feed's current consistent view. The loader does
	// not modify it, and the feed must not modify it afterwards.
	View() FeedView
	// Subscribe returns a channel that receives a value (coalesced: one
	// pending at most) after each change of View, and a function that ends
	// the subscription.
	Subscribe() (<-chan struct{}, func())
}

// FeedView is one consistent state of a feed.
type FeedView struct {
	// Entries holds each entry's content by name (a name as in a .d
	// directory: CheckName's rule; an entry named otherwise is a problem).
	Entries map[string][]byte
	// Rejected are entries the feed could not hand on (a key outside the
	// layout, a value over its bound), by name: each is a Problem, and in
	// a revocation feed refuses every key, as an unreadable file would.
	Rejected map[string]error
	// Err is set when the view as a whole must not be used (no consistent
	// view yet, or older than the feed's bound on staleness): the feed is
	// then a Problem and holds no keys; a revocation feed refuses every
	// key.
	Err error
}

// isFeed reports whether source i is a feed.
func (l *Loader[T]) isFeed(i int) bool { return l.cfg.Sources[i].Feed != nil }

// loadFeed makes source i's files from its feed's current view: an entry
// whose content did not change (by SHA-256) keeps its state and entries,
// the others are parsed as files are (parse), in parallel when many.
func (l *Loader[T]) loadFeed(i int) bool {
	src, ss := l.cfg.Sources[i], &l.states[i]
	v := src.Feed.View()
	if v.Err != nil {
		return ss.set(nil, problemOf(src.Path, v.Err, src.Revocation))
	}
	names := make([]string, 0, len(v.Entries)+len(v.Rejected))
	for name := range v.Entries {
		names = append(names, name)
	}
	for name := range v.Rejected {
		if _, dup := v.Entries[name]; !dup {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	files := make([]*fileState[T], 0, len(names))
	var jobs []*fileState[T]
	var data [][]byte
	for _, name := range names {
		path := src.Path + "/" + name
		fail := func(err error) {
			state := newFileState[T](i, name, path)
			state.read, state.problem = true, problemOf(path, err, src.Revocation)
			files = append(files, state)
		}
		if err := v.Rejected[name]; err != nil {
			fail(err)
			continue
		}
		if err := CheckName(name); err != nil {
			fail(err)
			continue
		}
		b := v.Entries[name]
		if len(b) > trustfile.MaxSize {
			fail(fmt.Errorf("%w: %d bytes, more than the %d MiB a trust file may hold", trustfile.ErrTooLarge, len(b), trustfile.MaxSize>>20))
			continue
		}
		sum := sha256.Sum256(b)
		if prev := lookup(ss.files, name); prev != nil && prev.read && prev.sum == sum && (prev.file != nil || prev.problem != nil) {
			files = append(files, prev)
			continue
		}
		state := newFileState[T](i, name, path)
		state.read, state.sum = true, sum
		files = append(files, state)
		jobs = append(jobs, state)
		data = append(data, b)
	}
	ForEach(len(jobs), func(j int) {
		state := jobs[j]
		f, p, skipped := l.parse(i, state.path, data[j])
		state.file, state.problem = f, p
		if len(skipped) > 0 {
			state.skipped = &skipped
		}
	})
	return ss.set(files, nil)
}

// followFeeds subscribes to every feed source. Watch calls it before its
// first reload, so that no change falls between that reload and the
// subscription; start then reloads a feed's source after each change
// until ctx ends, on goroutines that wait adds to.
func (l *Loader[T]) followFeeds() (start func(ctx context.Context, wait interface{ Go(func()) })) {
	type sub struct {
		path string
		ch   <-chan struct{}
		stop func()
	}
	var subs []sub
	for i, src := range l.cfg.Sources {
		if l.isFeed(i) {
			ch, stop := src.Feed.Subscribe()
			subs = append(subs, sub{src.Path, ch, stop})
		}
	}
	return func(ctx context.Context, wait interface{ Go(func()) }) {
		for _, s := range subs {
			wait.Go(func() {
				defer s.stop()
				for {
					select {
					case <-ctx.Done():
						return
					case <-s.ch:
						var h hints
						h.add(s.path)
						l.reload(h)
					}
				}
			})
		}
	}
}
