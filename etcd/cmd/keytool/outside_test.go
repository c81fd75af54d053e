package main

import (
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/keytool/keytool/etcd/internal/etcdtest"
)

// TestListIgnoresKeysOutsideThePrefix: a key outside the prefix in an
// answer for its range is no entry of the store — sync must not mirror
// it, an edit must not take it for one. (Found by review: a key
// "authorized_keys/mallory.json", without the prefix, was read as that
// entry: the prefix was trimmed only if it was there.)
func TestListIgnoresKeysOutsideThePrefix(t *testing.T) {
	st := openTestStore(t, startEtcd(t, nil))
	if _, err := st.c.Put(t.Context(), "/kt/authorized_keys/alice.json", "{}"); err != nil {
		t.Fatal(err)
	}
	st.c.KV = etcdtest.ForgingKV{KV: st.c.KV, Forged: []*mvccpb.KeyValue{{Key: []byte("authorized_keys/mallory.json"), Value: []byte("{}"), ModRevision: 1}}}
	entries, err := st.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name != "alice.json" {
		t.Errorf("List: %v, want alice.json alone", entries)
	}
	l, err := st.ListRevisions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 1 || l.Entries[0].Name != "alice.json" {
		t.Errorf("ListRevisions: %v, want alice.json alone", l.Entries)
	}
}
