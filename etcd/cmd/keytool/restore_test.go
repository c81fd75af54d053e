package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestMirrorTellsARestoreWithoutBump: etcd restored to a revision below
// a home's mirror and written past it again, keeping its cluster ID
// (etcdutl snapshot restore without --bump-revision; here a new member at
// the same URLs, given the same writes up to the restore's revision),
// makes the next edit rebuild the mirror — where the changes since the
// mirror's revision alone would keep an entry of the lost history and
// miss one of the new, written at a revision the mirror had already
// passed:
//
//   - own: the restore lost the mirror's own last write, whose key at
//     the mirror's revision is not that write (the witness);
//   - elsewhere: the restore lost only a write outside the prefix that
//     the mirror's revision had passed, and the new history wrote an
//     entry at that revision (above every entry the mirror knew: Top).
//
// Each also with the changes read by a watch (etcdwatch://, a large
// prefix's way), which starts after the mirror's revision: there the
// witness tells own, and the count of the prefix's keys at the mirror's
// revision tells elsewhere (the new entry is a key more).
func TestMirrorTellsARestoreWithoutBump(t *testing.T) {
	bin := keytoolBinary(t)
	keys := keyFiles(t, "n1", "n2", "n3")
	ctx := context.Background()
	for _, c := range []struct {
		name, scheme string
		elsewhere    bool
	}{{"own", "etcd", false}, {"elsewhere", "etcd", true}, {"own-watch", "etcdwatch", false}, {"elsewhere-watch", "etcdwatch", true}} {
		t.Run(c.name, func(t *testing.T) {
			cu, pu := loopbackURL(t), loopbackURL(t)
			e := startEtcdAt(t, cu, pu, nil)
			cl := etcdClient(t, cu.Host)
			store := c.scheme + "://" + cu.Host + "/kt"
			h := filepath.Join(t.TempDir(), "home")
			if err := os.Mkdir(h, 0o700); err != nil {
				t.Fatal(err)
			}
			mustPut(t, cl, "/kt/authorized_keys/a.json", `{"kty":"a"}`) // revision 2
			mustPut(t, cl, "/kt/authorized_keys/b.json", `{"kty":"b"}`) // 3
			history := 3
			run(t, bin, "-H", h, "authorize", "--store", store, "--name", "n1", keys["n1"]) // 4: the mirror's
			if c.elsewhere {
				mustPut(t, cl, "/elsewhere/x", "x")                                             // 5
				run(t, bin, "-H", h, "authorize", "--store", store, "--name", "n1", keys["n1"]) // nothing to write: the mirror at 5
				history = 4
			}
			old, err := cl.Get(ctx, "/kt/", clientv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			e.Close()

			// Restored at revision history: the same writes up to it,
			// other ones after.
			e = startEtcdAt(t, cu, pu, nil)
			t.Cleanup(e.Close)
			cl = etcdClient(t, cu.Host)
			for _, kv := range old.Kvs {
				if kv.ModRevision <= int64(history) {
					mustPut(t, cl, string(kv.Key), string(kv.Value))
				}
			}
			mustPut(t, cl, "/kt/authorized_keys/other.json", `{"kty":"o"}`) // at the revision the mirror had reached
			mustPut(t, cl, "/kt/authorized_keys/later.json", `{"kty":"l"}`)
			if r, err := cl.Get(ctx, "/kt/authorized_keys/other.json"); err != nil || r.Kvs[0].ModRevision != int64(history+1) {
				t.Fatalf("the restored history is not at the revisions planned: %v %v", r, err)
			}
			run(t, bin, "-H", h, "authorize", "--store", store, "--name", "n2", keys["n2"])

			names := mirroredNames(h, "authorized_keys")
			want := []string{"a.json", "b.json", "later.json", "n2.json", "other.json"}
			if c.elsewhere {
				want = []string{"a.json", "b.json", "later.json", "n1.json", "n2.json", "other.json"}
			}
			if !slices.Equal(names, want) {
				t.Fatalf("the mirror holds %v; the restored store %v", names, want)
			}
		})
	}
}

// TestMirrorTellsARestoreThatLostARemoval: etcd restored (without
// --bump-revision) to before the mirror's own removal, then written past
// the mirror's revision elsewhere in the cluster. A removal leaves no
// revision on an entry, so neither Top nor the witness can tell; the
// count of the prefix's keys at the mirror's revision does. Without it
// the mirror lacked n1, which etcd had again, and a second
// `authorize --remove n1` said no key had that name (found by review).
func TestMirrorTellsARestoreThatLostARemoval(t *testing.T) {
	for _, scheme := range []string{"etcd", "etcdwatch"} {
		t.Run(scheme, func(t *testing.T) { mirrorTellsARestoreThatLostARemoval(t, scheme) })
	}
}

func mirrorTellsARestoreThatLostARemoval(t *testing.T, scheme string) {
	bin := keytoolBinary(t)
	keys := keyFiles(t, "n1", "n2", "n3")
	ctx := context.Background()
	cu, pu := loopbackURL(t), loopbackURL(t)
	e := startEtcdAt(t, cu, pu, nil)
	cl := etcdClient(t, cu.Host)
	store := scheme + "://" + cu.Host + "/kt"
	h := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(h, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, bin, "-H", h, "authorize", "--store", store, "--name", "n1", keys["n1"])
	run(t, bin, "-H", h, "authorize", "--store", store, "--name", "n2", keys["n2"])
	backup, err := cl.Get(ctx, "/kt/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	run(t, bin, "-H", h, "authorize", "--store", store, "--remove", "n1")
	e.Close()

	e = startEtcdAt(t, cu, pu, nil)
	t.Cleanup(e.Close)
	cl = etcdClient(t, cu.Host)
	for _, kv := range backup.Kvs {
		mustPut(t, cl, string(kv.Key), string(kv.Value))
	}
	if r, err := cl.Get(ctx, "/kt/", clientv3.WithCountOnly()); err != nil || r.Header.Revision != backup.Header.Revision {
		t.Fatalf("the restored history is not at the backup's revision %d: %v %v", backup.Header.Revision, r, err)
	}
	mustPut(t, cl, "/elsewhere/x", "x") // at the revision of the lost removal
	mustPut(t, cl, "/elsewhere/y", "y")
	run(t, bin, "-H", h, "authorize", "--store", store, "--name", "n3", keys["n3"])

	names := mirroredNames(h, "authorized_keys")
	if want := []string{"n1.json", "n2.json", "n3.json"}; !slices.Equal(names, want) {
		t.Fatalf("the mirror holds %v; the restored store %v", names, want)
	}
	run(t, bin, "-H", h, "authorize", "--store", store, "--remove", "n1")
	if r, err := cl.Get(ctx, "/kt/authorized_keys/n1.json"); err != nil || len(r.Kvs) != 0 {
		t.Fatalf("n1 is still in etcd after its removal: %v %v", r, err)
	}
}

// keyFiles writes a public key file for each name, NAME.json in a
// directory of its own, and returns their paths by name.
func keyFiles(t *testing.T, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	keys := map[string]string{}
	for _, name := range names {
		keys[name] = filepath.Join(dir, name+".json")
		keydirtest.Write(t, keys[name], keydirtest.JWK(t, keydirtest.Key(t, len(keys))))
	}
	return keys
}

// mustPut puts key=val in etcd through c, failing the test if it cannot.
func mustPut(t *testing.T, c *clientv3.Client, key, val string) {
	t.Helper()
	if _, err := c.Put(context.Background(), key, val); err != nil {
		t.Fatal(err)
	}
}

// mirroredNames are the names of the entry files of kind in the home h's
// mirror of a store, sorted.
func mirroredNames(h, kind string) []string {
	files, _ := filepath.Glob(filepath.Join(h, ".store-mirror", "*", kind+".d", "*.json"))
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	return names
}
