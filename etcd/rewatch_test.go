package etcd

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRewatchWaitStartsAgainAfterAWatchServed: the wait before watching
// again doubles with each watch that ends in a row without serving, and
// starts again at firstWait once one has served (here, brought a write).
// Before, only a list reset it: a watch that ended after serving (its
// member losing the leader, hours later) was resumed only after the
// longest wait any earlier run of failures had reached, up to 3 s, the
// view that long behind a revocation. Member 0, which the Source's client
// alone knows, loses its leader when member 1 stops: its watches end
// (WithRequireLeader), each warning "watch ended" with the wait ("in").
func TestRewatchWaitStartsAgainAfterAWatchServed(t *testing.T) {
	ms := startCluster(t, 2)
	writer := client(t, endpoints(ms)...)
	waits := &waitLog{}
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix, Progress: time.Hour, Logger: slog.New(waits)})
	ms[1].stop()
	eventually(t, 60*time.Second, "the wait before watching again did not grow to 400 ms without a leader", func() bool {
		w := waits.all()
		return len(w) > 0 && w[len(w)-1] >= 4*firstWait
	})
	if err := ms[1].start(); err != nil {
		t.Fatal(err)
	}
	rev := put(t, writer, Key(prefix, Authorized, "k"), keyJSON(t, keyN(t, 1)))
	eventually(t, 30*time.Second, "the watch did not bring the write once the leader was back", func() bool { return src.Revision() >= rev })
	served := len(waits.all()) // the watch open now brought the write
	ms[1].stop()
	eventually(t, 60*time.Second, "the watch that brought the write did not end without a leader", func() bool { return len(waits.all()) > served })
	if w := waits.all(); w[served] != firstWait {
		t.Fatalf("waits before watching again: %v; after the watch that brought the write, %v, want %v (the run of failures before it is over)", w, w[served], firstWait)
	}
}

// waitLog is a slog.Handler keeping the waits ("in") of the Source's
// "watch ended" warnings, in order.
type waitLog struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (l *waitLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *waitLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *waitLog) WithGroup(string) slog.Handler            { return l }

func (l *waitLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "etcd: watch ended") {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "in" {
			l.mu.Lock()
			l.waits = append(l.waits, a.Value.Duration())
			l.mu.Unlock()
		}
		return true
	})
	return nil
}

func (l *waitLog) all() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.waits)
}
