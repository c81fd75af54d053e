//go:build unix

package keydir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A revocation file created group-writable (umask 002) and tightened
// with chmod at once by the tool that writes it (Python's open then
// os.chmod) must not make a published snapshot refuse everyone: the
// reload applied the moment the file appeared finds it still failing the
// trust-file rule, and holds it back (Loader.holdEarly) until events are
// quiet. (Found by review: without the hold, 5 to 9 snapshots of 20.)
func TestEarlyReloadHoldsAFileNotYetTightened(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "revoked_keys.d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	const debounce = 50 * time.Millisecond
	var mu sync.Mutex
	failed := map[string]int{} // snapshots refusing everyone, by the file that failed
	published := 0
	l := New(Config[string]{
		Sources: []Source{{Path: dir, Dir: true, Revocation: true}},
		Convert: fpConvert, Debounce: debounce, Rescan: -1,
		OnReload: func(s *Snapshot[string]) {
			mu.Lock()
			defer mu.Unlock()
			published++
			var p Problem
			if errors.As(s.RevocationErr, &p) {
				failed[p.Path]++
			} else if s.RevocationErr != nil {
				failed[""]++
			}
		},
	})
	l.Watch(context.Background())
	defer l.Close()
	// What the hold promises holds for a writer that tightens its file
	// sooner than the debounce: a file whose writer the machine stopped
	// longer between its open and its chmod (it can, under other jobs'
	// load; the burst then ends with the file still group-writable, and
	// refusing everyone is right) is not counted, by its path.
	paused := map[string]bool{}
	for i := range 10 {
		time.Sleep(100 * time.Millisecond)
		p := filepath.Join(dir, "r"+string(rune('a'+i))+".json")
		data := keydirtest.JWK(t, key(t, i+1))
		start := time.Now()
		old := syscall.Umask(0o002) // Debian/Ubuntu's default for users
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o666)
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Write(data)
		if err == nil {
			err = f.Chmod(0o600)
		}
		if took := time.Since(start); took >= debounce/2 {
			t.Logf("%s: tightened %v after its creation, the writer paused: not counted", filepath.Base(p), took)
			paused[p] = true
		}
		if err := errors.Join(err, f.Close()); err != nil {
			t.Fatal(err)
		}
	}
	if len(paused) == 10 {
		t.Fatal("every writer was paused for as long as the debounce: the machine is too loaded to tell")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(fingerprints(l.Snapshot())) < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := l.Snapshot(); len(fingerprints(s)) != 10 || s.RevocationErr != nil {
		t.Errorf("once written: %d revocations, revocation error %v; want all 10 and none", len(fingerprints(s)), s.RevocationErr)
	}
	mu.Lock()
	defer mu.Unlock()
	wrong := 0
	for p, n := range failed {
		if !paused[p] {
			wrong += n
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d published snapshots refused everyone (RevocationErr) while a revocation file was being written (by file: %v)", wrong, published, failed)
	}
}
