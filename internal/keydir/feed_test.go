package keydir

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/trustfile"
)

// memFeed is a Feed held in memory: Set publishes a new view.
type memFeed struct {
	name string
	mu   sync.Mutex
	view FeedView
	subs map[chan struct{}]struct{}
}

func newMemFeed(name string) *memFeed {
	return &memFeed{name: name, subs: map[chan struct{}]struct{}{}}
}

func (f *memFeed) Name() string { return f.name }

func (f *memFeed) View() FeedView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view
}

func (f *memFeed) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

func (f *memFeed) Set(v FeedView) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.view = v
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// A feed's entries go through the file parser: every format loads, a bad
// entry is a problem named by the feed's name and the entry's, and an
// entry set with one bad member keeps its other keys.
func TestFeedEntriesParseLikeFiles(t *testing.T) {
	k := func(n int) []byte { return keydirtest.JWK(t, key(t, n)) }
	f := newMemFeed("etcd:/fleet/authorized_keys")
	f.Set(FeedView{
		Entries: map[string][]byte{
			"alice":   k(1),
			"bob.pem": keydirtest.PEM(t, key(t, 2)),
			"bad":     []byte("not a key"),
			".hidden": k(3),
			"set":     setWithBadMiddle(t, 4, 5),
			"huge":    make([]byte, trustfile.MaxSize+1),
		},
		Rejected: map[string]error{"a/b": errors.New("outside the layout")},
	})
	l := newLoader(Source{Path: f.Name(), Dir: true, Feed: f})
	snap := l.Reload()
	if got, want := fingerprints(snap), want(t, key(t, 1), key(t, 2), key(t, 4), key(t, 5)); !equal(got, want) {
		t.Fatalf("loaded %v, want %v", got, want)
	}
	bad := map[string]string{}
	for _, p := range snap.Problems {
		bad[p.Path] = p.Error()
	}
	for _, name := range []string{"bad", ".hidden", "set", "huge", "a/b"} {
		if bad["etcd:/fleet/authorized_keys/"+name] == "" {
			t.Errorf("no problem for entry %q; problems: %v", name, snap.Problems)
		}
	}
	if !errors.Is(problemFor(snap, "etcd:/fleet/authorized_keys/huge"), trustfile.ErrTooLarge) {
		t.Errorf("huge entry: %v", problemFor(snap, "etcd:/fleet/authorized_keys/huge"))
	}
	if snap.RevocationErr != nil {
		t.Errorf("RevocationErr %v from a feed of trusted keys", snap.RevocationErr)
	}
	if got := snap.Files()[0].Path(); got != "etcd:/fleet/authorized_keys/alice" {
		t.Errorf("file path %q", got)
	}
}

func problemFor(s *Snapshot[string], path string) error {
	for _, p := range s.Problems {
		if p.Path == path {
			return p
		}
	}
	return nil
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// A revocation feed fails closed like a revocation directory: a bad
// entry, a rejected one, or a view that must not be used (Err) sets
// RevocationErr; a good view clears it.
func TestRevocationFeedFailsClosed(t *testing.T) {
	f := newMemFeed("etcd:/fleet/revoked_keys")
	l := newLoader(Source{Path: f.Name(), Dir: true, Revocation: true, Feed: f})
	for name, v := range map[string]FeedView{
		"bad entry":  {Entries: map[string][]byte{"k": []byte("garbage")}},
		"rejected":   {Rejected: map[string]error{"x/y": errors.New("outside the layout")}},
		"stale view": {Err: errors.New("stale")},
	} {
		f.Set(v)
		if snap := l.Reload(); snap.RevocationErr == nil {
			t.Errorf("%s: no RevocationErr", name)
		}
		f.Set(FeedView{Entries: map[string][]byte{"k": keydirtest.JWK(t, key(t, 1))}})
		if snap := l.Reload(); snap.RevocationErr != nil || len(snap.Files()) != 1 {
			t.Errorf("%s, then a good view: %v, %d files", name, snap.RevocationErr, len(snap.Files()))
		}
	}
}

// A watching loader reloads a feed when it says it changed, re-parsing
// only the entries whose content changed.
func TestWatchFollowsFeed(t *testing.T) {
	dir := t.TempDir()
	f := newMemFeed("etcd:/fleet/authorized_keys")
	one := keydirtest.JWK(t, key(t, 1))
	f.Set(FeedView{Entries: map[string][]byte{"one": one}})
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}, {Path: f.Name(), Dir: true, Feed: f}}, Convert: fpConvert})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.Watch(ctx)
	defer l.Close()
	first := l.Snapshot().Files()[0]
	ch, stop := l.Subscribe()
	defer stop()
	f.Set(FeedView{Entries: map[string][]byte{"one": one, "two": keydirtest.JWK(t, key(t, 2))}})
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after the feed changed")
	}
	snap := l.Snapshot()
	if got, want := fingerprints(snap), want(t, key(t, 1), key(t, 2)); !equal(got, want) {
		t.Fatalf("loaded %v, want %v", got, want)
	}
	if snap.Files()[0] != first {
		t.Error("an unchanged entry was parsed again")
	}
}

// A loader of feeds alone takes no file watcher (an inotify instance is
// a scarce per-user resource), and still follows its feeds.
func TestFeedsAloneTakeNoFileWatcher(t *testing.T) {
	f := newMemFeed("etcd:/fleet/authorized_keys")
	l := New(Config[string]{Sources: []Source{{Path: f.Name(), Dir: true, Feed: f}}, Convert: fpConvert,
		NewWatcher: func() (*fsnotify.Watcher, error) {
			t.Error("a file watcher was made for feeds alone")
			return fsnotify.NewWatcher()
		}})
	l.Watch(t.Context())
	defer l.Close()
	ch, stop := l.Subscribe()
	defer stop()
	f.Set(FeedView{Entries: map[string][]byte{"one": keydirtest.JWK(t, key(t, 1))}})
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after the feed changed")
	}
	if got := fingerprints(l.Snapshot()); !equal(got, want(t, key(t, 1))) {
		t.Fatalf("loaded %v", got)
	}
}

// Feeds of one Group (the kinds of one etcd prefix) are never used at two
// States: while one stays at a State the others are not at, however often
// they are read again, they hold no keys and a revocation feed refuses
// every key (ErrFeedsMixed); read at one State, they are used again. (The
// re-read that finds them at one State: etcd's
// TestFeedsOfOneTransactionNeverMixed.)
func TestFeedsOfOneGroupNeverMixed(t *testing.T) {
	group := new(int)
	auth, revoked := newMemFeed("etcd:/fleet/authorized_keys"), newMemFeed("etcd:/fleet/revoked_keys")
	one := map[string][]byte{"one": keydirtest.JWK(t, key(t, 1))}
	auth.Set(FeedView{Entries: one, Group: group, State: 1})
	revoked.Set(FeedView{Group: group, State: 1})
	l := newLoader(Source{Path: auth.Name(), Dir: true, Feed: auth}, Source{Path: revoked.Name(), Dir: true, Revocation: true, Feed: revoked})
	if snap := l.Reload(); snap.RevocationErr != nil || len(fingerprints(snap)) != 1 {
		t.Fatalf("one State: %v, %v", snap.RevocationErr, fingerprints(snap))
	}
	auth.Set(FeedView{Entries: one, Group: group, State: 2})
	snap := l.Reload()
	if !errors.Is(snap.RevocationErr, ErrFeedsMixed) || len(fingerprints(snap)) != 0 {
		t.Errorf("two States: %v, %v; want ErrFeedsMixed, no keys", snap.RevocationErr, fingerprints(snap))
	}
	revoked.Set(FeedView{Group: group, State: 2})
	if snap := l.Reload(); snap.RevocationErr != nil || len(fingerprints(snap)) != 1 {
		t.Errorf("one State again: %v, %v", snap.RevocationErr, fingerprints(snap))
	}
	// A view with Err goes with any other: it holds no keys, or refuses
	// every key.
	revoked.Set(FeedView{Err: errors.New("stale")})
	if snap := l.Reload(); snap.RevocationErr == nil || len(fingerprints(snap)) != 1 || problemFor(snap, auth.Name()) != nil {
		t.Errorf("a stale revocation feed: %v, %v, %v", snap.RevocationErr, fingerprints(snap), snap.Problems)
	}
}
