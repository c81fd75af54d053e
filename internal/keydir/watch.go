package keydir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch loads the sources and keeps the snapshot current until ctx is
// cancelled or Close is called. It watches the source directories and the
// parents of single files (never the files themselves, which editors and
// Kubernetes replace rather than rewrite), debounces bursts of events into
// one reload that examines only what the events named, and rescans
// everything every Config.Rescan as a safety net. If notifications are not
// available it logs that and relies on the periodic rescan alone.
//
// Loaders share the process's one inotify instance (an inotify instance
// is a per-user resource, 128 by default) unless Config.NewWatcher gives
// one of their own; a loader of feeds alone (no file or directory) takes
// no part in it.
func (l *Loader[T]) Watch(ctx context.Context) {
	var fw Watcher
	if slices.ContainsFunc(l.cfg.Sources, func(s Source) bool { return s.Feed == nil }) {
		var err error
		if l.cfg.NewWatcher != nil {
			var own *fsnotify.Watcher
			if own, err = l.cfg.NewWatcher(); err == nil {
				fw = FSNotify(own)
			}
		} else {
			var sub *subscription
			if sub, err = subscribeShared(); err == nil {
				fw = sub
			}
		}
		if err != nil {
			l.log.Warn("cannot watch trust files; falling back to periodic rescans", "error", err, "every", l.cfg.Rescan)
		}
	}
	l.mu.Lock()
	l.fw = fw
	l.mu.Unlock()
	l.eventsLocal = fw != nil && !slices.ContainsFunc(l.cfg.Sources, func(s Source) bool {
		p := s.Path
		if !s.Dir {
			p = filepath.Dir(p)
		}
		return s.Feed == nil && !LocalStamps(p)
	})
	feeds := l.followFeeds()
	l.reload(hints{all: true})
	ctx, cancel := context.WithCancel(ctx)
	l.cancel = cancel
	l.done = make(chan struct{})
	go l.run(ctx, fw, feeds)
}

// Close stops watching and waits for the watcher's goroutines to end. It
// is safe to call on a loader that never watched, and more than once.
func (l *Loader[T]) Close() error {
	if l.cancel == nil {
		l.dropProved() // a LoadProved load's watch, if any
		return nil
	}
	l.cancel()
	<-l.done
	return nil
}

func (l *Loader[T]) run(ctx context.Context, fw Watcher, feeds func(context.Context, interface{ Go(func()) })) {
	defer close(l.done)
	// The rescan's comparison runs beside this loop (one at a time), so
	// events keep being read and reloaded while it stats every file.
	var (
		comparing chan compared // nil unless a comparison is under way
		wg        sync.WaitGroup
	)
	defer wg.Wait()
	feeds(ctx, &wg)
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if fw != nil {
		events, errs = fw.Events(), fw.Errors()
		defer func() {
			l.mu.Lock()
			l.fw = nil
			l.mu.Unlock()
			fw.Close()
		}()
	}
	var (
		tick   <-chan time.Time
		rescan *time.Timer
	)
	if l.cfg.Rescan > 0 {
		rescan = time.NewTimer(l.cfg.Rescan)
		defer rescan.Stop()
		tick = rescan.C
	}
	b := newBurst(l.cfg.Debounce)
	defer b.timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !l.irrelevant(ev.Name) && b.event(ev, time.Now(), l.atOnce(ev)) {
				b.timer.Stop()
				b.fire(l.reloadHolding)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				l.log.Warn("file notifications overflowed; rescanning everything")
			} else {
				l.log.Warn("file notification error; rescanning everything", "error", err)
			}
			b.schedule()
			b.pending.all = true
		case <-b.timer.C:
			b.fire(l.reloadHolding)
		case <-tick:
			ch := make(chan compared, 1)
			comparing = ch
			wg.Go(func() { ch <- l.compare() })
		case c := <-comparing:
			comparing = nil
			l.applyRescan(c.h)
			if c.listed >= releaseFiles {
				// The listing's and the stats' garbage (some 45 bytes a
				// file at a million files) would otherwise stay in the
				// resident set until the runtime's next collection, minutes
				// on a quiet server. Beside this loop: events go on.
				wg.Go(releaseMemory)
			}
			rescan.Reset(l.rescanWait(c))
		}
	}
}

// rescanShare is the share of the time a periodic rescan may take: it
// stats every file, some 1.2 µs each, and at a million files took 3 s of
// CPU a minute, 5% of a core, to catch events that are seldom lost
// (docs/benchmarks.md, "The periodic rescan at a million files").
const rescanShare = 100

// rescanWait is how long after the rescan c the next begins:
// Config.Rescan, or rescanShare times the comparison's time where that is
// longer (up to rescanStretch periods), so that the rescans of a large
// store take a hundredth of the time — where they are only the net for
// events lost, which is seldom (an overflow of them rescans at once):
// every source watched, on a file system whose stamps and events are its
// own (LocalStamps), and no file written through another path
// (compared.aliased). Where the rescan is what finds changes — a
// directory that could not be watched, NFS, a FUSE mount, a file linked
// or mounted from elsewhere — it runs every Config.Rescan, as configured.
func (l *Loader[T]) rescanWait(c compared) time.Duration {
	l.mu.Lock()
	net := l.eventsLocal && len(l.failed) == 0 && !c.aliased
	l.mu.Unlock()
	if !net {
		return l.cfg.Rescan
	}
	return min(max(l.cfg.Rescan, rescanShare*c.took), rescanStretch*l.cfg.Rescan)
}

// rescanStretch bounds how many periods a rescan may be put off: a lost
// event is found within ten minutes at the default period, however large
// the store.
const rescanStretch = 10

// burst is the watcher's state between events and the reload they
// cause (docs/design.md, "From a file change to a handshake decision").
type burst struct {
	debounce time.Duration
	timer    *time.Timer
	pending  hints
	first    time.Time       // of the pending burst
	last     time.Time       // when the last reload ended
	took     time.Duration   // how long it took
	settling bool            // the timer is for a reload at the leading edge
	created  map[string]bool // names created while settling
	// tokens are the changes that may still be applied the moment they
	// come (at most burstTokens, one more every tokenEvery), counted at
	// tokenAt.
	tokens  float64
	tokenAt time.Time
}

func newBurst(debounce time.Duration) *burst {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &burst{debounce: debounce, timer: t, tokens: burstTokens}
}

// event takes one relevant event, come at now; atOnce says whether its
// change may be applied the moment it comes (Loader.atOnce). It reports
// whether to reload at once (the caller then fires the burst).
func (b *burst) event(ev fsnotify.Event, now time.Time, atOnce bool) (reload bool) {
	b.tokens = min(burstTokens, b.tokens+float64(now.Sub(b.tokenAt))/float64(tokenEvery))
	b.tokenAt = now
	switch {
	case b.settling && ev.Has(fsnotify.Write) && !b.created[ev.Name]:
		// A file is being rewritten in place: wait for the burst to end,
		// as for any such write. (A file created in this burst is new:
		// what of it is read can only add to what was there before it.)
		b.settling = false
		b.schedule()
	case b.settling:
		if ev.Has(fsnotify.Create) {
			b.created[ev.Name] = true
		}
		b.timer.Reset(b.leadWait(now))
	case ev.Has(fsnotify.Write) || !b.pending.empty():
		b.schedule()
	case atOnce && b.tokens >= 1 && !now.Before(b.last.Add(b.took)):
		// A change that cannot be one step of several (Loader.atOnce),
		// while tokens last, is applied the moment its event comes: no
		// timer, whose firing a busy process delays by milliseconds. A
		// file caught half-written, or before its writer's chmod, is held
		// back by that reload (Loader.holdEarly) and read again once
		// events are quiet.
		b.tokens--
		b.pending.early = true
		reload = true
	default:
		// In a burst, a change is applied almost at once: after
		// settleTime without events, which lets a write-then-rename
		// finish, and no sooner than the last reload's duration after
		// it, so that reloading takes at most half a core however busy
		// the directory; what comes meanwhile joins that reload.
		b.settling = true
		b.created = map[string]bool{}
		if ev.Has(fsnotify.Create) {
			b.created[ev.Name] = true
		}
		b.first = now
		b.timer.Reset(b.leadWait(b.first))
	}
	b.pending.add(ev.Name)
	return reload
}

// schedule sets the timer for a reload once events have been quiet for
// the debounce, at most ten debounces after the burst's first event.
func (b *burst) schedule() {
	now := time.Now()
	if b.pending.empty() || b.first.IsZero() {
		b.first = now
	}
	wait := b.debounce
	if deadline := b.first.Add(10 * b.debounce); now.Add(wait).After(deadline) {
		wait = max(deadline.Sub(now), 0)
	}
	b.timer.Reset(wait)
}

// leadWait is how long a reload at the leading edge waits from now:
// settleTime of quiet, and no sooner than took after the last one; and,
// however busy the events, no later than the debounce after the first of
// them (or that earliest time).
func (b *burst) leadWait(now time.Time) time.Duration {
	earliest := b.last.Add(b.took)
	wait := max(settleTime, earliest.Sub(now))
	deadline := b.first.Add(b.debounce)
	if earliest.After(deadline) {
		deadline = earliest
	}
	if now.Add(wait).After(deadline) {
		wait = max(deadline.Sub(now), 0)
	}
	return wait
}

// fire runs the reload the timer was set for. Files held back (being
// written: Loader.reloadHolding) are pending again, for a reload once
// events have been quiet for the debounce.
func (b *burst) fire(reloadHolding func(hints) []string) {
	h := b.pending
	b.pending, b.first = hints{}, time.Time{}
	b.settling = false
	start := time.Now()
	for _, p := range reloadHolding(h) {
		b.pending.add(p)
	}
	if !b.pending.empty() {
		b.schedule()
	}
	b.last = time.Now()
	b.took = b.last.Sub(start)
}

// atOnce reports whether the change an event reports may be applied the
// moment it comes: a key file (by its name: keyFileName) created or
// renamed in, whole unless it is still being written, which the reload
// holds back; and a file removed from a source that grants trust, which
// only takes trust away. Any other change may be one step of several
// whose steps between no snapshot should show: vim renames the old file
// away before it writes the new one, sed -i and Puppet write a temporary
// of a visible name and rename it over the file, a file removed from a
// revocation source may be about to be written again, a new directory
// is being filled. Those wait for the burst's quiet (burst.event).
func (l *Loader[T]) atOnce(ev fsnotify.Event) bool {
	switch ev.Op {
	case fsnotify.Create:
		return keyFileName(filepath.Base(ev.Name))
	case fsnotify.Remove:
		for _, s := range l.cfg.Sources {
			if s.Revocation && s.Feed == nil && (ev.Name == s.Path || s.Dir && filepath.Dir(ev.Name) == s.Path) {
				return false
			}
		}
		return true
	}
	return false
}

// settleTime is the quiet a reload at the leading edge of a burst waits
// for, so that the rest of a quick write-then-rename (sed -i, install)
// arrives with it.
const settleTime = 2 * time.Millisecond

// A change applied the moment it comes costs a reload of its own (and
// each reload re-checks a server's open connections: tlsbridge.Live), so
// only so many are: burstTokens at once, then one every tokenEvery (500
// a second at most). Beyond that, events join a burst as above.
const (
	burstTokens = 4
	tokenEvery  = 2 * time.Millisecond
)

// irrelevant reports whether an event is about a name inside a source
// directory that is never a key file (keytool's own .*.tmp, editors'
// swap files): such events cannot change a snapshot, and must not start
// or stretch a burst. Kubernetes' ".." entries are relevant.
func (l *Loader[T]) irrelevant(name string) bool {
	base := filepath.Base(name)
	if !Ignored(base) || strings.HasPrefix(base, "..") {
		return false
	}
	dir := filepath.Dir(name)
	for _, s := range l.cfg.Sources {
		if s.Dir && s.Feed == nil && s.Path == dir {
			return true
		}
	}
	return false
}

// ensureWatches adds a watch on every source directory that exists and on
// the nearest existing ancestor of every source's parent, and drops
// watches no longer needed. It reports whether a watch was added. The
// caller holds l.mu.
func (l *Loader[T]) ensureWatches() bool {
	want := map[string]os.FileInfo{}
	for _, s := range l.cfg.Sources {
		if s.Feed != nil {
			continue
		}
		if s.Dir {
			if fi, err := os.Stat(s.Path); err == nil && fi.IsDir() {
				want[s.Path] = fi
			}
		}
		for d := filepath.Dir(s.Path); ; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				want[d] = fi
				break
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	have := map[string]bool{}
	for _, p := range l.fw.WatchList() {
		have[p] = true
	}
	added := false
	for d, fi := range want {
		if have[d] {
			// A path now naming another directory (a symlink swapped, a
			// directory renamed over) keeps a watch on the old one.
			if os.SameFile(l.watched[d], fi) {
				continue
			}
			_ = l.fw.Remove(d)
		}
		add := l.fw.Add
		if l.addWatch != nil {
			add = l.addWatch
		}
		if err := add(d); err != nil {
			if !l.failed[d] {
				l.failed[d] = true
				l.log.Warn("cannot watch directory; falling back to periodic rescans", "dir", d, "error", err, "every", l.cfg.Rescan)
			}
			continue
		}
		delete(l.failed, d)
		l.watched[d] = fi
		added = true
	}
	for d := range have {
		if want[d] == nil {
			_ = l.fw.Remove(d)
			delete(l.watched, d)
		}
	}
	return added
}
