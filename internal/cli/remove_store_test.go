package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// storeOf is a memStore holding the entries of kinds that home h holds.
func storeOf(t *testing.T, h string, kinds ...string) *memStore {
	t.Helper()
	var entries []StoreEntry
	for _, kind := range kinds {
		des, err := os.ReadDir(filepath.Join(h, kind+".d"))
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			if strings.HasPrefix(de.Name(), ".") {
				continue
			}
			entries = append(entries, StoreEntry{Kind: kind, Name: de.Name(), Value: readFile(t, filepath.Join(h, kind+".d", de.Name()))})
		}
	}
	return newMemStore(entries...)
}

// On a --store, a command that fails writes nothing back (inStore): a
// repeated --remove of which one is not found removes nothing from the
// store, so none is said removed, unpinned or lifted, and a note says
// that nothing was written — with a mirror home and without (review of
// dbe4b9a: trust-host and revoke printed the others as done).
func TestStoreRepeatedRemoveSaysOnlyWhatIsWritten(t *testing.T) {
	for _, mirrored := range []bool{true, false} {
		t.Run(fmt.Sprint("mirror=", mirrored), func(t *testing.T) {
			dir := t.TempDir()
			h0 := filepath.Join(dir, "seed")
			mkHome(t, h0) // commands that write refuse a home that is not there
			server, client, revoked := filepath.Join(dir, "server.json"), filepath.Join(dir, "alice.json"), filepath.Join(dir, "revoked.json")
			writePublicKey(t, server, nil)
			writePublicKey(t, client, nil)
			rk := writePublicKey(t, revoked, nil)
			for _, args := range [][]string{
				{"trust-host", "db3.example:1", "--key", server},
				{"authorize", "--name", "alice", client},
				{"revoke", revoked},
			} {
				if _, stderr, code := runKeytool(t, "", append([]string{"-H", h0}, args...)...); code != 0 {
					t.Fatalf("%v: exit %d\n%s", args, code, stderr)
				}
			}
			st := storeOf(t, h0, StoreTrusted, StoreAuthorized, StoreRevoked)
			h := filepath.Join(dir, "home")
			if mirrored {
				if err := os.Mkdir(h, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			u := memStoreURL(t, st)
			for _, c := range []struct {
				args []string
				said string
			}{
				{[]string{"trust-host", "--store", u, "--remove", "db3.example:1", "--remove", "nowhere.example:1"}, "Unpinned"},
				{[]string{"authorize", "--store", u, "--remove", "alice", "--remove", "nobody"}, "Removed"},
				{[]string{"revoke", "--store", u, "--remove", rk.Fingerprint(), "--remove", "nobody"}, "Lifted"},
			} {
				before := st.revision
				stdout, stderr, code := runKeytool(t, "", append([]string{"-H", h}, c.args...)...)
				if code != 1 || st.revision != before {
					t.Errorf("%s: exit %d, store revision %d (was %d); want 1, nothing written\nstderr:\n%s", c.args[0], code, st.revision, before, stderr)
				}
				if strings.Contains(stdout, c.said) || !strings.Contains(stderr, "nothing was written to the store") {
					t.Errorf("%s: the store was not written, and the command says:\nstdout:\n%s\nstderr:\n%s", c.args[0], stdout, stderr)
				}
			}
		})
	}
}

// revoke --remove and authorize --force NAME (moving a key out of its
// other names) say what they removed before a copy they could not take
// out (an OpenSSH file, which keytool does not rewrite): the stores
// return it with the error (review of dbe4b9a: the commands dropped it).
func TestRemovalsSayWhatWentBeforeAFailure(t *testing.T) {
	for _, c := range []struct {
		name, dir string
		setup     []string // with FILE for the key's file
		run       []string // with FP for its fingerprint
		said      string
	}{
		{"revoke --remove", "revoked_keys.d", []string{"revoke", "FILE"}, []string{"revoke", "--remove", "FP"}, "Lifted the revocation of "},
		{"authorize --force", "authorized_keys.d", []string{"authorize", "--name", "alice", "FILE"}, []string{"authorize", "--force", "--name", "bob", "FILE"}, `out of "alice"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			h := filepath.Join(dir, "home")
			mkHome(t, h) // commands that write refuse a home that is not there
			file := filepath.Join(dir, "k.json")
			k := writePublicKey(t, file, nil)
			subst := func(args []string) []string {
				out := []string{"-H", h}
				for _, a := range args {
					out = append(out, strings.NewReplacer("FILE", file, "FP", k.Fingerprint()).Replace(a))
				}
				return out
			}
			if _, stderr, code := runKeytool(t, "", subst(c.setup)...); code != 0 {
				t.Fatalf("%v: exit %d\n%s", c.setup, code, stderr)
			}
			// A second copy in an OpenSSH file, after the first in file
			// order.
			keydirtest.Write(t, filepath.Join(h, c.dir, "zz-ops.pub"), keydirtest.SSH(t, keydirtest.Key(t, 50), k))
			stdout, stderr, code := runKeytool(t, "", subst(c.run)...)
			if code != 1 || !strings.Contains(stdout, c.said) || !strings.Contains(stderr, "zz-ops.pub") {
				t.Errorf("exit %d, want 1, saying %q of the first copy and the error of zz-ops.pub\nstdout:\n%s\nstderr:\n%s", code, c.said, stdout, stderr)
			}
		})
	}
}
