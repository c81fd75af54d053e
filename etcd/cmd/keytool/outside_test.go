package main

import (
	"context"
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/etcd"
	"github.com/keytool/keytool/etcd/internal/etcdtest"
)

// TestListIgnoresKeysOutsideThePrefix: a key outside the prefix in an
// answer for its range is no entry of the store — sync must not mirror
// it, an edit must not take it for one. (Found by review: a key
// "authorized_keys/mallory.json", without the prefix, was read as that
// entry: the prefix was trimmed only if it was there.) The list sync
// mirrors refuses such an answer whole since
// (TestListRefusesAnswerOutsideThePrefix); the edits' list of revisions
// skips the key.
func TestListIgnoresKeysOutsideThePrefix(t *testing.T) {
	st := openTestStore(t, startEtcd(t, nil))
	if _, err := st.c.Put(t.Context(), "/kt/authorized_keys/alice.json", "{}"); err != nil {
		t.Fatal(err)
	}
	st.c.KV = etcdtest.ForgingKV{KV: st.c.KV, Forged: []*mvccpb.KeyValue{{Key: []byte("authorized_keys/mallory.json"), Value: []byte("{}"), ModRevision: 1}}}
	l, err := st.ListRevisions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 1 || l.Entries[0].Name != "alice.json" {
		t.Errorf("ListRevisions: %v, want alice.json alone", l.Entries)
	}
}

// otherRangeKV answers every Get with the keys of another range in place
// of the prefix's: a proxy or a member gone wrong (a range of another
// prefix answered for this one).
type otherRangeKV struct {
	clientv3.KV
	other string
}

func (f otherRangeKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	return f.KV.Get(ctx, f.other, opts...)
}

// TestListRefusesAnswerOutsideThePrefix: the list keytool sync mirrors
// (a one-shot sync, sync --watch's full pass) refuses whole an answer
// holding a key outside the prefix, as the Source's list does
// (etcd.OutsideKeyError): not etcd's answer for this range, none of it is
// the prefix's. Before, such keys were skipped and the rest taken for the
// prefix's entries — here none: another range answered in its place
// left the prefix empty, and sync removed the file of every entry, the
// revocations of keys the home authorizes by hand among them, which the
// Source, refusing the answer, kept enforcing. (Found by review,
// 2026-12-05.)
func TestListRefusesAnswerOutsideThePrefix(t *testing.T) {
	st := openTestStore(t, startEtcd(t, nil))
	for _, k := range []string{"/kt/revoked_keys/bob.json", "/other/authorized_keys/x.json"} {
		if _, err := st.c.Put(t.Context(), k, "{}"); err != nil {
			t.Fatal(err)
		}
	}
	real := st.c.KV
	for _, kv := range []clientv3.KV{
		etcdtest.ForgingKV{KV: real, Forged: []*mvccpb.KeyValue{{Key: []byte("authorized_keys/mallory.json"), Value: []byte("{}"), ModRevision: 1}}},
		otherRangeKV{real, "/other/"},
	} {
		st.c.KV = kv
		l, err := st.List(t.Context())
		entries := l.Entries
		var oe *etcd.OutsideKeyError
		if !errors.As(err, &oe) {
			t.Errorf("List through %T: %v, err %v; want an etcd.OutsideKeyError", kv, entries, err)
		}
	}
}
