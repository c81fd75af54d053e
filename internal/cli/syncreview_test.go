package cli

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// stepChecker is sync's standard output in a test: after each line sync
// prints (it prints one after each file it wrote or removed) it loads the
// home as a running server would, and records every step at which one of
// keys was admitted.
type stepChecker struct {
	t      *testing.T
	home   string
	keys   map[string]*jwk.Key
	steps  int
	failed []string
	out    bytes.Buffer
}

func (c *stepChecker) Write(p []byte) (int, error) {
	c.out.Write(p)
	c.steps++
	st := authkeys.Load(authkeys.HomeOptions(c.home))
	for name, k := range c.keys {
		if _, err := st.LookupKey(k, netip.MustParseAddr("127.0.0.1")); err == nil {
			c.failed = append(c.failed, fmt.Sprintf("after %q: %s admitted", bytes.TrimSpace(p), name))
		}
	}
	return len(p), nil
}

// TestSyncRewrittenRevocationsNeverLapse: revocations that move from one
// entry to another in one change of the store (r1 holding A and B split
// into r1 holding A and a new r2 holding B; or r1 and r2 swapping their
// keys) are in force in the store before and after it, but sync rewrote
// r1 before it wrote r2: a server reading the home in between admitted
// B (or A), which neither state of the store admits. (Found by review,
// 2026-12-05.)
func TestSyncRewrittenRevocationsNeverLapse(t *testing.T) {
	for _, tc := range []struct {
		name         string
		before, then map[string][]string // revocation entry: the keys it holds
	}{
		{"split", map[string][]string{"r1.json": {"A", "B"}}, map[string][]string{"r1.json": {"A"}, "r2.json": {"B"}}},
		{"swap", map[string][]string{"r1.json": {"A"}, "r2.json": {"B"}}, map[string][]string{"r1.json": {"B"}, "r2.json": {"A"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _, errOut := testSyncer(t, dir)
			keys := map[string]*jwk.Key{}
			var auth []StoreEntry
			for _, n := range []string{"A", "B"} {
				p := filepath.Join(dir, n+".json")
				keys[n] = writePublicKey(t, p, nil)
				auth = append(auth, StoreEntry{Kind: StoreAuthorized, Name: n + ".json", Value: readFile(t, p)})
			}
			state := func(revs map[string][]string) []StoreEntry {
				entries := append([]StoreEntry(nil), auth...)
				for name, held := range revs {
					var ks []*jwk.Key
					for _, n := range held {
						ks = append(ks, keys[n])
					}
					set, err := jwk.MarshalPublicSet(ks, jwk.JWK)
					if err != nil {
						t.Fatal(err)
					}
					entries = append(entries, StoreEntry{Kind: StoreRevoked, Name: name, Value: set})
				}
				return entries
			}
			if kept, err := s.mirror(state(tc.before), syncAt{}); err != nil || kept != 0 {
				t.Fatalf("mirror: kept %d, err %v\n%s", kept, err, errOut)
			}
			check := &stepChecker{t: t, home: string(s.home), keys: keys}
			s.c.stdout = check
			if kept, err := s.mirror(state(tc.then), syncAt{}); err != nil || kept != 0 {
				t.Fatalf("mirror: kept %d, err %v\n%s", kept, err, errOut)
			}
			if check.steps == 0 {
				t.Fatal("sync wrote nothing")
			}
			if len(check.failed) > 0 {
				t.Fatalf("a server reading the home while sync mirrored a change where both states revoke A and B admitted one:\n%v\nsync's steps:\n%s", check.failed, &check.out)
			}
			// Once done, both still refused, nothing of sync's left over.
			st := authkeys.Load(authkeys.HomeOptions(string(s.home)))
			for n, k := range keys {
				if _, err := st.LookupKey(k, netip.MustParseAddr("127.0.0.1")); err == nil {
					t.Fatalf("%s admitted once sync is done", n)
				}
			}
			if got := withoutLock(filesUnder(t, filepath.Join(string(s.home), "revoked_keys.d"))); len(got) != len(tc.then)+1 { // the .d itself
				t.Fatalf("revoked_keys.d holds %v", got)
			}
		})
	}
}

// TestSyncMovedPinNeverLapses: a pin moved from one entry to another in
// one change of the store pins its address in both states, but sync left
// the address pinned to nothing in between: a client reading the home
// then, under ask or accept-new, took the key the network gave it — an
// interceptor's, pinned for good beside the store's. Renamed
// (trusted_hosts/h1.json now h2.json), h1's file was removed before h2's
// was written; swapped (h1 and h2 exchanging their addresses), h1 was
// rewritten before h2. A pin's removal loosens what a client takes: it
// goes last, and a pin file of sync's rewritten is held as it was until
// the end, as a revocation file is. (Found by review, 2026-12-05.)
func TestSyncMovedPinNeverLapses(t *testing.T) {
	for _, tc := range []struct {
		name         string
		before, then map[string]int // entry: the host (0 or 1) it pins
	}{
		{"renamed", map[string]int{"h1.json": 0}, map[string]int{"h2.json": 0}},
		{"swapped", map[string]int{"h1.json": 0, "h2.json": 1}, map[string]int{"h1.json": 1, "h2.json": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _, errOut := testSyncer(t, dir)
			addrs := []string{"db.example:5432", "cache.example:6379"}
			var hosts []*jwk.Key
			var pins [][]byte
			for i, addr := range addrs {
				p := filepath.Join(dir, fmt.Sprintf("host%d.json", i))
				hosts = append(hosts, writePublicKey(t, p, map[string]string{"address": addr}))
				pins = append(pins, readFile(t, p))
			}
			attacker := writePublicKey(t, filepath.Join(dir, "attacker.json"), nil)
			state := func(m map[string]int) (entries []StoreEntry) {
				for name, i := range m {
					entries = append(entries, StoreEntry{Kind: StoreTrusted, Name: name, Value: pins[i]})
				}
				return entries
			}
			if kept, err := s.mirror(state(tc.before), syncAt{}); err != nil || kept != 0 {
				t.Fatalf("mirror: kept %d, err %v\n%s", kept, err, errOut)
			}
			var failed []string
			steps := 0
			s.c.stdout = writerFunc(func(p []byte) (int, error) {
				steps++
				st := knownhosts.Load(knownhosts.HomeOptions(string(s.home)))
				for i, addr := range addrs {
					if i > 0 && len(tc.before) == 1 {
						continue // pinned in neither state
					}
					if d := st.Decide(addr, attacker.SPKIHash()); d.Verdict != knownhosts.Changed {
						failed = append(failed, fmt.Sprintf("after %q: another key for %s is %v, not changed", bytes.TrimSpace(p), addr, d.Verdict))
					}
					if d := st.Decide(addr, hosts[i].SPKIHash()); d.Verdict != knownhosts.Pinned {
						failed = append(failed, fmt.Sprintf("after %q: the key of %s is %v", bytes.TrimSpace(p), addr, d.Verdict))
					}
				}
				return len(p), nil
			})
			if kept, err := s.mirror(state(tc.then), syncAt{}); err != nil || kept != 0 {
				t.Fatalf("mirror: kept %d, err %v\n%s", kept, err, errOut)
			}
			if steps != 2 {
				t.Fatalf("sync took %d steps, want 2", steps)
			}
			if len(failed) > 0 {
				t.Fatalf("a client reading the home while sync mirrored a moved pin found its address unpinned:\n%v", failed)
			}
			want := []string{"."}
			for name := range tc.then {
				want = append(want, name)
			}
			slices.Sort(want)
			if got := withoutLock(filesUnder(t, filepath.Join(string(s.home), "trusted_hosts.d"))); !slices.Equal(got, want) {
				t.Fatalf("trusted_hosts.d holds %v, want %v", got, want)
			}
		})
	}
}

// withoutLock is files without the lock file keytool's writers of a
// directory take (keyDirEntries).
func withoutLock(files []string) []string {
	return slices.DeleteFunc(files, func(f string) bool { return f == ".keytool.lock" })
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestSyncKeepsOthersPins: a pin file sync did not write stays, even when
// it holds the very bytes of an entry that then goes from the store, as a
// revocation file does: its removal leaves the address pinned to nothing,
// which a client under ask or accept-new takes any key for. Before, sync
// adopted it (the same bytes: sync's from then on) and removed it with
// the entry. (Found by review, 2026-12-05.)
func TestSyncKeepsOthersPins(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := testSyncer(t, dir)
	host := filepath.Join(dir, "host.json")
	writePublicKey(t, host, map[string]string{"address": "db.example:5432"})
	mine := filepath.Join(string(s.home), "trusted_hosts.d", "db.example_5432.json")
	if err := os.MkdirAll(filepath.Dir(mine), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mine, readFile(t, host), 0o644); err != nil {
		t.Fatal(err)
	}
	if kept, err := s.mirror([]StoreEntry{{Kind: StoreTrusted, Name: "db.example_5432.json", Value: readFile(t, host)}}, syncAt{}); err != nil || kept != 0 {
		t.Fatalf("mirror: kept %d, err %v", kept, err)
	}
	if kept, err := s.mirror(nil, syncAt{}); err != nil || kept != 0 {
		t.Fatalf("mirror: kept %d, err %v", kept, err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Fatalf("the administrator's pin was removed: %v", err)
	}
}

// pinFeed is a feed of pins as the etcd Source hands the stores reading
// the store their entries: a set, a value over the bound rejected.
type pinFeed struct{ set *keydir.FeedSet }

func (f pinFeed) Name() string                         { return "etcd:/p/trusted_hosts" }
func (f pinFeed) View() keydir.FeedView                { return keydir.FeedView{Set: f.set} }
func (f pinFeed) Subscribe() (<-chan struct{}, func()) { return nil, func() {} }

// TestSyncPinNotMirroredAsItIsNeverUnpins: a pin entry sync cannot write
// as it is — a value over the store's bound, a name that is no file
// name, a name the home's loader skips (NAME.tmp), a private key — is
// what the stores reading the store take it for: a pin (NAME.tmp, the
// private key's public part) or an input skipped, which refuses every
// host no pin holds (knownhosts.Skipped: skipped trust never widens
// trust). Before, sync wrote nothing for it, and the home left its
// address — every address, for a skipped input — unpinned, which a
// client under ask or accept-new takes any key for. (Found by review,
// 2026-12-05.)
func TestSyncPinNotMirroredAsItIsNeverUnpins(t *testing.T) {
	const bound = 4096
	dir := t.TempDir()
	host := writePublicKey(t, filepath.Join(dir, "host.json"), map[string]string{"address": "db.example:5432"})
	other := writePublicKey(t, filepath.Join(dir, "other.json"), nil)
	pin := readFile(t, filepath.Join(dir, "host.json"))
	priv, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	priv.Attrs = jwk.Attributes{}
	priv.Attrs.SetString("address", "db.example:5432")
	privPin, err := priv.MarshalPrivate(jwk.JWK)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		entry StoreEntry
	}{
		{"oversized", StoreEntry{Kind: StoreTrusted, Name: "db.json", Value: append(slices.Clone(pin), bytes.Repeat([]byte(" "), bound)...)}},
		{"no file name", StoreEntry{Kind: StoreTrusted, Name: "db\njson", Value: pin}},
		{"skipped name", StoreEntry{Kind: StoreTrusted, Name: "db.tmp", Value: pin}},
		{"private key", StoreEntry{Kind: StoreTrusted, Name: "db.json", Value: privPin}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _, errOut := testSyncer(t, t.TempDir())
			s.maxValue = bound
			if _, err := s.mirror([]StoreEntry{tc.entry}, syncAt{}); err != nil {
				t.Fatal(err)
			}
			set := keydir.NewFeedSet()
			if len(tc.entry.Value) > bound {
				set = set.Reject(tc.entry.Name, errors.New("over the bound"))
			} else {
				set = set.Put(tc.entry.Name, tc.entry.Value)
			}
			store := knownhosts.Load(knownhosts.Options{Feeds: []keydir.Feed{pinFeed{set}}, NoStrictModes: true})
			home := knownhosts.Load(knownhosts.HomeOptions(string(s.home)))
			for _, p := range []struct {
				addr string
				key  *jwk.Key
			}{{"db.example:5432", host}, {"db.example:5432", other}, {"web.example:443", other}} {
				want := store.Decide(p.addr, p.key.SPKIHash()).Verdict
				got := home.Decide(p.addr, p.key.SPKIHash()).Verdict
				if got == knownhosts.Unknown && want != knownhosts.Unknown || got == knownhosts.Pinned && want != knownhosts.Pinned {
					t.Errorf("%s, %s's key: the home says %v, the stores reading the store %v\n%s", p.addr, p.key.Fingerprint(), got, want, errOut)
				}
			}
		})
	}
}

// TestSyncNeverWritesOverAFileMadeMeanwhile: a file another writer
// creates between sync's look at its name (none there) and sync's write —
// keytool revoke on the home, run as the fleet's revocation of the same
// key reaches it — stays that writer's: sync never replaces it, and never
// removes it once the store's entry goes. Before, sync renamed its file
// over it, took it for its own, and removed it with the entry: the key the
// administrator revoked on the home, told it was, admitted again.
// (Found by review, 2026-12-05.)
func TestSyncNeverWritesOverAFileMadeMeanwhile(t *testing.T) {
	dir := t.TempDir()
	s, _, errOut := testSyncer(t, dir)
	keyFile := filepath.Join(dir, "k.json")
	k := writePublicKey(t, keyFile, nil)
	// The home authorizes k by hand; the fleet revokes it under the name
	// keytool revoke gives its file, with a comment of its own.
	if _, stderr, code := runKeytool(t, "", "-H", string(s.home), "authorize", keyFile, "--name", "k"); code != 0 {
		t.Fatalf("authorize: %s", stderr)
	}
	name := strings.ReplaceAll(k.KeyID(), ":", "") + ".json"
	fleet := k.PublicKey()
	fleet.Attrs = jwk.Attributes{}
	fleet.Attrs.SetString("comment", "revoked by the fleet")
	value, err := fleet.MarshalPublic(jwk.JWK)
	if err != nil {
		t.Fatal(err)
	}
	var revoked bool
	syncWriting = func(path string) {
		if filepath.Base(path) == name && !revoked {
			revoked = true
			if _, stderr, code := runKeytool(t, "", "-H", string(s.home), "revoke", keyFile); code != 0 {
				t.Errorf("revoke: %s", stderr)
			}
		}
	}
	t.Cleanup(func() { syncWriting = nil })
	if _, err := s.mirror([]StoreEntry{{Kind: StoreRevoked, Name: name, Value: value}}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	if !revoked {
		t.Fatal("the administrator's revoke did not run")
	}
	syncWriting = nil
	// The fleet lifts its revocation: the administrator's stays.
	if _, err := s.mirror(nil, syncAt{}); err != nil {
		t.Fatal(err)
	}
	st := authkeys.Load(authkeys.HomeOptions(string(s.home)))
	if _, err := st.LookupKey(k, netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Fatalf("the key the administrator revoked on the home is admitted once the fleet's revocation of it went:\n%s", errOut)
	}
}

// TestSyncRewriteWaitsForAnEdit: an administrator's edit of a file of
// sync's (authorize --remove bob, in the file the fleet's entry wrote,
// holding bob and carol) made between sync's look at that file and its
// rewrite (the entry changed: dave added) is not lost. sync looks and
// writes under the directory's writers' lock, which keytool's edits take
// (keydir.LockWriters, EditFile): the edit comes before sync's look, and
// sync leaves the changed file as it is, or after its write, and removes
// bob from it. Before, sync renamed the store's bytes over the edited
// file: bob, whom the administrator was told removed, was authorized
// again. (Found by review, 2026-12-05.)
func TestSyncRewriteWaitsForAnEdit(t *testing.T) {
	dir := t.TempDir()
	s, _, errOut := testSyncer(t, dir)
	var keys []*jwk.Key
	for _, n := range []string{"bob", "carol", "dave"} {
		keys = append(keys, writePublicKey(t, filepath.Join(dir, n+".json"), map[string]string{"name": n}))
	}
	set := func(ks ...*jwk.Key) []byte {
		b, err := jwk.MarshalPublicSet(ks, jwk.JWK)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := s.mirror([]StoreEntry{{Kind: StoreAuthorized, Name: "team.json", Value: set(keys[0], keys[1])}}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	var ran bool
	syncWriting = func(path string) {
		if filepath.Base(path) != "team.json" || ran {
			return
		}
		ran = true
		go func() {
			_, _, code := runKeytool(t, "", "-H", string(s.home), "authorize", "--remove", "bob")
			done <- code
		}()
		select { // done, or waiting for sync's lock
		case code := <-done:
			done <- code
		case <-time.After(500 * time.Millisecond):
		}
	}
	t.Cleanup(func() { syncWriting = nil })
	if _, err := s.mirror([]StoreEntry{{Kind: StoreAuthorized, Name: "team.json", Value: set(keys[0], keys[1], keys[2])}}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("authorize --remove bob: exit %d", code)
		}
	case <-time.After(time.Minute):
		t.Fatal("authorize --remove bob still waits after sync let go")
	}
	st := authkeys.Load(authkeys.HomeOptions(string(s.home)))
	if _, err := st.LookupKey(keys[0], netip.MustParseAddr("127.0.0.1")); err == nil {
		t.Fatalf("bob, whom the administrator removed as sync rewrote the file, is authorized:\n%s", errOut)
	}
}
