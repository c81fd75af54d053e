package etcd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/trustfile"
)

// cacheFormat names the cache file's layout; another is refused.
const cacheFormat = "keytool-etcd-cache/1"

// cacheFile is the cache's content: one consistent view of the prefix.
type cacheFile struct {
	Format   string            `json:"format"`
	Prefix   string            `json:"prefix"`
	Revision int64             `json:"revision"`
	Current  time.Time         `json:"current"` // when the view was last known current
	Entries  map[string][]byte `json:"entries"` // key relative to the prefix → value
}

// CacheError means the cache could not be used: unreadable, unsafe modes
// or owner (trustfile's rule), corrupt, or another prefix's. The Source
// then has no view until etcd answers, and the stores refuse every key.
type CacheError struct {
	Path string
	Err  error
}

func (e *CacheError) Error() string {
	return fmt.Sprintf("etcd: cache %s refused: %v", e.Path, e.Err)
}

func (e *CacheError) Unwrap() error { return e.Err }

// loadCache reads the cache through the file-trust rule and, if it is
// sound, makes it the view, as current as it was when written.
func (s *Source) loadCache() {
	path := s.opts.Cache
	data, _, err := trustfile.Rule{Top: cmp.Or(s.opts.Top, filepath.Dir(path))}.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Info("etcd: no cache yet", "cache", path)
		return
	}
	var cf cacheFile
	if err == nil {
		err = json.Unmarshal(data, &cf)
	}
	switch {
	case err != nil:
	case cf.Format != cacheFormat:
		err = fmt.Errorf("format %q, want %q", cf.Format, cacheFormat)
	case cf.Prefix != s.prefix:
		err = fmt.Errorf("of prefix %q, not %q", cf.Prefix, s.prefix)
	case cf.Revision <= 0 || cf.Current.IsZero():
		err = errors.New("no revision or time")
	case cf.Current.After(time.Now()):
		// Written by a clock ahead of this one: how old the view is cannot
		// be told, and taken as current until then it would not turn stale
		// for as long as the clock was ahead.
		err = fmt.Errorf("current at %s, later than now: written by a clock ahead of this one", cf.Current.UTC().Format(time.RFC3339))
	}
	if err != nil {
		cerr := error(&CacheError{Path: path, Err: err})
		s.noView.Store(&cerr)
		s.log.Error("etcd: cache refused: refusing every key until etcd answers", "cache", path, "error", err)
		return
	}
	if cf.Entries == nil {
		cf.Entries = map[string][]byte{}
	}
	s.cur.Store(s.makeView(cf.Revision, cf.Entries))
	// The cache's time is another process's wall clock: its age now is
	// read from the wall clock once, and from this process's monotonic
	// clock after that.
	now := time.Now()
	cur := now.Add(cf.Current.Sub(now))
	s.current.Store(&cur)
	s.cachedAt.Store(cf.Current.UnixNano())
	s.log.Info("etcd: using the cache until etcd answers", "cache", path, "revision", cf.Revision, "current", cf.Current)
}

// touchCache asks the cache writer to write the current view.
func (s *Source) touchCache() {
	if s.opts.Cache == "" {
		return
	}
	select {
	case s.cacheDirty <- struct{}{}:
	default:
	}
}

// writeCaches writes the view each time it is asked to (coalesced: a
// burst of changes costs one write of the latest view), and once more
// when ctx ends if a write is pending.
func (s *Source) writeCaches(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			select {
			case <-s.cacheDirty:
				s.writeCache()
			default:
			}
			return
		case <-s.cacheDirty:
			s.writeCache()
		}
	}
}

// all returns every key of the view (relative to the prefix) with its
// value: what the cache holds.
func (v *view) all() map[string][]byte {
	n := len(v.other)
	for _, e := range v.entries {
		n += e.Len()
	}
	kv := make(map[string][]byte, n)
	for k, set := range v.entries {
		for name, e := range set.All() {
			if e.Err == nil { // over the bound: its value is in other
				kv[Kind(k).String()+"/"+name] = e.Data
			}
		}
	}
	for rel, val := range v.other {
		kv[rel] = val
	}
	return kv
}

// writeCache writes the view to the cache, atomically and mode 0600; if
// it cannot, it removes the cache, which holds an earlier view. A view
// read from the cache itself is not written back.
func (s *Source) writeCache() {
	// The time is read before the view. A view is stored before the time
	// that confirms it (list, progressed), and any later view holds every
	// event up to then, so the view read second is current at least as of
	// the time read first. The other order could read a view, then miss a
	// change and the confirmation of it that land before the time is read:
	// the older view written as current at that later time, a revocation
	// between them not in it — enforced as current by a restart that
	// cannot reach etcd (docs/fleet.md, "Cache and staleness").
	cur := s.Current()
	v := s.cur.Load()
	if v == nil {
		return
	}
	data, err := json.Marshal(cacheFile{Format: cacheFormat, Prefix: s.prefix, Revision: v.rev, Current: cur.UTC(), Entries: v.all()})
	if err == nil && len(data) > trustfile.MaxSize {
		err = fmt.Errorf("%w: the view takes %d bytes", trustfile.ErrTooLarge, len(data))
	}
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(s.opts.Cache), 0o700); err == nil {
			err = atomicfile.Write(s.opts.Cache, data, 0o600)
		}
	}
	if err != nil {
		// The file, if any, holds an earlier view than this one: left
		// there, a restart while etcd cannot be reached would enforce it
		// as the last view, without what changed since (a revocation).
		// Removed, the restart has no view and refuses every key until
		// etcd answers (docs/fleet.md, "Cache and staleness").
		rerr := os.Remove(s.opts.Cache)
		if errors.Is(rerr, fs.ErrNotExist) {
			rerr = nil
		}
		s.log.Error("etcd: cannot write the cache: the earlier one removed, a restart without etcd refuses every key", "cache", s.opts.Cache, "error", errors.Join(err, rerr))
		return
	}
	s.cachedAt.Store(cur.UnixNano())
}
