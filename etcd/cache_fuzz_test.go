package etcd

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// FuzzCache: whatever the cache file holds, reading it never panics, and
// either refuses it (a CacheError, no view) or gives a view whose every
// entry is a key of the file.
func FuzzCache(f *testing.F) {
	f.Add([]byte(`{"format":"keytool-etcd-cache/1","prefix":"/keytool/test","revision":7,"current":"2026-11-30T10:00:00Z","entries":{"authorized_keys/a":"e30=","revoked_keys/b":"","x":"eA=="}}`))
	f.Add([]byte(`{"format":"keytool-etcd-cache/1","prefix":"/keytool/test","revision":7}`))
	f.Add([]byte(`{}`))
	f.Add([]byte("\x00"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "cache.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s := &Source{opts: Options{Cache: path, MaxValue: DefaultMaxValue}, prefix: prefix, log: slog.New(slog.DiscardHandler)}
		noView := ErrNoView
		s.noView.Store(&noView)
		s.loadCache()
		v := s.cur.Load()
		if v == nil {
			var ce *CacheError
			if !errors.As(*s.noView.Load(), &ce) {
				t.Fatalf("no view, and %v rather than a CacheError", *s.noView.Load())
			}
			return
		}
		var cf cacheFile
		if err := json.Unmarshal(data, &cf); err != nil {
			t.Fatalf("a view from a cache that does not decode: %v", err)
		}
		if got := v.all(); !sameEntries(got, cf.Entries) && len(got)+len(cf.Entries) > 0 {
			t.Fatalf("the view holds %d keys, the cache %d", len(got), len(cf.Entries))
		}
	})
}
