//go:build unix

package cli

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/keytool/keytool/internal/keydir"
)

// flakyStore is a Store whose live view is a fakeFeeds and whose List
// fails while failLists is above 0 (etcd answering the watch but not a
// list: a leader election, a request timing out).
type flakyStore struct {
	*fakeFeeds
	mu        sync.Mutex
	failLists int
	listed    atomic.Int32 // List calls, failed ones included
}

func (s *flakyStore) List(ctx context.Context) (StoreListing, error) {
	s.listed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failLists > 0 {
		s.failLists--
		return StoreListing{}, errors.New("flaky: the list timed out")
	}
	return s.fakeFeeds.List(ctx)
}
func (s *flakyStore) MaxValue() int { return 0 }
func (s *flakyStore) Close() error  { return nil }
func (s *flakyStore) Follow(context.Context, FollowOptions) (Follower, error) {
	return s.fakeFeeds, nil
}

var (
	flakyStores    sync.Map // host → *flakyStore
	flakyStoreOnce sync.Once
)

// TestSyncWatchRetriesAFailedMirror: sync --watch whose mirror did not
// happen — the store not listed (here its first list fails), a write
// failed — tries again soon, while its view (which the proxy enforces)
// holds a revocation the home does not. Before, it waited for the next
// change of the store or the full pass 5 minutes later, the home
// admitting the revoked key meanwhile. (Found by review, 2026-12-05.)
func TestSyncWatchRetriesAFailedMirror(t *testing.T) {
	flakyStoreOnce.Do(func() {
		RegisterStore(StoreBackend{Schemes: []string{"flakytest"}, Flags: func(*pflag.FlagSet) StoreOpener {
			return func(_ context.Context, u *url.URL) (Store, error) {
				st, ok := flakyStores.Load(u.Host)
				if !ok {
					return nil, errors.New("flakytest: no store " + u.Host)
				}
				return st.(*flakyStore), nil
			}
		}})
	})
	keys := syncKeys(t, 1)
	f := &fakeFeeds{sets: map[string]*keydir.FeedSet{}}
	for _, kind := range StoreKinds {
		f.sets[kind] = keydir.NewFeedSet()
	}
	f.sets[StoreAuthorized] = f.sets[StoreAuthorized].Put("bob.json", keys[0])
	f.sets[StoreRevoked] = f.sets[StoreRevoked].Put("bob.json", keys[0])
	st := &flakyStore{fakeFeeds: f, failLists: 1}
	flakyStores.Store(t.Name(), st)
	h := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(h, 0o700); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		_, stderr, _ := runKeytool(t, "", "sync", "flakytest://"+t.Name()+"/p", "--to", h, "--watch")
		done <- stderr
	}()
	revoked := filepath.Join(h, "revoked_keys.d", "bob.json")
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(revoked); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, err := os.Stat(revoked)
	for st.listed.Load() == 0 { // the signal's handler is in place
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var stderr string
	select {
	case stderr = <-done:
	case <-time.After(time.Minute):
		t.Fatal("sync --watch did not stop on SIGINT")
	}
	if err != nil {
		t.Fatalf("15 s after its first list failed, sync --watch had not mirrored the store (lists: %d): bob, revoked in its view, is not revoked in the home\n%s", st.listed.Load(), stderr)
	}
	if !strings.Contains(stderr, "store not listed") {
		t.Errorf("stderr does not say the list failed:\n%s", stderr)
	}
}
