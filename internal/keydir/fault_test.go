package keydir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/trustfile"

	"github.com/fsnotify/fsnotify"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// record subscribes to l and keeps every snapshot published until the
// test ends.
func record(t *testing.T, l *Loader[string]) func() []*Snapshot[string] {
	t.Helper()
	ch, stop := l.Subscribe()
	var (
		mu    sync.Mutex
		snaps []*Snapshot[string]
		quit  = make(chan struct{})
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-ch:
				mu.Lock()
				snaps = append(snaps, l.Snapshot())
				mu.Unlock()
			case <-quit:
				return
			}
		}
	}()
	var once sync.Once
	finish := func() []*Snapshot[string] {
		once.Do(func() {
			stop()
			close(quit)
			<-done
		})
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(snaps)
	}
	t.Cleanup(func() { finish() })
	return finish
}

// A trust file rewritten in place, non-atomically (truncated, then written
// in pieces, as `cat > file` or a naive program does), is read once the
// write has settled: the debounce coalesces the burst, and no snapshot
// ever holds the half-written file as a problem or loses the other files.
// A file that stays malformed is skipped and reported by name, fails
// closed (its old key no longer trusted), and every other entry keeps
// working; completing it restores it.
func TestNonAtomicRewrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	keydirtest.Write(t, filepath.Join(dir, "other.json"), keydirtest.JWK(t, key(t, 9)))
	target := filepath.Join(dir, "alice.json")
	keydirtest.Write(t, target, keydirtest.JWK(t, key(t, 1)))
	// A debounce far above the pauses between the writes, so that a busy
	// machine does not split the burst.
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert, Debounce: 150 * time.Millisecond, Rescan: -1})
	l.Watch(context.Background())
	t.Cleanup(func() { l.Close() })
	finish := record(t, l)

	slowWrite := func(data []byte, pieces int, complete bool) {
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_TRUNC, 0)
		must(t, err)
		defer f.Close()
		n := len(data)
		if !complete {
			n = len(data) / 2
		}
		step := max(n/pieces, 1)
		for i := 0; i < n; i += step {
			time.Sleep(5 * time.Millisecond)
			_, err := f.Write(data[i:min(i+step, n)])
			must(t, err)
		}
	}
	start := time.Now()
	slowWrite(keydirtest.JWK(t, key(t, 2)), 8, true)
	eventually(t, l, "in-place rewrite", start, want(t, key(t, 2), key(t, 9)))
	for i, s := range finish() {
		if len(s.Problems) != 0 {
			t.Errorf("snapshot %d during the slow write holds problems %v: the debounce did not let the write settle", i, s.Problems)
		}
		if got := fingerprints(s); !slices.Equal(got, want(t, key(t, 1), key(t, 9))) && !slices.Equal(got, want(t, key(t, 2), key(t, 9))) {
			t.Errorf("snapshot %d during the slow write holds %v", i, got)
		}
	}

	// Truncated mid-write and never completed: reported, fails closed.
	slowWrite(keydirtest.JWK(t, key(t, 3)), 4, false)
	deadline := time.Now().Add(10 * time.Second) // past the second a failing file is held back; a bound on a hang
	for len(l.Snapshot().Problems) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s := l.Snapshot()
	if len(s.Problems) != 1 || s.Problems[0].Path != target || !strings.Contains(s.Problems[0].Error(), "invalid JSON") {
		t.Fatalf("problems %v, want one naming %s", s.Problems, target)
	}
	if got := fingerprints(s); !slices.Equal(got, want(t, key(t, 9))) {
		t.Fatalf("keys %v: the other file must keep working and the half file must trust nothing", got)
	}
	start = time.Now()
	slowWrite(keydirtest.JWK(t, key(t, 3)), 4, true)
	eventually(t, l, "completed", start, want(t, key(t, 3), key(t, 9)))
	if s := l.Snapshot(); len(s.Problems) != 0 {
		t.Errorf("problems after the fix: %v", s.Problems)
	}
}

// A permission change on the home while watching: the source below it
// fails closed (no key from it is trusted) and the problem names the
// home and the fix; restoring the mode restores the keys.
func TestHomePermissionChangeWhileWatching(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	dir := filepath.Join(home, "authorized_keys.d")
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
	must(t, os.Chmod(home, 0o755))
	var buf syncBuffer
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert, Debounce: 20 * time.Millisecond, Rescan: -1,
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	l.Watch(context.Background())
	t.Cleanup(func() { l.Close() })
	eventually(t, l, "initial", time.Now(), want(t, key(t, 1)))

	for _, tc := range []struct {
		path string
		mode os.FileMode
	}{{home, 0o775}, {dir, 0o777}} {
		start := time.Now()
		must(t, os.Chmod(tc.path, tc.mode))
		eventually(t, l, fmt.Sprintf("chmod %o %s", tc.mode, filepath.Base(tc.path)), start, nil)
		s := l.Snapshot()
		var pe *trustfile.PermissionError
		if len(s.Problems) != 1 || !errors.As(s.Problems[0].Err, &pe) || pe.Path != tc.path {
			t.Fatalf("problems %v, want a *PermissionError for %s", s.Problems, tc.path)
		}
		start = time.Now()
		must(t, os.Chmod(tc.path, 0o755))
		eventually(t, l, "mode restored", start, want(t, key(t, 1)))
	}
	if out := buf.String(); !strings.Contains(out, "skipping trust file") || !strings.Contains(out, "resolved") {
		t.Errorf("log does not report the problem and its fix:\n%s", out)
	}
}

// When the inotify watch limit is exhausted, adding a watch fails with
// ENOSPC: the loader says so once in the log, and the periodic rescan
// alone keeps the snapshot current.
func TestWatchLimitFallsBackToRescans(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
	var buf syncBuffer
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert, Rescan: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	var calls sync.Map
	l.addWatch = func(dir string) error {
		calls.Store(dir, true)
		return fmt.Errorf("inotify_add_watch %s: %w", dir, syscall.ENOSPC) // what the kernel says at max_user_watches
	}
	// The change must be the rescan's to find: a rescan that finds
	// b.json while the snapshot does not hold it yet is the one that
	// loads it. (Timing it, a change seen in under 20 ms counted as an
	// event's; but a test paused 80 ms between Watch and the write sees
	// the first rescan's tick, 100 ms after Watch, that soon.)
	b, fp2 := filepath.Join(dir, "b.json"), key(t, 2).Fingerprint()
	var rescanFound atomic.Bool
	l.rescanCompared = func(h hints) {
		_, named := h.paths[b]
		if (named || h.all) && !slices.Contains(fingerprints(l.Snapshot()), fp2) {
			rescanFound.Store(true)
		}
	}
	l.Watch(context.Background())
	t.Cleanup(func() { l.Close() })
	eventually(t, l, "initial", time.Now(), want(t, key(t, 1)))
	start := time.Now()
	keydirtest.Write(t, b, keydirtest.JWK(t, key(t, 2)))
	eventually(t, l, "change seen without any watch", start, want(t, key(t, 1), key(t, 2)))
	if !rescanFound.Load() {
		t.Error("the change was loaded before a rescan found it: an event was delivered, so the test does not simulate the limit")
	}
	if _, ok := calls.Load(dir); !ok {
		t.Error("the loader never tried to watch the directory")
	}
	out := buf.String()
	if n := strings.Count(out, "cannot watch directory; falling back to periodic rescans"); n < 1 || !strings.Contains(out, "no space left on device") {
		t.Errorf("log does not say that it falls back to rescans:\n%s", out)
	}
	// Said once per directory, not at every rescan.
	time.Sleep(300 * time.Millisecond)
	perDir := map[string]int{}
	dirField := regexp.MustCompile(` dir=(\S+)`)
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, "falling back to periodic rescans") {
			m := dirField.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("the warning does not name the directory: %s", line)
			}
			perDir[m[1]]++
		}
	}
	// The source directory and its parent (watched for the source's
	// creation) each failed, and each is named exactly once, although
	// about five rescans tried again.
	if len(perDir) != 2 || perDir[dir] != 1 || perDir[filepath.Dir(dir)] != 1 {
		t.Errorf("want one warning for each of %s and its parent, got %v:\n%s", dir, perDir, buf.String())
	}
}

// When no watcher can be made at all (the inotify instance limit,
// fs.inotify.max_user_instances, gives EMFILE), the loader says so and the
// periodic rescan alone keeps the snapshot current.
func TestNoWatcherFallsBackToRescans(t *testing.T) {
	failing := func() (*fsnotify.Watcher, error) { return nil, fmt.Errorf("inotify_init1: %w", syscall.EMFILE) }
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
	var buf syncBuffer
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert, Rescan: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&buf, nil)), NewWatcher: failing})
	// As in TestWatchLimitFallsBackToRescans: a rescan finds the change
	// before the snapshot holds it (timed, under 20 ms counted as too
	// soon for a rescan, which a test paused between Watch and its write
	// sees).
	b, fp2 := filepath.Join(dir, "b.json"), key(t, 2).Fingerprint()
	var rescanFound atomic.Bool
	l.rescanCompared = func(h hints) {
		_, named := h.paths[b]
		if (named || h.all) && !slices.Contains(fingerprints(l.Snapshot()), fp2) {
			rescanFound.Store(true)
		}
	}
	l.Watch(context.Background())
	t.Cleanup(func() { l.Close() })
	eventually(t, l, "initial", time.Now(), want(t, key(t, 1)))
	start := time.Now()
	keydirtest.Write(t, b, keydirtest.JWK(t, key(t, 2)))
	eventually(t, l, "change seen with no watcher", start, want(t, key(t, 1), key(t, 2)))
	if !rescanFound.Load() {
		t.Error("the change was loaded before a rescan found it: a watcher was made after all")
	}
	if out := buf.String(); strings.Count(out, "cannot watch trust files; falling back to periodic rescans") != 1 || !strings.Contains(out, "too many open files") {
		t.Errorf("want one warning that says why and that rescans carry on:\n%s", out)
	}
}
