package keydir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// inotifyInstances counts the process's inotify instances (Linux), or
// skips the test where /proc/self/fd does not say.
func inotifyInstances(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		if runtime.GOOS == "linux" {
			t.Fatal(err)
		}
		t.Skip("no /proc/self/fd: inotify instances cannot be counted here")
	}
	n := 0
	for _, fd := range fds {
		if link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && link == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// Watching loaders share one inotify instance: each still gets the
// events of its own directories (and only a reload of its own), two
// watching one directory both get its events, closing one disturbs no
// other, and the instance and its goroutine end with the last loader.
func TestLoadersShareOneInotifyInstance(t *testing.T) {
	before, goroutines := inotifyInstances(t), runtime.NumGoroutine()
	base := t.TempDir()
	const n = 5
	var dirs []string
	var loaders []*Loader[string]
	for i := range n {
		d := filepath.Join(base, fmt.Sprint(i))
		keydirtest.Write(t, filepath.Join(d, "a.json"), keydirtest.JWK(t, key(t, i)))
		dirs = append(dirs, d)
	}
	dirs = append(dirs, dirs[0]) // a sixth loader watching the first one's directory
	for _, d := range dirs {
		l := New(Config[string]{Sources: []Source{{Path: d, Dir: true}}, Convert: fpConvert, Debounce: 20 * time.Millisecond, Rescan: -1})
		l.Watch(context.Background())
		t.Cleanup(func() { l.Close() })
		loaders = append(loaders, l)
	}
	if got := inotifyInstances(t); got != before+1 {
		t.Fatalf("%d loaders take %d inotify instances, want 1", len(loaders), got-before)
	}
	for i := range n {
		gens := make([]uint64, len(loaders))
		for j, l := range loaders {
			gens[j] = l.Snapshot().Generation
		}
		keydirtest.Write(t, filepath.Join(dirs[i], "b.json"), keydirtest.JWK(t, key(t, 100+i)))
		eventually(t, loaders[i], fmt.Sprintf("loader %d: its own change", i), time.Now(), want(t, key(t, i), key(t, 100+i)))
		if i == 0 {
			eventually(t, loaders[n], "the loader sharing directory 0", time.Now(), want(t, key(t, 0), key(t, 100)))
		}
		time.Sleep(50 * time.Millisecond) // a stray reload would have come by now
		for j, l := range loaders {
			if j != i && !(i == 0 && j == n) && l.Snapshot().Generation != gens[j] {
				t.Errorf("a change in directory %d reloaded loader %d", i, j)
			}
		}
	}
	// Closing a loader leaves the others watching, the one sharing its
	// directory too.
	loaders[0].Close()
	keydirtest.Write(t, filepath.Join(dirs[0], "c.json"), keydirtest.JWK(t, key(t, 200)))
	eventually(t, loaders[n], "after the other loader of its directory closed", time.Now(), want(t, key(t, 0), key(t, 100), key(t, 200)))
	keydirtest.Write(t, filepath.Join(dirs[1], "c.json"), keydirtest.JWK(t, key(t, 201)))
	eventually(t, loaders[1], "after another loader closed", time.Now(), want(t, key(t, 1), key(t, 101), key(t, 201)))
	for _, l := range loaders {
		l.Close()
	}
	if got := inotifyInstances(t); got != before {
		t.Errorf("%d inotify instances after every loader closed, %d before", got, before)
	}
	waitGoroutines(t, goroutines)
}

// A subscriber that does not read its events gets an overflow error
// once its buffer is full (its loader then rescans), and never holds
// back another subscriber's events.
func TestSharedWatchOverflowBlocksNoOther(t *testing.T) {
	base := t.TempDir()
	slow, fast := filepath.Join(base, "slow"), filepath.Join(base, "fast")
	os.MkdirAll(slow, 0o755)
	os.MkdirAll(fast, 0o755)
	a, err := subscribeShared()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := subscribeShared()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Add(slow); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(fast); err != nil {
		t.Fatal(err)
	}
	for i := range subBuffer + 100 { // a never reads
		if err := os.WriteFile(filepath.Join(slow, fmt.Sprint(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(fast, "x"), nil, 0o644)
	deadline := time.After(10 * time.Second)
	for got := false; !got; {
		select {
		case ev := <-b.Events():
			if strings.HasPrefix(ev.Name, slow) {
				t.Fatalf("b got an event of a's directory: %v", ev)
			}
			got = ev.Name == filepath.Join(fast, "x")
		case <-deadline:
			t.Fatal("b's event did not come while a's buffer was full")
		}
	}
	select {
	case err := <-a.Errors():
		if !errors.Is(err, fsnotify.ErrEventOverflow) {
			t.Errorf("a got %v, want ErrEventOverflow", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("a got no overflow error")
	}
}
