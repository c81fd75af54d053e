package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/cli"
	"github.com/keytool/keytool/internal/freeport"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/internal/trustfile"
)

// TestCacheUnderTheHomesRule: the etcd cache in a home is a trust input
// of that home — it is the fleet's whole view while etcd is away — and is
// read under the home's strict-modes rule, up to the home, as every other
// one is (docs/security.md, "Strict modes"). A home another user owns, or
// that group or others may write, is refused: its cache is refused with
// it, and every key until etcd answers. Whoever may write the home may
// put back an older etcd-cache directory (the rename of a directory of
// the user's own, which the check of the cache's directory alone cannot
// tell), a view from before a revocation. Before (found by review,
// 2026-12-03): the cache was checked up to its own directory only, and
// its view admitted the key.
func TestCacheUnderTheHomesRule(t *testing.T) {
	alice := keydirtest.Key(t, 1)
	for _, c := range []struct {
		name  string
		spoil func(home string) error
		admit bool
	}{
		{"a home of the user's own", func(string) error { return nil }, true},
		{"a home others may write", func(h string) error { return os.Chmod(h, 0o777) }, false},
		{"a home group members may write", func(h string) error { return os.Chmod(h, 0o770) }, false},
		{"a home another user owns", func(h string) error { return os.Chown(h, 65534, 65534) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			cacheDir := filepath.Join(home, "etcd-cache")
			if err := os.MkdirAll(cacheDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(home, 0o700); err != nil {
				t.Fatal(err)
			}
			cache := filepath.Join(cacheDir, "kt.json")
			data, err := json.Marshal(map[string]any{
				"format":   "keytool-etcd-cache/1",
				"prefix":   "/kt",
				"revision": 7,
				"current":  time.Now().Add(-time.Second).UTC(),
				"entries":  map[string][]byte{"authorized_keys/alice.json": keydirtest.JWK(t, alice)},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(cache, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := c.spoil(home); err != nil {
				t.Fatal(err)
			}
			// etcd is not there: the cache is all the view there is.
			st := openTestStore(t, fmt.Sprintf("127.0.0.1:%d", freeport.Port(t)), "--etcd-cache", cache, "--etcd-dial-timeout", "10ms")
			f, err := st.Follow(t.Context(), cli.FollowOptions{Home: home})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			store := authkeys.Load(authkeys.Options{
				Feeds:        []authkeys.Feed{f.Feed(cli.StoreAuthorized)},
				RevokedFeeds: []authkeys.Feed{f.Feed(cli.StoreRevoked)},
			})
			d := store.Decide(alice.SPKIHash(), netip.Addr{})
			if c.admit {
				if d.Verdict != authkeys.Authorized {
					t.Fatalf("the cache of a sound home: %v (%v), want authorized", d.Verdict, d.Err)
				}
				return
			}
			var pe *trustfile.PermissionError
			if d.Verdict == authkeys.Authorized || !errors.As(d.Err, &pe) || pe.Path != home {
				t.Fatalf("the cache of %s: %v (%v), want every key refused by a PermissionError naming %s", c.name, d.Verdict, d.Err, home)
			}
		})
	}
}
