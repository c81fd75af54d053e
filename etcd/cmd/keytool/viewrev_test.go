package main

import (
	"testing"
	"time"

	"github.com/keytool/keytool/internal/cli"
)

// TestViewSaysItsRevision: the views of the store's live view say the
// revision of the last change they hold (cli.StoreState), comparable with
// the store's List: keytool sync --watch never mirrors a view older than
// the list it mirrored last (TestSyncWatchNeverMovesBack), nor a list
// older than the view it mirrored.
func TestViewSaysItsRevision(t *testing.T) {
	st := openTestStore(t, startEtcd(t, nil))
	f, err := st.Follow(t.Context(), cli.FollowOptions{Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	put, err := st.c.Put(t.Context(), "/kt/authorized_keys/bob.json", "{}")
	if err != nil {
		t.Fatal(err)
	}
	// Another prefix's write moves etcd's revision, not the view's.
	if _, err := st.c.Put(t.Context(), "/other/authorized_keys/carol.json", "{}"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		v := f.Feed(cli.StoreAuthorized).View()
		s, ok := v.State.(cli.StoreState)
		if !ok {
			t.Fatalf("the view's State %T does not say its revision", v.State)
		}
		if _, has := v.Set.Get("bob.json"); has {
			if s.Revision() != put.Header.Revision {
				t.Fatalf("the view holding bob's put (revision %d) says %d", put.Header.Revision, s.Revision())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob's put never reached the view")
		}
		time.Sleep(10 * time.Millisecond)
	}
	l, err := st.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if l.Revision <= put.Header.Revision || l.Identity == "" {
		t.Fatalf("List: revision %d, identity %q; want past %d, and the cluster", l.Revision, l.Identity, put.Header.Revision)
	}
}
