package etcd

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/etcd/internal/etcdtest"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// noHeaderLog passes on each log record's *NoHeaderError.
type noHeaderLog chan *NoHeaderError

func (l noHeaderLog) Enabled(context.Context, slog.Level) bool { return true }
func (l noHeaderLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l noHeaderLog) WithGroup(string) slog.Handler            { return l }
func (l noHeaderLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		var ne *NoHeaderError
		if err, ok := a.Value.Any().(error); ok && errors.As(err, &ne) {
			select {
			case l <- ne:
			default:
			}
		}
		return true
	})
	return nil
}

// A list answered without a response header (which etcd never sends: a
// proxy or a member gone wrong) is refused whole and said
// (NoHeaderError), the Source without a view: it crashed the process
// (a nil dereference on the Source's goroutine). (Found by review.)
func TestHeaderlessListRefused(t *testing.T) {
	ms := startCluster(t, 1)
	put(t, client(t, ms[0].endpoint()), Key(prefix, Authorized, "good"), keyJSON(t, keydirtest.Key(t, 1)))
	c := client(t, ms[0].endpoint())
	c.KV = etcdtest.HeaderlessKV{KV: c.KV}
	logged := make(noHeaderLog, 1)
	src, err := Open(t.Context(), Options{Client: c, Prefix: prefix, Logger: slog.New(logged)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	select {
	case ne := <-logged:
		if ne.Request != "list" || ne.Key != prefix+"/" {
			t.Errorf("error %v, want the list's of the prefix", ne)
		}
	case <-src.Ready():
		t.Fatalf("the list was taken, at revision %d", src.Revision())
	case <-time.After(20 * time.Second):
		t.Fatal("no list refused in 20 s")
	}
	if v := src.Feed(Authorized).View(); !errors.Is(v.Err, ErrNoView) {
		t.Fatalf("the feed's view: %v, want no view (every key refused)", v.Err)
	}
}

// A read confirming the view answered without a response header
// confirms nothing, and is said: the view turns stale, as with etcd
// unreachable, where it crashed the process (a nil dereference in
// check). (Found by review.)
func TestHeaderlessCheckConfirmsNothing(t *testing.T) {
	ms := startCluster(t, 1)
	put(t, client(t, ms[0].endpoint()), Key(prefix, Authorized, "good"), keyJSON(t, keydirtest.Key(t, 1)))
	c := client(t, ms[0].endpoint())
	var headerless atomic.Bool
	c.KV = etcdtest.HeaderlessKV{KV: c.KV, On: &headerless}
	logged := make(noHeaderLog, 1)
	src := open(t, Options{Client: c, Prefix: prefix, MaxStaleness: time.Second, Progress: 50 * time.Millisecond, Logger: slog.New(logged)})
	headerless.Store(true)
	select {
	case ne := <-logged:
		if ne.Request != "read" {
			t.Errorf("error %v, want a read's", ne)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no headerless answer said in 20 s")
	}
	eventually(t, 10*time.Second, "the view stale", func() bool {
		var se *StaleError
		return errors.As(src.Feed(Authorized).View().Err, &se)
	})
}
