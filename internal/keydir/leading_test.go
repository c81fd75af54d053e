package keydir

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// A change is applied at once, not after the debounce: with a debounce of
// 3 s, a file renamed into place is in the snapshot within the one second
// eventually waits. A burst is still coalesced: 30 renames in a row give
// far fewer reloads than 30.
func TestLeadingEdgeReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	keydirtest.Write(t, filepath.Join(dir, "other.json"), keydirtest.JWK(t, key(t, 9)))
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert, Debounce: 3 * time.Second, Rescan: -1})
	l.Watch(context.Background())
	t.Cleanup(func() { l.Close() })
	// Written as keytool and renameio write: a dotfile renamed into place.
	// (A visible temporary name, as sed -i's, may be read at the leading
	// edge before its rename: the rename then waits for the burst's end.)
	start := time.Now()
	tmp := filepath.Join(dir, ".alice.json.tmp")
	keydirtest.Write(t, tmp, keydirtest.JWK(t, key(t, 1)))
	must(t, os.Rename(tmp, filepath.Join(dir, "alice.json")))
	eventuallyWithin(t, l, "renamed in after a quiet spell", start, want(t, key(t, 1), key(t, 9)), time.Second)

	finish := record(t, l)
	time.Sleep(10 * time.Millisecond)
	w := []int{1, 9}
	data := make([][]byte, 30)
	for i := range data {
		data[i] = keydirtest.JWK(t, key(t, 100+i))
		w = append(w, 100+i)
	}
	// The temporaries are written first (dotfiles: no reload of their
	// own), so that the burst is the renames alone: a loaded machine
	// stretches a loop of writes past the rate at which changes are
	// applied the moment they come, and then each rightly gets a reload.
	tmpOf := func(i int) string { return filepath.Join(dir, ".k"+strconv.Itoa(i)+".tmp") }
	for i := range data {
		must(t, os.WriteFile(tmpOf(i), data[i], 0o644))
	}
	time.Sleep(10 * time.Millisecond)
	burstStart := time.Now()
	for i := range data {
		must(t, os.Rename(tmpOf(i), filepath.Join(dir, "k"+strconv.Itoa(i)+".json")))
	}
	burst := time.Since(burstStart)
	deadline := time.Now().Add(15 * time.Second)
	for len(fingerprints(l.Snapshot())) != len(w) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(fingerprints(l.Snapshot())); n != len(w) {
		t.Fatalf("after the burst: %d keys, want %d", n, len(w))
	}
	// Coalesced: changes applied the moment they come are rate-limited
	// (burstTokens at once, one more every tokenEvery), and a reload at a
	// burst's leading edge waits settleTime of quiet, which events join.
	// 30 renames take well under a millisecond, and give 2 or 3 reloads
	// (30 if each were applied as it came); were they stretched (a
	// preempted test), the bound follows the rate.
	limit := max(15, burstTokens+2*int(burst/min(tokenEvery, settleTime))+4)
	if snaps := finish(); len(snaps) > limit {
		t.Errorf("a burst of %d renames in %v gave %d reloads; want it coalesced (at most %d)", len(data), burst, len(snaps), limit)
	}
}

// A file created and then written in pieces (cat > file) may be read at
// the leading edge before it is complete: it is then held back, neither
// trusted nor reported, and read again at the end of the burst — no
// snapshot holds the half-written file as a problem. A new revocation
// file written that way never fails every key closed meanwhile.
func TestLeadingEdgeHoldsAFileBeingWritten(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "authorized_keys.d")
	revoked := filepath.Join(base, "revoked_keys.d")
	keydirtest.Write(t, filepath.Join(dir, "other.json"), keydirtest.JWK(t, key(t, 9)))
	must(t, os.MkdirAll(revoked, 0o755))
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}, {Path: revoked, Dir: true, Revocation: true}},
		Convert: fpConvert, Debounce: 300 * time.Millisecond, Rescan: -1})
	l.Watch(context.Background())
	t.Cleanup(func() { l.Close() })
	finish := record(t, l)
	// What the store promises holds for a writer that never pauses as
	// long as the debounce between two writes: a file whose writer the
	// machine stopped for half of it (it can, under other jobs' load; the
	// burst may then end on the half file, and reporting it is right) is
	// not counted, by its path.
	paused := map[string]bool{}
	for _, path := range []string{filepath.Join(dir, "alice.json"), filepath.Join(revoked, "bad.json")} {
		data := keydirtest.JWK(t, key(t, 1))
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
		must(t, err)
		last, maxGap := time.Now(), time.Duration(0)
		for i := 0; i < len(data); i += 16 {
			if i > 0 {
				time.Sleep(3 * time.Millisecond)
			}
			_, err := f.Write(data[i:min(i+16, len(data))])
			must(t, err)
			maxGap, last = max(maxGap, time.Since(last)), time.Now()
		}
		must(t, f.Close())
		if maxGap >= 150*time.Millisecond {
			t.Logf("%s: %v between two of its writes, the writer paused: not counted", filepath.Base(path), maxGap)
			paused[path] = true
		}
	}
	if len(paused) == 2 {
		t.Fatal("both writers paused for half the debounce between two writes: the machine is too loaded to tell")
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.Snapshot().RevocationErr == nil && len(l.Snapshot().Files()) < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(700 * time.Millisecond) // past the burst's trailing reload
	for i, s := range finish() {
		for _, p := range s.Problems {
			if !paused[p.Path] {
				t.Errorf("snapshot %d holds problems %v (revocation failing: %v): a file being written was not held back", i, s.Problems, s.RevocationErr)
				break
			}
		}
	}
	s := l.Snapshot()
	if got := fingerprints(s); !slices.Equal(got, want(t, key(t, 1), key(t, 1), key(t, 9))) || len(s.Problems) != 0 {
		t.Errorf("after the writes: keys %v, problems %v", got, s.Problems)
	}
}

// A change after a quiet spell is applied the moment its event comes (the
// watcher reloads without a timer, whose firing a busy process delays);
// only burstTokens changes in a row are, then one per tokenEvery; the rest
// of a burst waits for the burst's quiet, as does a file written in place.
func TestBurstAppliesAChangeAtOnce(t *testing.T) {
	b := newBurst(50 * time.Millisecond)
	defer b.timer.Stop()
	noHold := func(hints) []string { return nil }
	// Times of our own, later than any reload's real end (fire sets it).
	t0 := time.Now().Add(time.Hour)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	create := func(name string) fsnotify.Event { return fsnotify.Event{Name: name, Op: fsnotify.Create} }

	for i := range burstTokens {
		if !b.event(create("k"+strconv.Itoa(i)+".json"), at(time.Duration(i)*time.Microsecond), true) {
			t.Fatalf("change %d of a burst was not applied at once", i)
		}
		b.fire(noHold)
	}
	if b.event(create("more.json"), at(10*time.Microsecond), true) {
		t.Fatalf("change %d in a row applied at once; want it to wait for the burst's quiet", burstTokens+1)
	}
	if !b.settling {
		t.Fatal("the change past the tokens is not waiting at the leading edge")
	}
	b.fire(noHold) // the timer's reload

	if !b.event(fsnotify.Event{Name: "gone.json", Op: fsnotify.Remove}, at(tokenEvery+20*time.Microsecond), true) {
		t.Fatal("a removal a token's time later was not applied at once")
	}
	b.fire(noHold)
	if b.event(create("sed4f2a1c"), at(time.Second), false) {
		t.Fatal("a change that may be one step of several was applied at once")
	}
	if !b.settling {
		t.Fatal("a change that may be one step of several is not waiting for the burst's quiet")
	}
	b.fire(noHold)
	if b.event(fsnotify.Event{Name: "k1.json", Op: fsnotify.Write}, at(2*time.Second), true) {
		t.Fatal("a file written in place was applied at once; want it read once its writes are quiet")
	}
}

// Which changes may be applied the moment their event comes: a key file
// created or renamed in, and a file removed from a source that grants
// trust; not what may be one step of several (a tool's temporary of a
// visible name, a file renamed away as vim does before writing the new
// one, a removal from a revocation source, a new directory), nor a write.
func TestWhatIsAppliedAtOnce(t *testing.T) {
	base := t.TempDir()
	dir, revoked, file := filepath.Join(base, "authorized_keys.d"), filepath.Join(base, "revoked_keys.d"), filepath.Join(base, "authorized_keys.json")
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}, {Path: revoked, Dir: true, Revocation: true}, {Path: file}}})
	for _, c := range []struct {
		name string
		op   fsnotify.Op
		want bool
	}{
		{filepath.Join(dir, "alice.json"), fsnotify.Create, true},
		{filepath.Join(dir, "alice.jwk"), fsnotify.Create, true},
		{filepath.Join(dir, "alice.pem"), fsnotify.Create, true},
		{filepath.Join(dir, "id_ed25519.pub"), fsnotify.Create, true},
		{filepath.Join(revoked, "alice.json"), fsnotify.Create, true},
		{file, fsnotify.Create, true},
		{filepath.Join(dir, "sedAb12Cd"), fsnotify.Create, false},
		{filepath.Join(dir, "alice.json.puppettmp_42"), fsnotify.Create, false},
		{filepath.Join(base, "authorized_keys.d"), fsnotify.Create, false},
		{filepath.Join(dir, "alice.json"), fsnotify.Remove, true},
		{file, fsnotify.Remove, true},
		{filepath.Join(revoked, "alice.json"), fsnotify.Remove, false},
		{filepath.Join(dir, "alice.json"), fsnotify.Rename, false},
		{filepath.Join(dir, "alice.json"), fsnotify.Write, false},
		{filepath.Join(dir, "alice.json"), fsnotify.Chmod, false},
		{filepath.Join(dir, "alice.json"), fsnotify.Create | fsnotify.Write, false},
	} {
		if got := l.atOnce(fsnotify.Event{Name: c.name, Op: c.op}); got != c.want {
			t.Errorf("%v %s: applied at once %v, want %v", c.op, c.name, got, c.want)
		}
	}
}
