package keydir

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/trustfile"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// watchLoader starts a watching loader with the periodic rescan off, so
// that only file events can make a change visible.
func watchLoader(t *testing.T, srcs ...Source) *Loader[string] {
	t.Helper()
	l := New(Config[string]{Sources: srcs, Convert: fpConvert, Debounce: 20 * time.Millisecond, Rescan: -1})
	l.Watch(context.Background())
	t.Cleanup(func() { l.Close() })
	return l
}

// eventually waits up to one second for the snapshot to hold exactly the
// keys w, and reports how long that took after the change was made.
func eventually(t *testing.T, l *Loader[string], what string, since time.Time, w []string) time.Duration {
	t.Helper()
	return eventuallyWithin(t, l, what, since, w, 10*time.Second)
}

// eventuallyWithin is eventually, failing after patience. eventually's
// 10 s are a bound on a hang, not a pace: its old bound, 1 s, was what
// most tests waiting on it are not about, and only five times the
// slowest change seen under load (0.2 s, -race beside other packages'
// tests on two cores). A test whose point is how soon a change applies
// (TestLeadingEdgeReload) passes its own bound.
func eventuallyWithin(t *testing.T, l *Loader[string], what string, since time.Time, w []string, patience time.Duration) time.Duration {
	t.Helper()
	deadline := time.After(patience)
	ch, stop := l.Subscribe()
	defer stop()
	for {
		if slices.Equal(fingerprints(l.Snapshot()), w) {
			d := time.Since(since)
			t.Logf("%s: visible after %v", what, d.Round(time.Millisecond))
			return d
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: not visible within %v; have %d keys, want %d; problems %v", what, patience, len(fingerprints(l.Snapshot())), len(w), l.Snapshot().Problems)
		}
	}
}

func TestWatchScenarios(t *testing.T) {
	k := func(n int) *jwk.Key { return key(t, n) }
	var latencies []time.Duration
	defer func() {
		slices.Sort(latencies)
		if len(latencies) > 0 {
			t.Logf("latency over %d changes: median %v, max %v (debounce 20ms)", len(latencies), latencies[len(latencies)/2].Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond))
		}
	}()
	step := func(t *testing.T, l *Loader[string], what string, do func(), w ...*jwk.Key) {
		t.Helper()
		start := time.Now()
		do()
		latencies = append(latencies, eventually(t, l, what, start, want(t, w...)))
	}

	t.Run("dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "authorized_keys.d")
		os.Mkdir(dir, 0o755)
		l := watchLoader(t, Source{Path: dir, Dir: true})
		a := filepath.Join(dir, "a.json")
		step(t, l, "create", func() { keydirtest.Write(t, a, keydirtest.JWK(t, k(1))) }, k(1))
		step(t, l, "write in place", func() { keydirtest.Write(t, a, keydirtest.JWK(t, k(2))) }, k(2))
		step(t, l, "rename over (sed -i)", func() { keydirtest.Replace(t, a, keydirtest.JWK(t, k(3))) }, k(3))
		step(t, l, "vim-style save (backup~, then new file)", func() {
			os.Rename(a, a+"~")
			keydirtest.Write(t, a, keydirtest.JWK(t, k(4)))
			os.Remove(a + "~")
		}, k(4))
		step(t, l, "second file", func() { keydirtest.Write(t, filepath.Join(dir, "b.pem"), keydirtest.PEM(t, k(5))) }, k(4), k(5))
		step(t, l, "delete", func() { os.Remove(a) }, k(5))
		step(t, l, "directory deleted", func() { os.RemoveAll(dir) })
		step(t, l, "directory re-created", func() {
			os.Mkdir(dir, 0o755)
			keydirtest.Write(t, filepath.Join(dir, "c.json"), keydirtest.JWK(t, k(6)))
		}, k(6))
		step(t, l, "directory replaced by rename", func() {
			tmp := dir + ".new"
			keydirtest.Write(t, filepath.Join(tmp, "d.json"), keydirtest.JWK(t, k(7)))
			os.RemoveAll(dir)
			os.Rename(tmp, dir)
		}, k(7))
		step(t, l, "write after the rename", func() { keydirtest.Write(t, filepath.Join(dir, "e.json"), keydirtest.JWK(t, k(8))) }, k(7), k(8))
	})

	t.Run("absent at start", func(t *testing.T) {
		home := filepath.Join(t.TempDir(), "home", ".keytool")
		dir := filepath.Join(home, "authorized_keys.d")
		l := watchLoader(t, Source{Path: dir, Dir: true}, Source{Path: filepath.Join(home, "authorized_keys.json")})
		step(t, l, "home and directory created later", func() {
			keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, k(1)))
		}, k(1))
		step(t, l, "file in the new directory", func() { keydirtest.Write(t, filepath.Join(dir, "b.json"), keydirtest.JWK(t, k(2))) }, k(1), k(2))
		step(t, l, "single file created later", func() {
			keydirtest.Write(t, filepath.Join(home, "authorized_keys.json"), keydirtest.JWK(t, k(3)))
		}, k(1), k(2), k(3))
	})

	t.Run("single file", func(t *testing.T) {
		home := t.TempDir()
		file := filepath.Join(home, "authorized_keys.pem")
		keydirtest.Write(t, file, keydirtest.PEM(t, k(1)))
		l := watchLoader(t, Source{Path: file})
		eventually(t, l, "initial", time.Now(), want(t, k(1)))
		step(t, l, "single file replaced", func() { keydirtest.Replace(t, file, keydirtest.PEM(t, k(2), k(3))) }, k(2), k(3))
		step(t, l, "single file written in place", func() { keydirtest.Write(t, file, keydirtest.PEM(t, k(4))) }, k(4))
		step(t, l, "unrelated file beside it is ignored", func() { keydirtest.Write(t, filepath.Join(home, "other.pem"), keydirtest.PEM(t, k(9))) }, k(4))
		step(t, l, "single file deleted", func() { os.Remove(file) })
	})

	t.Run("kubernetes", func(t *testing.T) {
		dir := t.TempDir()
		kubeLayout(t, dir, "..2024_01_01_00_00_00.000000001", map[string][]byte{"alice.json": keydirtest.JWK(t, k(1))})
		l := watchLoader(t, Source{Path: dir, Dir: true})
		eventually(t, l, "initial", time.Now(), want(t, k(1)))
		step(t, l, "ConfigMap update (..data swap)", func() {
			kubeLayout(t, dir, "..2024_01_01_00_01_00.000000002", map[string][]byte{"alice.json": keydirtest.JWK(t, k(2)), "bob.json": keydirtest.JWK(t, k(3))})
			os.RemoveAll(filepath.Join(dir, "..2024_01_01_00_00_00.000000001"))
		}, k(2), k(3))
		step(t, l, "ConfigMap update removing a key", func() {
			ts := "..2024_01_01_00_02_00.000000003"
			kubeLayout(t, dir, ts, map[string][]byte{"alice.json": keydirtest.JWK(t, k(4))})
			os.Remove(filepath.Join(dir, "bob.json"))
			os.RemoveAll(filepath.Join(dir, "..2024_01_01_00_01_00.000000002"))
		}, k(4))
	})

	t.Run("kubernetes single file", func(t *testing.T) {
		dir := t.TempDir()
		kubeLayout(t, dir, "..2024_01_01_00_00_00.000000001", map[string][]byte{"trusted_hosts.json": keydirtest.JWK(t, k(1))})
		l := watchLoader(t, Source{Path: filepath.Join(dir, "trusted_hosts.json")})
		eventually(t, l, "initial", time.Now(), want(t, k(1)))
		step(t, l, "ConfigMap update of a single file", func() {
			kubeLayout(t, dir, "..2024_01_01_00_01_00.000000002", map[string][]byte{"trusted_hosts.json": keydirtest.JWK(t, k(2))})
		}, k(2))
	})
}

func TestSymlinkedDirectorySwapped(t *testing.T) {
	// The source is a symlink to a directory elsewhere, repointed at
	// another directory: the watch must follow to the new directory. Two
	// loaders watch it through the process's one shared watcher: the
	// first to see the swap moves the one watch, and both follow it.
	base := t.TempDir()
	d1, d2 := filepath.Join(base, "v1"), filepath.Join(base, "v2")
	keydirtest.Write(t, filepath.Join(d1, "a.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(d2, "a.json"), keydirtest.JWK(t, key(t, 2)))
	src := filepath.Join(base, "etc", "keys.d")
	os.MkdirAll(filepath.Dir(src), 0o755)
	os.Symlink(d1, src)
	// The home is base: the linked directories are inside it.
	var loaders []*Loader[string]
	for range 2 {
		l := New(Config[string]{Sources: []Source{{Path: src, Dir: true}}, Home: base, Convert: fpConvert, Debounce: 20 * time.Millisecond, Rescan: -1})
		l.Watch(context.Background())
		t.Cleanup(func() { l.Close() })
		eventually(t, l, "initial", time.Now(), want(t, key(t, 1)))
		loaders = append(loaders, l)
	}
	start := time.Now()
	tmp := src + ".tmp"
	os.Symlink(d2, tmp)
	os.Rename(tmp, src)
	for _, l := range loaders {
		eventually(t, l, "symlinked directory swapped", start, want(t, key(t, 2)))
	}
	keydirtest.Write(t, filepath.Join(d2, "b.json"), keydirtest.JWK(t, key(t, 3)))
	for _, l := range loaders {
		eventually(t, l, "write in the newly linked directory", time.Now(), want(t, key(t, 2), key(t, 3)))
	}
}

func TestPeriodicRescanCatchesWhatEventsMiss(t *testing.T) {
	// A single file that is a symlink into a directory nobody watches:
	// writes to the target make no event where the loader listens.
	base := t.TempDir()
	target := filepath.Join(base, "real", "keys.json")
	keydirtest.Write(t, target, keydirtest.JWK(t, key(t, 1)))
	src := filepath.Join(base, "etc", "authorized_keys.json")
	os.MkdirAll(filepath.Dir(src), 0o755)
	os.Symlink(target, src)
	for _, rescan := range []time.Duration{-1, 100 * time.Millisecond} {
		l := New(Config[string]{Sources: []Source{{Path: src}}, Home: base, Convert: fpConvert, Rescan: rescan})
		l.Watch(context.Background())
		eventually(t, l, "initial", time.Now(), want(t, key(t, 1)))
		start := time.Now()
		keydirtest.Write(t, target, keydirtest.JWK(t, key(t, 2)))
		if rescan < 0 {
			time.Sleep(300 * time.Millisecond)
			if got := fingerprints(l.Snapshot()); !slices.Equal(got, want(t, key(t, 1))) {
				t.Fatal("the change was seen without a rescan: this test no longer tests the rescan")
			}
		} else {
			eventually(t, l, "change seen by the periodic rescan", start, want(t, key(t, 2)))
		}
		l.Close()
		keydirtest.Write(t, target, keydirtest.JWK(t, key(t, 1)))
	}
}

func TestWatchStopsAllGoroutines(t *testing.T) {
	dir := t.TempDir()
	keydirtest.Write(t, filepath.Join(dir, "d", "a.json"), keydirtest.JWK(t, key(t, 1)))
	before := runtime.NumGoroutine()
	for range 3 {
		l := New(Config[string]{Sources: []Source{{Path: filepath.Join(dir, "d"), Dir: true}, {Path: filepath.Join(dir, "f.json")}}, Convert: fpConvert, Rescan: 10 * time.Millisecond})
		l.Watch(context.Background())
		keydirtest.Write(t, filepath.Join(dir, "d", "b.json"), keydirtest.JWK(t, key(t, 2)))
		time.Sleep(30 * time.Millisecond)
		l.Close()
		l.Close() // twice is fine
	}
	// Cancelling the context stops everything too.
	ctx, cancel := context.WithCancel(context.Background())
	l := New(Config[string]{Sources: []Source{{Path: filepath.Join(dir, "d"), Dir: true}}, Convert: fpConvert})
	l.Watch(ctx)
	cancel()
	<-l.done
	waitGoroutines(t, before)
}

func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second) // a bound on a hang: leaked goroutines never end
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSubscribe(t *testing.T) {
	dir := t.TempDir()
	l := watchLoader(t, Source{Path: dir, Dir: true})
	ch, stop := l.Subscribe()
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
	select {
	case <-ch:
	case <-time.After(10 * time.Second): // a bound on a hang
		t.Fatal("no notification")
	}
	if len(l.Snapshot().Files()) != 1 {
		t.Fatal("notified before the snapshot changed")
	}
	stop()
	keydirtest.Write(t, filepath.Join(dir, "b.json"), keydirtest.JWK(t, key(t, 2)))
	eventually(t, l, "second", time.Now(), want(t, key(t, 1), key(t, 2)))
	select {
	case <-ch:
		t.Fatal("notified after unsubscribing")
	default:
	}
}

func TestWatchProblemsAreVisible(t *testing.T) {
	dir := t.TempDir()
	l := watchLoader(t, Source{Path: dir, Dir: true})
	keydirtest.Write(t, filepath.Join(dir, "bad.json"), []byte(`{"kty":"EC"}`))
	// A file that fails to load is held back for a second after its last
	// change (it may be being written), then reported: 10 s bound a hang.
	deadline := time.Now().Add(10 * time.Second)
	for len(l.Snapshot().Problems) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("problem not reported")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p := l.Snapshot().Problems[0]; !strings.HasSuffix(p.Path, "bad.json") {
		t.Fatalf("problem %v", p)
	}
}

// TestRescanComparesUnlocked checks the periodic rescan against a fresh
// load after each kind of change no event announced, and that it reloads
// only what it found, with the loader's lock free while it compared.
func TestRescanComparesUnlocked(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "authorized_keys.d")
	file := filepath.Join(home, "authorized_keys.json")
	for i := range 5 {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%d.json", i)), keydirtest.JWK(t, key(t, i)))
	}
	keydirtest.Write(t, file, keydirtest.JWK(t, key(t, 10)))
	srcs := []Source{{Path: file}, {Path: dir, Dir: true}, {Path: filepath.Join(home, "revoked_keys.d"), Dir: true, Revocation: true}}
	l := newLoader(srcs...)
	l.Reload()
	var (
		mu    sync.Mutex // many files are read in parallel
		reads []string
	)
	l.cfg.ReadFile = func(path string) ([]byte, fs.FileInfo, error) {
		mu.Lock()
		reads = append(reads, filepath.Base(path))
		mu.Unlock()
		return trustfile.Read(path)
	}
	var found hints
	l.rescanCompared = func(h hints) {
		found = h
		if !l.mu.TryLock() {
			t.Error("the rescan held the loader's lock while it compared")
			return
		}
		l.mu.Unlock()
	}
	problems := func(s *Snapshot[string]) []string {
		var out []string
		for _, p := range s.Problems {
			out = append(out, p.Error())
		}
		return out
	}
	step := func(what string, wantPaths int, change func()) {
		t.Helper()
		change()
		reads, found = nil, hints{paths: map[string]struct{}{"not called": {}}}
		l.rescan()
		got, fresh := l.Snapshot(), newLoader(srcs...).Reload()
		if !slices.Equal(fingerprints(got), fingerprints(fresh)) || !slices.Equal(problems(got), problems(fresh)) ||
			(got.RevocationErr == nil) != (fresh.RevocationErr == nil) {
			t.Fatalf("%s: the rescan gave keys %v problems %v; a fresh load gives %v %v", what, fingerprints(got), problems(got), fingerprints(fresh), problems(fresh))
		}
		if found.all {
			if wantPaths >= 0 {
				t.Errorf("%s: the rescan scanned everything; want %d paths", what, wantPaths)
			}
		} else if len(found.paths) != wantPaths {
			t.Errorf("%s: the rescan named %v; want %d paths", what, found.paths, wantPaths)
		}
	}
	step("nothing changed", 0, func() {})
	if len(reads) != 0 {
		t.Errorf("an unchanged rescan read %v", reads)
	}
	step("a file added", 1, func() { keydirtest.Write(t, filepath.Join(dir, "new.json"), keydirtest.JWK(t, key(t, 20))) })
	if !slices.Equal(reads, []string{"new.json"}) {
		t.Errorf("the rescan read %v; want only the new file", reads)
	}
	step("a file replaced", 1, func() { keydirtest.Replace(t, filepath.Join(dir, "k1.json"), keydirtest.JWK(t, key(t, 21))) })
	step("a file and the single file removed", 2, func() { os.Remove(filepath.Join(dir, "k2.json")); os.Remove(file) })
	step("the single file back", 1, func() { keydirtest.Write(t, file, keydirtest.JWK(t, key(t, 10))) })
	step("a file made world-writable", 1, func() { os.Chmod(filepath.Join(dir, "k3.json"), 0o666) })
	step("and fixed", 1, func() { os.Chmod(filepath.Join(dir, "k3.json"), 0o644) })
	step("a bad file", 1, func() { keydirtest.Write(t, filepath.Join(dir, "bad.json"), []byte("{")) })
	step("the directory made world-writable", 1, func() { os.Chmod(dir, 0o777) })
	step("and fixed", 1, func() { os.Chmod(dir, 0o755) })
	step("a bad file in the revocation directory", 1, func() { keydirtest.Write(t, filepath.Join(home, "revoked_keys.d", "r.json"), []byte("junk")) })
	step("the directory removed", 1, func() { os.RemoveAll(dir) })
	step("nothing changed after that", 0, func() {})
	step("many files at once", -1, func() {
		for i := range maxRescanHints + 1 {
			keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("m%03d.json", i)), keydirtest.JWK(t, key(t, 30+i%3)))
		}
	})
}

// TestRescanAlongsideEvents runs rescans while reloads caused by events
// change the same files: the race detector checks that the rescan's
// unlocked comparison reads nothing a reload writes, and the end state
// must equal a fresh load.
func TestRescanAlongsideEvents(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%02d.json", i)), keydirtest.JWK(t, key(t, i)))
	}
	src := Source{Path: dir, Dir: true}
	l := newLoader(src)
	l.Reload()
	stop := keydirtest.Repeat(1, l.rescan)
	for i := range 200 {
		path := filepath.Join(dir, fmt.Sprintf("k%02d.json", i%20))
		if i%3 == 0 {
			os.Remove(path)
		} else {
			keydirtest.Replace(t, path, keydirtest.JWK(t, key(t, i%7)))
		}
		l.Reload(path)
	}
	stop()
	l.rescan()
	if got, fresh := fingerprints(l.Snapshot()), fingerprints(newLoader(src).Reload()); !slices.Equal(got, fresh) {
		t.Fatalf("after rescans alongside events: %v; a fresh load: %v", got, fresh)
	}
}

// TestEventsServedWhileRescanCompares holds a periodic rescan in its
// comparison (which takes half a second at 100,000 files) and checks that
// a change announced by an event is loaded meanwhile: the watcher's loop
// must not wait for the comparison.
func TestEventsServedWhileRescanCompares(t *testing.T) {
	dir := t.TempDir()
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert, Debounce: 10 * time.Millisecond, Rescan: 20 * time.Millisecond})
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	l.compareStarted = func() {
		once.Do(func() {
			close(held)
			<-release
		})
	}
	l.Watch(context.Background())
	t.Cleanup(func() { l.Close() })
	defer close(release)
	select {
	case <-held:
	case <-time.After(5 * time.Second):
		t.Fatal("no rescan started")
	}
	start := time.Now()
	keydirtest.Write(t, filepath.Join(dir, "b.json"), keydirtest.JWK(t, key(t, 2)))
	eventually(t, l, "a change announced by an event while a rescan compares", start, want(t, key(t, 1), key(t, 2)))
}

// rescan runs both steps of the periodic rescan at once, as Watch does on
// its tick.
func (l *Loader[T]) rescan() { l.applyRescan(l.compare().h) }

// A rescan that takes long puts the next off a hundred times as long
// (rescanWait), up to ten periods: at a million files one took seconds of
// CPU, and a minute's period made rescans some 5% of a core. Here every
// comparison takes 40 ms, so the next waits ten periods of 10 ms, not
// one: in the 1.5 s watched, ten rescans at most, where there would have
// been some thirty.
func TestLongRescanWaitsInProportion(t *testing.T) {
	old := LocalStamps
	LocalStamps = func(string) bool { return true } // whatever the test's TMPDIR is on
	t.Cleanup(func() { LocalStamps = old })
	dir := t.TempDir()
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert, Rescan: 10 * time.Millisecond})
	var started atomic.Int32
	l.compareStarted = func() {
		started.Add(1)
		time.Sleep(40 * time.Millisecond)
	}
	l.Watch(context.Background())
	t.Cleanup(func() { l.Close() })
	time.Sleep(1500 * time.Millisecond)
	if n := started.Load(); n < 1 || n > 12 {
		t.Errorf("%d rescans began in 1.5 s, each comparing for 40 ms with a period of 10 ms; want 1 to 11", n)
	}
	l.Close()
	l.cfg.Rescan = time.Minute
	for _, c := range []struct {
		took time.Duration
		want time.Duration
	}{{3 * time.Second, 5 * time.Minute}, {100 * time.Millisecond, time.Minute}, {time.Minute, 10 * time.Minute}} {
		if got := l.rescanWait(compared{took: c.took}); got != c.want {
			t.Errorf("a rescan of %v with a period of a minute: the next after %v, want %v", c.took, got, c.want)
		}
	}
	// Where the rescan is what finds changes, its period is kept.
	if got := l.rescanWait(compared{took: 3 * time.Second, aliased: true}); got != time.Minute {
		t.Errorf("a file written through another path: the next rescan after %v, want the period, 1m", got)
	}
	l.mu.Lock()
	l.failed["/unwatched"] = true
	l.mu.Unlock()
	if got := l.rescanWait(compared{took: 3 * time.Second}); got != time.Minute {
		t.Errorf("a directory not watched: the next rescan after %v, want the period, 1m", got)
	}
}

// A file of a watched directory that is a symbolic link to a file
// elsewhere, or a hard link to one, is written through another directory,
// whose writes no watch of this one reports: only the rescan finds them,
// and a long rescan must not put that off (found by review: a revocation
// file linked from a sync tool's directory). The comparison says so
// (compared.aliased), and rescanWait then keeps the period
// (TestLongRescanWaitsInProportion).
func TestRescanKeepsPeriodForLinkedFiles(t *testing.T) {
	for _, c := range []struct {
		name    string
		make    func(target, name string) error
		aliased bool
	}{
		{"a copy", func(target, name string) error {
			data, err := os.ReadFile(target)
			if err != nil {
				return err
			}
			return os.WriteFile(name, data, 0o644)
		}, false},
		{"a symbolic link", os.Symlink, true},
		{"a hard link", os.Link, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			dir, elsewhere := filepath.Join(root, "keys.d"), filepath.Join(root, "elsewhere")
			target := filepath.Join(elsewhere, "a.json")
			keydirtest.Write(t, target, keydirtest.JWK(t, key(t, 1)))
			keydirtest.Write(t, filepath.Join(dir, "b.json"), keydirtest.JWK(t, key(t, 2)))
			if err := c.make(target, filepath.Join(dir, "a.json")); err != nil {
				t.Fatal(err)
			}
			l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert, Rescan: -1})
			t.Cleanup(func() { l.Close() })
			l.Reload()
			if got := l.compare(); got.aliased != c.aliased || got.listed != 2 {
				t.Errorf("%s in the directory: the rescan found aliased %v (want %v), listed %d (want 2)", c.name, got.aliased, c.aliased, got.listed)
			}
		})
	}
}

// On a file system whose events may not report a write (NFS, FUSE: not
// LocalStamps), the rescan finds changes, and keeps its period however
// long it takes; on one whose events report every write, a long rescan
// puts the next off.
func TestRescanKeepsPeriodWhereEventsMayMiss(t *testing.T) {
	old := LocalStamps
	t.Cleanup(func() { LocalStamps = old })
	dir := t.TempDir()
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
	for _, local := range []bool{false, true} {
		LocalStamps = func(string) bool { return local }
		l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert, Rescan: time.Minute})
		l.Watch(context.Background())
		l.Close()
		want := time.Minute
		if local {
			want = 5 * time.Minute
		}
		if got := l.rescanWait(compared{took: 3 * time.Second}); got != want {
			t.Errorf("events local %v: a rescan of 3 s with a period of a minute, the next after %v, want %v", local, got, want)
		}
	}
}
