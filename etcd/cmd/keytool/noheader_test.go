package main

import (
	"context"
	"errors"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/etcd"
	"github.com/keytool/keytool/etcd/internal/etcdtest"
	"github.com/keytool/keytool/internal/cli"
)

// An answer without a response header (which etcd never sends: a proxy
// or a member gone wrong) fails the command with etcd.NoHeaderError:
// listing, reading the changes since a mark (by its witness, or without
// one), writing. Each crashed keytool (a nil dereference). (Found by
// review.)
func TestHeaderlessAnswersRefused(t *testing.T) {
	st := openTestStore(t, startEtcd(t, nil))
	if _, err := st.c.Put(t.Context(), "/kt/authorized_keys/alice.json", "{}"); err != nil {
		t.Fatal(err)
	}
	l, err := st.ListRevisions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	mark := markOf(l)
	witnessed := mark
	witnessed.Witness = l.Entries[0]
	st.c.KV = etcdtest.HeaderlessKV{KV: st.c.KV}
	for what, call := range map[string]func() error{
		"ListRevisions": func() error { _, err := st.ListRevisions(t.Context()); return err },
		"ChangesSince":  func() error { _, err := st.ChangesSince(t.Context(), mark); return err },
		"ChangesSince, a witness": func() error {
			_, err := st.ChangesSince(t.Context(), witnessed)
			return err
		},
		"Apply": func() error {
			_, err := st.Apply(t.Context(), []cli.StoreChange{{Kind: "authorized_keys", Name: "bob.json", Value: []byte("{}")}})
			return err
		},
	} {
		var ne *etcd.NoHeaderError
		if err := call(); !errors.As(err, &ne) {
			t.Errorf("%s: %v, want an etcd.NoHeaderError", what, err)
		}
	}
}

// emptyHeaderlessKV answers every Get with no keys and no response
// header: a member or proxy gone wrong, as HeaderlessKV, that lost the
// keys too.
type emptyHeaderlessKV struct{ clientv3.KV }

func (f emptyHeaderlessKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	r, err := f.KV.Get(ctx, key, opts...)
	if err == nil {
		r.Header, r.Kvs, r.Count = nil, nil, 0
	}
	return r, err
}

// TestHeaderlessListRefused: the list keytool sync mirrors (a one-shot
// sync, and sync --watch's full pass) refuses an answer without a
// response header, as ListRevisions and the Source's list do. Before, it
// was read as the prefix's entries — here, none: sync would have removed
// every file it wrote, the revocations of keys the home authorizes by
// hand among them, which the Source, refusing the same answer, still
// enforced. (Found by review, 2026-12-05.)
func TestHeaderlessListRefused(t *testing.T) {
	st := openTestStore(t, startEtcd(t, nil))
	if _, err := st.c.Put(t.Context(), "/kt/revoked_keys/bob.json", "{}"); err != nil {
		t.Fatal(err)
	}
	real := st.c.KV
	for _, kv := range []clientv3.KV{etcdtest.HeaderlessKV{KV: real}, emptyHeaderlessKV{real}} {
		st.c.KV = kv
		l, err := st.List(t.Context())
		entries := l.Entries
		var ne *etcd.NoHeaderError
		if !errors.As(err, &ne) {
			t.Errorf("List through %T: %v entries, err %v; want an etcd.NoHeaderError", kv, len(entries), err)
		}
	}
}
