package etcd

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/etcd/internal/etcdtest"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// outsideLog passes on each log record's *OutsideKeyError.
type outsideLog chan *OutsideKeyError

func (l outsideLog) Enabled(context.Context, slog.Level) bool { return true }
func (l outsideLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l outsideLog) WithGroup(string) slog.Handler            { return l }
func (l outsideLog) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		var oe *OutsideKeyError
		if err, ok := a.Value.Any().(error); ok && errors.As(err, &oe) {
			select {
			case l <- oe:
			default:
			}
		}
		return true
	})
	return nil
}

// A list that answers a key outside the prefix is refused whole, never
// read as the prefix's: a key of another prefix as long as this one was
// taken for one of its entries (mallory authorized), and a shorter key
// crashed the process (slice out of range). (Found by review.)
func TestListAnsweringKeysOutsideThePrefixRefused(t *testing.T) {
	ms := startCluster(t, 1)
	put(t, client(t, ms[0].endpoint()), Key(prefix, Authorized, "good"), keyJSON(t, keydirtest.Key(t, 1)))
	for what, forged := range map[string]string{"same length": "/keytool/prod/authorized_keys/mallory", "shorter": "/k"} {
		t.Run(what, func(t *testing.T) {
			c := client(t, ms[0].endpoint())
			c.KV = etcdtest.ForgingKV{KV: c.KV, Forged: []*mvccpb.KeyValue{{Key: []byte(forged), Value: keyJSON(t, keydirtest.Key(t, 2)), ModRevision: 1}}}
			logged := make(outsideLog, 1)
			src, err := Open(t.Context(), Options{Client: c, Prefix: prefix, Logger: slog.New(logged)})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			select {
			case oe := <-logged:
				if oe.Key != forged || oe.Prefix != prefix+"/" {
					t.Errorf("error %v, want one naming %q and the prefix", oe, forged)
				}
			case <-src.Ready():
				t.Fatalf("the list was taken: entries %v", slices.Sorted(maps.Keys(src.Entries(Authorized))))
			case <-time.After(20 * time.Second):
				t.Fatal("no list refused in 20 s")
			}
			if v := src.Feed(Authorized).View(); !errors.Is(v.Err, ErrNoView) {
				t.Fatalf("the feed's view: %v, want no view (every key refused)", v.Err)
			}
		})
	}
}

// A watch's event for a key outside the prefix is ignored, and said as a
// list's is (OutsideKeyError, Watch): the events beside it are applied.
// (Found by review: it was skipped without a word.)
func TestWatchEventOutsideThePrefixIgnored(t *testing.T) {
	ms := startCluster(t, 1)
	c := client(t, ms[0].endpoint())
	put(t, c, Key(prefix, Authorized, "good"), keyJSON(t, keydirtest.Key(t, 1)))
	const forged = "/keytool/prod/authorized_keys/mallory"
	c.Watcher = etcdtest.ForgingWatcher{Watcher: c.Watcher, Forged: []*clientv3.Event{{
		Type: mvccpb.PUT,
		Kv:   &mvccpb.KeyValue{Key: []byte(forged), Value: keyJSON(t, keydirtest.Key(t, 2)), ModRevision: 1 << 40},
	}}}
	logged := make(outsideLog, 1)
	src, err := Open(t.Context(), Options{Client: c, Prefix: prefix, Logger: slog.New(logged)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	<-src.Ready()
	put(t, client(t, ms[0].endpoint()), Key(prefix, Authorized, "later"), keyJSON(t, keydirtest.Key(t, 3)))
	select {
	case oe := <-logged:
		if oe.Key != forged || oe.Prefix != prefix+"/" || !oe.Watch {
			t.Errorf("error %v, want the watch's, naming %q and the prefix", oe, forged)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no event outside the prefix said in 20 s")
	}
	eventually(t, 20*time.Second, "the event beside the forged one applied", func() bool {
		_, ok := src.Entries(Authorized)["later"]
		return ok
	})
	if names := slices.Sorted(maps.Keys(src.Entries(Authorized))); !slices.Equal(names, []string{"good", "later"}) {
		t.Fatalf("entries %v, want good and later alone", names)
	}
}
