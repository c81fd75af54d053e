package main

import (
	"errors"
	"testing"

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
