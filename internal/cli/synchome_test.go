//go:build unix

package cli

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/keytool/keytool/internal/keydir"
)

var (
	homeCheckOpened    atomic.Int32 // stores the homechecktest backend opened
	homeCheckStoreOnce sync.Once
)

// TestSyncChecksTheHomeFirst: a HOME sync may not mirror into — none
// there (a typo in --to), a file, a directory of files none of which is a
// home's, one the strict-modes rule refuses (a directory others may
// write, another user's) — is refused at once, by a
// one-shot sync and by sync --watch, before the store is opened (its
// cache and watch started) and before anything is made: no home, lock,
// .d directory or cache left in a place that is no home. Before, --watch
// made the home, opened the store and started its cache and watch there,
// and kept retrying its mirror; either mode made the lock and the .d
// directories before the rule refused the home. (Found by review,
// 2026-12-05, second pass.)
func TestSyncChecksTheHomeFirst(t *testing.T) {
	homeCheckStoreOnce.Do(func() {
		RegisterStore(StoreBackend{Schemes: []string{"homechecktest"}, Flags: func(*pflag.FlagSet) StoreOpener {
			return func(context.Context, *url.URL) (Store, error) {
				homeCheckOpened.Add(1)
				f := &fakeFeeds{sets: map[string]*keydir.FeedSet{}}
				for _, kind := range StoreKinds {
					f.sets[kind] = keydir.NewFeedSet()
				}
				return &flakyStore{fakeFeeds: f}, nil
			}
		}})
	})
	for _, tc := range []struct {
		name, want string
		make       func(t *testing.T, h string)
	}{
		{"missing", "does not exist (a typo in --to?)", func(*testing.T, string) {}},
		{"a file", "not a directory", func(t *testing.T, h string) {
			if err := os.WriteFile(h, []byte("not a home\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"not a home", "none of a keytool home's", func(t *testing.T, h string) {
			if err := os.Mkdir(h, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(h, "passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"others may write", "not syncing into", func(t *testing.T, h string) {
			if err := os.Mkdir(h, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(h, 0o777); err != nil {
				t.Fatal(err)
			}
		}},
		{"another user's", "not syncing into", func(t *testing.T, h string) {
			if os.Geteuid() != 0 {
				t.Skip("chown needs root")
			}
			if err := os.Mkdir(h, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(h, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		for _, watch := range []bool{false, true} {
			name := tc.name
			if watch {
				name += "/watch"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				h := filepath.Join(dir, "home")
				tc.make(t, h)
				before := filesUnder(t, dir)
				opened := homeCheckOpened.Load()
				args := []string{"sync", "homechecktest://x/p", "--to", h}
				if watch {
					args = append(args, "--watch")
				}
				type result struct {
					stderr string
					code   int
				}
				done := make(chan result, 1)
				go func() {
					_, stderr, code := runKeytool(t, "", args...)
					done <- result{stderr, code}
				}()
				var r result
				select {
				case r = <-done:
				case <-time.After(10 * time.Second):
					// Still running: stop it, then fail.
					if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
						t.Fatal(err)
					}
					r = <-done
					r.code = -1
				}
				if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
					t.Errorf("sync into a home it may not mirror into: exit %d (-1: still running after 10 s), stderr:\n%s\nwant exit 1 and %q", r.code, r.stderr, tc.want)
				}
				if n := homeCheckOpened.Load() - opened; n != 0 {
					t.Errorf("the store was opened %d times before the home was refused", n)
				}
				if after := filesUnder(t, dir); !slices.Equal(after, before) {
					t.Errorf("sync made %v where the home was refused (before: %v)", after, before)
				}
			})
		}
	}
}
