package keydir

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// BenchmarkEventDuringRescan measures what a periodic rescan does to a
// reload caused by an event: the event's reload of one file of a directory
// of N files (100,000 unless KEYTOOL_BENCH_KEYS says otherwise), alone and
// while a rescan of the whole directory is running, in the same run.
func BenchmarkEventDuringRescan(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("KEYTOOL_BENCH_KEYS")); err == nil && v > 0 {
		n = v
	}
	dir := filepath.Join(b.TempDir(), "authorized_keys.d")
	os.MkdirAll(dir, 0o755)
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("k%06d.json", i)), keydirtest.JWK(b, keydirtest.Key(b, i)), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert})
	if got := len(l.Reload().Files); got != n {
		b.Fatalf("%d files loaded", got)
	}
	changed := filepath.Join(dir, "k000007.json")
	alt := [2][]byte{keydirtest.JWK(b, keydirtest.Key(b, n+1)), keydirtest.JWK(b, keydirtest.Key(b, 7))}
	// Each figure is the time of the event's reload alone, reported as
	// ms/event; the rescan's own time is not counted.
	i := 0
	event := func() time.Duration {
		keydirtest.Replace(b, changed, alt[i%2])
		i++
		start := time.Now()
		l.Reload(changed)
		return time.Since(start)
	}
	b.Run("event-alone", func(b *testing.B) {
		var sum time.Duration
		for b.Loop() {
			sum += event()
		}
		b.ReportMetric(float64(sum.Microseconds())/1e3/float64(b.N), "ms/event")
	})
	b.Run("event-during-rescan", func(b *testing.B) {
		var sum time.Duration
		for b.Loop() {
			done := make(chan struct{})
			go func() { l.rescan(); close(done) }()
			time.Sleep(20 * time.Millisecond) // the rescan is under way
			sum += event()
			<-done
		}
		b.ReportMetric(float64(sum.Microseconds())/1e3/float64(b.N), "ms/event")
	})
}
