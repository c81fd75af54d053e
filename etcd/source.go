package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/knownhosts"
)

// Defaults of Options.
const (
	// DefaultMaxStaleness bounds how long a Source that cannot confirm it
	// is current keeps its view (docs/fleet.md, "Staleness"): long enough
	// to ride out a leader election, a member's restart or a rolling
	// upgrade of etcd (seconds to a minute each) without refusing the
	// fleet, short enough that a revocation written while a host is cut
	// off from etcd is enforced there, by refusing every key, within
	// minutes rather than never.
	DefaultMaxStaleness = 5 * time.Minute
	// DefaultMaxValue bounds one entry's value. A key file is a few
	// hundred bytes; a JWK Set of a thousand keys fits.
	DefaultMaxValue = 256 << 10
	// listPage is how many keys one range request of a list returns.
	listPage = 5000
)

// Options say which etcd prefix a Source reads and how.
type Options struct {
	// Client is the caller's etcd client, with its endpoints, TLS and
	// authentication (docs/fleet.md, "Security"). The Source does not
	// close it; while it cannot reach any member, the Source has its
	// connection try etcd again about once a second (docs/fleet.md,
	// "Reconnecting").
	Client *clientv3.Client
	// Prefix is the root of the layout (for example "/keytool/prod").
	Prefix string
	// Cache is the local file the last consistent view is kept in and read
	// from at start when etcd cannot be reached. Empty: no cache, and no
	// view until etcd answers.
	Cache string
	// Top is the top of the strict-modes check of Cache (trustfile.Rule's
	// Top): the keytool home, for a cache in it, which is then checked up
	// to and including the home, as the home's other trust inputs are; a
	// cache outside Top is checked up to the root directory. Empty: the
	// cache's own directory.
	Top string
	// MaxStaleness is how long the view is used without being confirmed
	// current; past it the stores refuse every key until etcd answers.
	// Zero means DefaultMaxStaleness; negative, no bound.
	MaxStaleness time.Duration
	// Progress is how often the Source asks etcd to confirm it is current
	// (a progress notification). Zero means a fifth of MaxStaleness, at
	// most a minute.
	Progress time.Duration
	// MaxValue bounds one entry's value (DefaultMaxValue if zero); a
	// larger one is reported and ignored.
	MaxValue int
	// Logger receives the Source's state changes (stale, current again,
	// relists, errors); nil discards them.
	Logger *slog.Logger

	// wall is the wall clock the age of a view is also read on (nil:
	// time.Now): tests move it as a suspend does, the monotonic clock
	// left as it is.
	wall func() time.Time
}

// ErrNoView means the Source has no consistent view to give: etcd has not
// answered yet and there is no usable cache.
var ErrNoView = errors.New("etcd: no view of the prefix yet (etcd not reached, no usable cache)")

// StaleError means the view was last confirmed current longer ago than
// Options.MaxStaleness allows.
type StaleError struct {
	Current time.Time // when the view was last known current
	Max     time.Duration
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("etcd: view last known current at %s, more than %s ago: refusing every key until etcd answers", e.Current.UTC().Format(time.RFC3339), e.Max)
}

// view is one consistent state of the prefix. It is never modified once
// published.
type view struct {
	rev int64
	// applied is the revision of the last event applied (at first, the
	// list's): apply skips the events at or below it, which the view
	// holds. rev may be past it: a progress notification says every event
	// up to its revision was sent, and a member older than etcd 3.5.8
	// (3.4.25) says so before it sends them (etcd issue 15220), so that
	// events at or below rev can still come, and are applied
	// (TestOvertakenEventsApplied).
	applied int64
	// entries are the entries of each kind by name (a value over the
	// bound is there rejected), as sets a change copies a few nodes of,
	// not the whole (keydir.FeedSet): the stores then re-read only the
	// entries a change touched. other holds the values of the keys that
	// are no entry (over the bound, outside the layout) by key relative
	// to the prefix, so that the cache keeps them too.
	entries [numKinds]*keydir.FeedSet
	other   map[string][]byte
	outside []keydir.Problem
	// witness is the key (relative to the prefix) of the last write the
	// view holds, made at revision witnessRev ("": none known), a removal
	// if removed: a history whose key there at that revision is not that
	// write (present, at another revision; or present where it was
	// removed) is another one (check).
	witness    string
	witnessRev int64
	removed    bool
	// listRev is the revision of the list the view came from while its
	// witness is that list's and below it (0 otherwise), and listCount
	// the prefix's count of keys there: a list sees no removal, so its
	// witness (the last key still there) vouches for nothing written
	// after it, and a history that lost a removal between the two is
	// told by its count at listRev (check).
	listRev, listCount int64
}

// Source is a live, consistent view of an etcd prefix that the trust
// stores read (AuthorizedOptions, KnownHostsOptions). Its methods are
// safe for concurrent use.
type Source struct {
	opts   Options
	prefix string // with no trailing slash
	log    *slog.Logger

	cur     atomic.Pointer[view]
	cluster atomic.Uint64 // etcd's cluster ID at the last list (otherCluster)
	// current is when cur was last known current (nil: never), a time
	// with the monotonic reading of this process's clock and the wall
	// clock's (a cache's time, from another process, is made one at its
	// load): its age is the larger of the two (age).
	current atomic.Pointer[time.Time]
	noView  atomic.Pointer[error]
	stale   atomic.Bool // the stale state was announced
	// unconfirmed is why the last read confirming the view failed (nil:
	// it did not), for the error that says the view turned stale.
	unconfirmed atomic.Pointer[error]
	staleFor    *time.Timer
	// want is what a progress notification must reach to confirm the
	// view current (the last check that asked for one; nil: none).
	want atomic.Pointer[progressWant]

	subMu sync.Mutex
	subs  [numKinds]map[chan struct{}]struct{}

	cacheDirty chan struct{}
	cachedAt   atomic.Int64 // the current time in the cache last written
	ready      chan struct{}
	readyOnce  sync.Once
	relists    atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open reads the cache, if any, and starts following the prefix until ctx
// is cancelled or Close is called. It does not wait for etcd: Ready says
// when the first list is in.
func Open(ctx context.Context, opts Options) (*Source, error) {
	if opts.Client == nil {
		return nil, errors.New("etcd: Options.Client is nil")
	}
	if opts.Prefix == "" || strings.Trim(opts.Prefix, "/") == "" {
		return nil, errors.New("etcd: Options.Prefix is empty (a prefix of its own keeps keytool's keys apart from the cluster's others)")
	}
	if opts.MaxStaleness == 0 {
		opts.MaxStaleness = DefaultMaxStaleness
	}
	if opts.Progress <= 0 {
		opts.Progress = min(opts.MaxStaleness/5, time.Minute)
		if opts.MaxStaleness < 0 {
			opts.Progress = time.Minute
		}
	}
	if opts.MaxValue <= 0 {
		opts.MaxValue = DefaultMaxValue
	}
	s := &Source{
		opts:       opts,
		prefix:     strings.TrimSuffix(opts.Prefix, "/"),
		log:        opts.Logger,
		cacheDirty: make(chan struct{}, 1),
		ready:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for k := range s.subs {
		s.subs[k] = map[chan struct{}]struct{}{}
	}
	noView := ErrNoView
	s.noView.Store(&noView)
	if opts.Cache != "" {
		s.loadCache()
	}
	if opts.MaxStaleness > 0 {
		s.staleFor = time.AfterFunc(time.Hour, s.checkStale)
		s.armStale()
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.wg.Go(func() { s.run(ctx) })
	s.wg.Go(func() { s.reconnect(ctx) })
	if opts.Cache != "" {
		s.wg.Go(func() { s.writeCaches(ctx) })
	}
	return s, nil
}

// Close stops following etcd and waits for the Source's goroutines; the
// stores keep the last view. The cache holds the last consistent state.
func (s *Source) Close() error {
	s.cancel()
	s.wg.Wait()
	if s.staleFor != nil {
		s.staleFor.Stop()
	}
	return nil
}

// Revision is the etcd revision of the last change the view holds (at
// first, that of its list): the State of the Source's FeedViews says it,
// so that a reader of both the view and its own lists of the prefix
// (keytool sync --watch) can tell which is newer and never take an older
// state after a newer (cli.StoreState). A progress notification moves
// the view's rev, not this: a member older than etcd 3.5.8 sends it
// before the events it covers.
func (v *view) Revision() int64 { return v.applied }

// Ready is closed once the first list of the prefix from etcd is in.
func (s *Source) Ready() <-chan struct{} { return s.ready }

// Revision is the etcd revision the view is consistent at (0: none yet).
func (s *Source) Revision() int64 {
	if v := s.cur.Load(); v != nil {
		return v.rev
	}
	return 0
}

// Current is when the view was last known current: the start of the last
// list, or of the last progress request etcd answered (the zero time:
// never).
func (s *Source) Current() time.Time {
	if t := s.current.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// Relists counts the lists after the first (each compaction that cut a
// watch off costs one, and each history found not the view's: a restore,
// another cluster).
func (s *Source) Relists() int64 { return max(s.relists.Load()-1, 0) }

// Entries returns the view's entries of kind k, by name (the caller must
// not modify the values), leaving out those over the bound.
func (s *Source) Entries(k Kind) map[string][]byte {
	v := s.cur.Load()
	if v == nil {
		return nil
	}
	m := make(map[string][]byte, v.entries[k].Len())
	for name, e := range v.entries[k].All() {
		if e.Err == nil {
			m[name] = e.Data
		}
	}
	return m
}

// Problems returns the keys under the prefix outside the layout (the
// stores report those of each kind themselves).
func (s *Source) Problems() []keydir.Problem {
	if v := s.cur.Load(); v != nil {
		return slices.Clone(v.outside)
	}
	return nil
}

// AuthorizedOptions are the options of an authkeys store reading the
// prefix's authorized_keys and revoked_keys (add files and directories to
// them to read both).
func (s *Source) AuthorizedOptions() authkeys.Options {
	return authkeys.Options{Feeds: []authkeys.Feed{s.Feed(Authorized)}, RevokedFeeds: []authkeys.Feed{s.Feed(Revoked)}, Logger: s.opts.Logger}
}

// KnownHostsOptions are the options of a knownhosts store reading the
// prefix's trusted_hosts and revoked_keys.
func (s *Source) KnownHostsOptions() knownhosts.Options {
	return knownhosts.Options{Feeds: []knownhosts.Feed{s.Feed(TrustedHosts)}, RevokedFeeds: []knownhosts.Feed{s.Feed(Revoked)}, Logger: s.opts.Logger}
}

// Feed returns the entries of kind k as a store's feed.
func (s *Source) Feed(k Kind) keydir.Feed { return feed{s, k} }

// feed is one kind of entry of a Source, as keydir reads it.
type feed struct {
	s *Source
	k Kind
}

func (f feed) Name() string { return "etcd:" + f.s.prefix + "/" + f.k.String() }

func (f feed) View() keydir.FeedView {
	v, err := f.s.usable()
	if err != nil {
		return keydir.FeedView{Err: err}
	}
	// Group and State: the kinds are one state of the prefix, and the
	// stores never decide with one kind's entries from one view and
	// another's from another (a transaction that changes both: keydir's
	// alignFeeds, TestFeedsOfOneTransactionNeverMixed).
	return keydir.FeedView{Set: v.entries[f.k], Group: f.s, State: v}
}

func (f feed) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s := f.s
	s.subMu.Lock()
	s.subs[f.k][ch] = struct{}{}
	s.subMu.Unlock()
	return ch, func() {
		s.subMu.Lock()
		delete(s.subs[f.k], ch)
		s.subMu.Unlock()
	}
}

// usable returns the view if it may be used: there is one, and it is not
// older than MaxStaleness.
func (s *Source) usable() (*view, error) {
	v := s.cur.Load()
	if v == nil {
		return nil, *s.noView.Load()
	}
	if max := s.opts.MaxStaleness; max > 0 {
		if cur := s.Current(); s.age(cur) > max {
			return nil, &StaleError{Current: cur, Max: max}
		}
	}
	return v, nil
}

// notify tells the subscribers of the kinds set in which.
func (s *Source) notify(which [numKinds]bool) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for k, yes := range which {
		if !yes {
			continue
		}
		for ch := range s.subs[k] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

var allKinds = [numKinds]bool{true, true, true}

// publish makes v the view, and tells the subscribers of the kinds that
// changed (all of them when the view replaces none, or a list's).
func (s *Source) publish(v *view, which [numKinds]bool) {
	s.cur.Store(v)
	s.notify(which)
	s.touchCache()
}

// markCurrent records that the view was current at t, and, if it had been
// announced stale, announces that it is current again.
func (s *Source) markCurrent(t time.Time) {
	for {
		old := s.current.Load()
		if old != nil && !t.After(*old) || s.current.CompareAndSwap(old, &t) {
			break
		}
	}
	s.armStale()
	if s.stale.Swap(false) {
		s.log.Info("etcd view current again: keys admitted as the view says", "prefix", s.prefix, "revision", s.Revision())
		s.notify(allKinds)
	}
	if s.opts.Cache != "" && s.opts.MaxStaleness > 0 && time.Duration(t.UnixNano()-s.cachedAt.Load()) > s.opts.MaxStaleness/4 {
		s.touchCache()
	}
}

// age is how old a view last known current at cur is: the larger of its
// age on the monotonic clock and on the wall clock. The monotonic clock
// alone was not stepped back with the wall clock (which would have made
// a view younger, and kept it longer than MaxStaleness), but it stops
// while the system is suspended: a laptop or a VM resumed after an hour
// kept admitting from an hour-old view — revocations made meanwhile
// unseen — for as long as MaxStaleness again (found by review). The wall
// clock counts the suspend; a wall clock stepped forward makes the view
// older, and at worst stale until etcd confirms it (fail closed), never
// younger.
func (s *Source) age(cur time.Time) time.Duration {
	now := time.Now()
	wall := now
	if s.opts.wall != nil {
		wall = s.opts.wall()
	}
	return max(now.Sub(cur), wall.Round(0).Sub(cur.Round(0))) // Round(0): the wall readings, not the monotonic
}

// staleEvery is the longest the stale timer waits between two looks at
// the view's age: timers run on the monotonic clock, which stops while
// the system is suspended, so that a timer armed for the moment the view
// turns stale fires that much later after a resume; looking again at
// least every staleEvery finds a view the suspend made stale within about
// staleEvery of the resume.
const staleEvery = time.Second

// armStale sets the timer to the moment the view turns stale, or
// staleEvery if that is sooner.
func (s *Source) armStale() {
	if s.staleFor == nil {
		return
	}
	wait := s.opts.MaxStaleness - s.age(s.Current()) + time.Millisecond
	s.staleFor.Reset(min(max(wait, time.Millisecond), staleEvery))
}

// checkStale runs when the view may have turned stale: if it has, it says
// so once and tells the stores, which then refuse every key.
func (s *Source) checkStale() {
	if s.cur.Load() == nil {
		return
	}
	cur := s.Current()
	if s.age(cur) <= s.opts.MaxStaleness {
		s.armStale()
		return
	}
	if !s.stale.Swap(true) {
		args := []any{"prefix", s.prefix, "current", cur, "max", s.opts.MaxStaleness}
		if err := s.unconfirmed.Load(); err != nil {
			args = append(args, "error", *err) // why the view could not be confirmed
		}
		s.log.Error("etcd view stale: refusing every key until etcd answers", args...)
		s.notify(allKinds)
	}
}

// markReady closes Ready once.
func (s *Source) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// makeView classifies kv (keys relative to the prefix) into a view at rev.
func (s *Source) makeView(rev int64, kv map[string][]byte) *view {
	v := &view{rev: rev, applied: rev, other: map[string][]byte{}}
	for k := range v.entries {
		v.entries[k] = keydir.NewFeedSet()
	}
	for _, rel := range slices.Sorted(maps.Keys(kv)) {
		s.place(v, rel, kv[rel], false)
	}
	return v
}

// place puts the value of key rel into v (deleted: takes it out). v's
// other and outside must be v's own (apply copies them first).
func (s *Source) place(v *view, rel string, val []byte, deleted bool) (Kind, bool) {
	k, name, ok := classify(rel)
	_, had := v.other[rel] // a key outside the layout is in other as long as it is in outside
	delete(v.other, rel)
	if !ok {
		if had { // not for each key of a list (makeView): n² for n keys outside, 80 s at 40,000
			v.outside = slices.DeleteFunc(v.outside, func(p keydir.Problem) bool { return p.Path == s.prefix+"/"+rel })
		}
		if !deleted {
			v.outside = append(v.outside, keydir.Problem{Path: s.prefix + "/" + rel, Err: ErrOutsideLayout})
			v.other[rel] = val
		}
		return 0, false
	}
	switch {
	case deleted:
		v.entries[k] = v.entries[k].Delete(name)
	case len(val) > s.opts.MaxValue:
		v.entries[k] = v.entries[k].Reject(name, &TooLargeError{Key: s.prefix + "/" + rel, Size: len(val), Max: s.opts.MaxValue})
		v.other[rel] = val
	default:
		v.entries[k] = v.entries[k].Put(name, val)
	}
	return k, true
}
