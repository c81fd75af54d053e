package keydir

import (
	"cmp"
	"context"
	"errors"
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
	// directory: CheckFileName's rule; an entry named otherwise is a problem).
	Entries map[string][]byte
	// Rejected are entries the feed could not hand on (a key outside the
	// layout, a value over its bound), by name: each is a Problem, and in
	// a revocation feed refuses every key, as an unreadable file would.
	Rejected map[string]error
	// Set, if not nil, holds the entries and the rejected ones instead
	// of Entries and Rejected. A feed that makes each view's set from the
	// last one's (FeedSet.Put, Reject, Delete) lets the loader examine
	// only the entries changed since the view it last read, so that a
	// change costs the same in a feed of any size.
	Set *FeedSet
	// Err is set when the view as a whole must not be used (no consistent
	// view yet, or older than the feed's bound on staleness): the feed is
	// then a Problem and holds no keys; a revocation feed refuses every
	// key.
	Err error
	// Group and State, if Group is not nil, say that the view is one
	// part of a larger source's consistent state (the kinds of one etcd
	// prefix, each a feed: Group the Source, State its view), so that
	// one change there may change several feeds at once (a transaction
	// that removes an authorization and its revocation together). Both
	// must be comparable. The loader never decides with views of one
	// Group's feeds of different States: a reload that reads one feed at
	// a State the others were not read at reads those again, until every
	// feed of the Group holds one State (alignFeeds). A view with Err
	// holds no keys, or refuses every key: it goes with any other.
	Group, State any
}

// ErrFeedsMixed is the problem of the feeds of one FeedView.Group whose
// views the loader could not read at one State (their source changing
// faster than they are read): they hold no keys, a revocation feed
// refuses every key, until the next reload reads them at one.
var ErrFeedsMixed = errors.New("keydir: the views of the feeds of one source changed faster than they could be read at one state")

// isFeed reports whether source i is a feed.
func (l *Loader[T]) isFeed(i int) bool { return l.cfg.Sources[i].Feed != nil }

// feedEntries returns a view's entries (Set's, or Entries and Rejected)
// sorted by name.
func feedEntries(v FeedView) []namedEntry {
	var all []namedEntry
	if v.Set != nil {
		all = make([]namedEntry, 0, v.Set.Len())
		for name, e := range v.Set.All() {
			all = append(all, namedEntry{name, e})
		}
	} else {
		all = make([]namedEntry, 0, len(v.Entries)+len(v.Rejected))
		for name, b := range v.Entries {
			if _, rejected := v.Rejected[name]; !rejected {
				all = append(all, namedEntry{name, FeedEntry{Data: b}})
			}
		}
		for name, err := range v.Rejected {
			all = append(all, namedEntry{name, FeedEntry{Err: err}})
		}
	}
	slices.SortFunc(all, func(a, b namedEntry) int { return cmp.Compare(a.name, b.name) })
	return all
}

type namedEntry struct {
	name string
	e    FeedEntry
}

// loadFeed makes source i's files from its feed's current view. When the
// view's set descends from the one last loaded, only the entries changed
// since are examined (updateFeed); otherwise (the first view, a relist, a
// view after Err, a feed of plain maps) every entry is. Either way an
// entry whose content did not change (by SHA-256) keeps its state and
// entries, and the others are parsed as files are (parse), in parallel
// when many.
func (l *Loader[T]) loadFeed(i int) bool {
	src, ss := l.cfg.Sources[i], &l.states[i]
	v := src.Feed.View()
	ss.feedGroup, ss.feedState = nil, nil
	if v.Err != nil {
		ss.feedGen, l.full = 0, true
		return ss.set(rowList[T]{}, problemOf(src.Path, v.Err, src.Revocation))
	}
	var jobs feedJobs[T]
	files, ok := l.updateFeed(i, v.Set, &jobs)
	if !ok {
		l.full = true
		all := feedEntries(v)
		rows := newBuilder[rowRefs[T], rowData](len(all))
		for _, x := range all {
			var prev *fileRow[T]
			p, found := ss.files.search(byName(&l.numbers, ss.nameAt, x.name))
			r := fileRow[T]{} // on the stack: feedEntry keeps no pointer to it
			if found {
				r = rowAt(ss.files, p)
				prev = &r
			}
			row := r // unchanged: its row as it was
			if state := l.feedEntry(i, x.name, x.e, prev); state != nil {
				row = l.placeFeed(ss, state, x.e.Data, &jobs)
			}
			rows.add(row.rowRefs, row.rowData)
		}
		files = rows.done()
	}
	changed := ss.set(files, nil)
	ForEach(len(jobs.states), func(j int) {
		state := jobs.states[j]
		state.parsed, state.problem, state.skipped = l.parse(i, state.path, jobs.data[j])
		state.read = true
	})
	l.fold(jobs.states)
	ss.feedGen = v.Set.Gen()
	ss.feedGroup, ss.feedState = v.Group, v.State
	return changed
}

// maxAlign bounds how many times alignFeeds reads a group's feeds again.
const maxAlign = 100

// alignFeeds reads again the feeds of each group (FeedView.Group) whose
// views are not all of one State, until they are, so that what the
// reload publishes never mixes two states of one source: one kind's
// entries from before a change and another's from after it could admit
// a key that neither state admits (TestFeedsOfOneTransactionNeverMixed,
// module etcd/). After maxAlign reads that never found them at one
// State, the group's feeds are ErrFeedsMixed (fail closed) until the
// next reload. It reports whether a source changed.
func (l *Loader[T]) alignFeeds() (changed bool) {
	for try := 0; ; try++ {
		mixed := l.mixedFeeds()
		if len(mixed) == 0 {
			return changed
		}
		for _, i := range mixed {
			if try < maxAlign {
				changed = l.loadFeed(i) || changed
				continue
			}
			src, ss := l.cfg.Sources[i], &l.states[i]
			ss.feedGen, ss.feedGroup, ss.feedState, l.full = 0, nil, nil, true
			changed = ss.set(rowList[T]{}, problemOf(src.Path, ErrFeedsMixed, src.Revocation)) || changed
		}
	}
}

// mixedFeeds returns the feed sources of the groups whose feeds hold
// views of more than one State.
func (l *Loader[T]) mixedFeeds() []int {
	var (
		state = map[any]any{}
		mixed map[any]bool
	)
	for i := range l.cfg.Sources {
		ss := &l.states[i]
		if !l.isFeed(i) || ss.feedGroup == nil {
			continue
		}
		if st, seen := state[ss.feedGroup]; !seen {
			state[ss.feedGroup] = ss.feedState
		} else if st != ss.feedState {
			if mixed == nil {
				mixed = map[any]bool{}
			}
			mixed[ss.feedGroup] = true
		}
	}
	var out []int
	for i := range l.cfg.Sources {
		if ss := &l.states[i]; mixed[ss.feedGroup] && ss.feedGroup != nil {
			out = append(out, i)
		}
	}
	return out
}

// updateFeed makes source i's files from set by examining only the
// entries changed since the set last loaded, if set descends from it and
// they are few; ok is false otherwise.
func (l *Loader[T]) updateFeed(i int, set *FeedSet, jobs *feedJobs[T]) (files rowList[T], ok bool) {
	ss := &l.states[i]
	if set == nil || ss.feedGen == 0 || ss.problem != nil {
		return files, false
	}
	names, ok := set.ChangedSince(ss.feedGen)
	if !ok || len(names) > max(64, set.Len()/16) {
		return files, false
	}
	slices.Sort(names)
	names = slices.Compact(names)
	// A new version: a reload edits in place only a list it made itself
	// (sourceState), never one an earlier version shares.
	ed := ss.files.edit()
	for _, name := range names {
		p, found := ed.c.search(byName(&l.numbers, ss.nameAt, name))
		e, in := set.Get(name)
		var prev, row *fileRow[T]
		if found {
			r := rowAt(ed.c, p) // a copy: the editor may move or write the rows it owns
			prev = &r
		}
		if in {
			state := l.feedEntry(i, name, e, prev)
			if state == nil {
				continue // unchanged
			}
			r := l.placeFeed(ss, state, e.Data, jobs)
			row = &r
		} else if prev == nil {
			continue
		}
		l.put(ed, p, found, i, name, prev, row)
	}
	return ed.done(), true
}

// feedJobs are the states of a feed's entries to parse (the jobs of
// loadFeed) and, beside each, its content: a state has no place for it,
// since a cold load holds a state for every file at once.
type feedJobs[T any] struct {
	states []*fileState[T]
	data   [][]byte
}

// placeFeed is place for the state of a feed's entry whose content is
// data.
func (l *Loader[T]) placeFeed(ss *sourceState[T], state *fileState[T], data []byte, jobs *feedJobs[T]) fileRow[T] {
	if state.job() {
		jobs.data = append(jobs.data, data)
	}
	return l.place(ss, state, &jobs.states)
}

// feedEntry returns the state of entry name of source i, or nil if prev
// (its row, nil: none) stays: its content is unchanged. A new state
// holds a problem, or is one to parse (not read yet: placeFeed keeps the
// content with it).
func (l *Loader[T]) feedEntry(i int, name string, e FeedEntry, prev *fileRow[T]) *fileState[T] {
	src := l.cfg.Sources[i]
	path := src.Path + "/" + name
	err := e.Err
	if err == nil {
		err = CheckFileName(name)
	}
	if err == nil && len(e.Data) > trustfile.MaxSize {
		err = fmt.Errorf("%w: %d bytes, more than the %d MiB a trust file may hold", trustfile.ErrTooLarge, len(e.Data), trustfile.MaxSize>>20)
	}
	if err != nil {
		state := newFileState[T](i, path)
		state.read = true
		state.problem = problemOf(path, err, src.Revocation)
		return state
	}
	sum := contentSum(e.Data)
	if prev != nil && prev.sum == sum && (prev.num != 0 || prev.problem() != nil) {
		return nil
	}
	state := newFileState[T](i, path)
	state.sum = sum
	return state
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
