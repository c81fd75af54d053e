package etcd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// cacheLog keeps the messages of the Source's error lines.
type cacheLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *cacheLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l *cacheLog) WithAttrs([]slog.Attr) slog.Handler            { return l }
func (l *cacheLog) WithGroup(string) slog.Handler                 { return l }
func (l *cacheLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs = append(l.msgs, r.Message)
	return nil
}

func (l *cacheLog) said(part string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range l.msgs {
		if strings.Contains(m, part) {
			return true
		}
	}
	return false
}

// TestCacheNotWrittenIsNotLeftBehind: once the view cannot be written to
// the cache (here larger than a trust file may be, which anyone who may
// write keys under the prefix can make it, outside the layout or over
// the bound, granting nothing; a full disk does the same), the cache of
// an earlier view must not stay: a restart while etcd cannot be reached
// would enforce it as the last view, current when it was written, without
// the revocations written since (found by review: the file was left, and
// alice, revoked after it, was admitted from it). No cache: every key is
// refused until etcd answers.
func TestCacheNotWrittenIsNotLeftBehind(t *testing.T) {
	if testing.Short() {
		// The race step of CI runs -short: there, on a loaded machine,
		// etcd timed out a put or the view came after a minute (twice,
		// 2026-12-05). The plain step runs it.
		t.Skip("50 MiB of values through etcd and the view; run without -short")
	}
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	alice := keydirtest.Key(t, 1)
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	cache := filepath.Join(t.TempDir(), "cache.json")
	logged := &cacheLog{}
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix, Cache: cache, Logger: slog.New(logged)})
	eventually(t, 20*time.Second, "the cache not written", func() bool {
		data, err := os.ReadFile(cache)
		return err == nil && bytes.Contains(data, []byte(`"authorized_keys/alice"`))
	})

	// 36 values of 1.4 MiB (etcd takes 1.5 MiB a request): 50 MiB, 67 MiB
	// in the cache's JSON, over trustfile.MaxSize (64 MiB).
	big := bytes.Repeat([]byte("x"), 1400<<10)
	for i := range 36 {
		putIdempotent(t, cli, prefix+"/bulk/"+strconv.Itoa(i), big)
	}
	rev := put(t, cli, Key(prefix, Revoked, "alice"), keyJSON(t, alice))
	eventually(t, 60*time.Second, "the revocation not in the view, or the failed write not said", func() bool {
		return src.Revision() >= rev && logged.said("cannot write the cache")
	})
	src.Close()
	ms[0].stop()

	s, err := Open(t.Context(), Options{Client: client(t, ms[0].endpoint()), Prefix: prefix, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := authkeys.Load(s.AuthorizedOptions()).Decide(alice.SPKIHash(), netip.Addr{})
	if d.Verdict != authkeys.Revoked || !errors.Is(d.Err, ErrNoView) {
		t.Fatalf("restarted without etcd after the cache could not be written: alice %v (%v), want refused, no view", d.Verdict, d.Err)
	}
}
