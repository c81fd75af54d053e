package etcd

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// Whoever may write keys beside the prefix — a prefix that begins with
// the same string (/keytool/test2, /keytool/test-x, /keytool/testauthorized_keys),
// the prefix's own key, the keys that sort right after its range — grants
// and revokes nothing in it: neither in the list nor in the watch, and
// the writes there do not end, relist or stale the view.
func TestSiblingPrefixesGrantNothing(t *testing.T) {
	ms := startCluster(t, 1)
	cli := client(t, ms[0].endpoint())
	alice, mallory := keydirtest.Key(t, 1), keydirtest.Key(t, 2)
	put(t, cli, Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	beside := func(tag string) {
		for _, k := range []string{
			prefix + "2/authorized_keys/mallory" + tag,
			prefix + "-x/authorized_keys/mallory" + tag,
			prefix + "authorized_keys/mallory" + tag,
			prefix + "0/authorized_keys/mallory" + tag, // "0" follows "/": the first key past the range
			prefix,
		} {
			put(t, cli, k, keyJSON(t, mallory))
		}
		put(t, cli, prefix+"2/revoked_keys/alice"+tag, keyJSON(t, alice))
		put(t, cli, prefix+"0/revoked_keys/alice"+tag, keyJSON(t, alice))
	}
	beside("-listed")
	src := open(t, Options{Client: client(t, ms[0].endpoint()), Prefix: prefix + "/"})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	check := func(when string) {
		t.Helper()
		if v, w := verdict(store, alice), verdict(store, mallory); v != authkeys.Authorized || w != authkeys.Unknown {
			t.Errorf("%s: alice %v, mallory %v; want authorized, unknown", when, v, w)
		}
		if names := slices.Sorted(maps.Keys(src.Entries(Authorized))); !slices.Equal(names, []string{"alice"}) || len(src.Entries(Revoked)) != 0 || len(src.Problems()) != 0 {
			t.Errorf("%s: authorized %v, revoked %v, problems %v", when, names, src.Entries(Revoked), src.Problems())
		}
	}
	check("listed")
	beside("-watched")
	rev := put(t, cli, Key(prefix, Authorized, "z-later"), keyJSON(t, keydirtest.Key(t, 3)))
	eventually(t, 20*time.Second, "the write after those beside the prefix not applied", func() bool { return src.Revision() >= rev })
	del(t, cli, Key(prefix, Authorized, "z-later"))
	eventually(t, 20*time.Second, "the removal not applied", func() bool { _, ok := src.Entries(Authorized)["z-later"]; return !ok })
	check("watched")
	if n := src.Relists(); n != 0 {
		t.Errorf("%d relists: writes beside the prefix are no history of its own", n)
	}
}
