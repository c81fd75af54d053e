package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/pflag"
)

// TestReadNoteQuotesWhy: a note's reason is printed as read (--list,
// --remove, HiddenEntryError), so one holding terminal controls — a
// mirror's note written over by hand, say — comes back quoted, as an
// entry's name does.
func TestReadNoteQuotesWhy(t *testing.T) {
	path := filepath.Join(t.TempDir(), unheldPrefix+"x")
	if err := os.WriteFile(path, []byte(`{"name":"bob.json","revision":7,"size":3,"why":"\u001b[2Jcleared"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	n, ok := readNote(path)
	if !ok {
		t.Fatal("readNote: no note")
	}
	if strings.ContainsRune(n.Why, 0x1b) || !strings.Contains(n.Why, `\x1b[2Jcleared`) {
		t.Errorf("Why = %q, want the escape quoted", n.Why)
	}
}

// The memStores the tests open with --store memtest://NAME/p, in this
// process (runKeytool): the commands' own code around a store (inStore,
// the mirror) without etcd.
var (
	memStoresMu  sync.Mutex
	memStores    = map[string]*memStore{}
	memStoreOnce sync.Once
)

// openedMemStore is a memStore as a command opens it: List for a
// temporary copy, Close.
type openedMemStore struct{ *memStore }

func (s openedMemStore) List(context.Context) (StoreListing, error) {
	return StoreListing{Entries: slices.Clone(s.now())}, nil
}
func (s openedMemStore) Close() error { return nil }

// memStoreURL is the --store URL of st for the commands the test runs.
func memStoreURL(t *testing.T, st *memStore) string {
	t.Helper()
	memStoreOnce.Do(func() {
		RegisterStore(StoreBackend{Schemes: []string{"memtest"}, Flags: func(*pflag.FlagSet) StoreOpener {
			return func(_ context.Context, u *url.URL) (Store, error) {
				memStoresMu.Lock()
				defer memStoresMu.Unlock()
				st := memStores[u.Host]
				if st == nil {
					return nil, fmt.Errorf("memtest: no store %s", u.Host)
				}
				return openedMemStore{st}, nil
			}
		}})
	})
	memStoresMu.Lock()
	defer memStoresMu.Unlock()
	name := fmt.Sprintf("s%d", len(memStores)+1)
	memStores[name] = st
	t.Cleanup(func() {
		memStoresMu.Lock()
		defer memStoresMu.Unlock()
		delete(memStores, name)
	})
	return "memtest://" + name + "/p"
}

// TestRemoveUnheldSaysSoOnlyOnceWritten: authorize --remove of an entry
// the store's copy does not hold (over the bound) says "Removed" only
// once the store's transaction is written: when the command fails after
// (here another entry of the name, in a file keytool cannot rewrite),
// nothing is written, and the user must not read that it was removed.
// On the mirror in the home and on a temporary copy. (Before, the line
// was in the command's output, printed with its error.)
func TestRemoveUnheldSaysSoOnlyOnceWritten(t *testing.T) {
	const good = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbLnqDqQXyUUyIybmSqSAripWcUJZvGTmZJsS8P0D6s x\n"
	for _, mirrored := range []bool{true, false} {
		t.Run(fmt.Sprint("mirror=", mirrored), func(t *testing.T) {
			dir := t.TempDir()
			key := filepath.Join(dir, "alice.json")
			writePublicKey(t, key, nil)
			const bound = 4096
			st := newMemStore(
				StoreEntry{Kind: StoreAuthorized, Name: "alice.json", Value: append(readFile(t, key), bytes.Repeat([]byte(" "), bound)...)},
				StoreEntry{Kind: StoreAuthorized, Name: "alice.pub", Value: []byte(good + "ssh-ed25519 AAAAnot-base64 x\n")},
			)
			st.maxValue = bound
			h := filepath.Join(dir, "home")
			if mirrored {
				if err := os.Mkdir(h, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			u := memStoreURL(t, st)
			before := st.revision
			stdout, stderr, code := runKeytool(t, "", "-H", h, "authorize", "--store", u, "--remove", "alice")
			if code != 1 || strings.Contains(stdout+stderr, "Removed") || !strings.Contains(stderr, "alice.pub:2") {
				t.Errorf("authorize --remove alice: exit %d, want 1 naming alice.pub:2 and nothing removed\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			if st.revision != before || len(st.now()) != 2 {
				t.Fatalf("the store moved from revision %d to %d: %+v", before, st.revision, st.now())
			}

			// The file made one keytool can rewrite: both go, and it
			// says so.
			st.put(StoreAuthorized, "alice.pub", []byte(good))
			stdout, stderr, code = runKeytool(t, "", "-H", h, "authorize", "--store", u, "--remove", "alice")
			if code != 0 || !strings.Contains(stdout, "Removed "+u+"/authorized_keys/alice.json (") || !strings.Contains(stdout, `Removed "alice"`) {
				t.Errorf("authorize --remove alice: exit %d, want both removed, each said\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			if len(st.now()) != 0 {
				t.Errorf("the store holds %+v, want nothing", st.now())
			}
		})
	}
}
