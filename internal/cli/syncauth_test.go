package cli

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/jwk"
)

// TestSyncKeyInTwoFilesNeverWidens: a key held by two authorization
// entries takes the rights of the first file (in name order) that holds
// it, the other shadowed (authkeys.SharedKey). A change of the store that
// rewrites or removes several such files was mirrored one file after the
// other in name order, vanished files first: between two writes the first
// holder of the key could be an entry in effect in neither state — the
// shadowed one, or a new one before the new first — and a server reading
// the home then admitted the key from addresses, or under a name, that
// neither state of the store does. Removed: a (K from 10/8) removed while
// b (K from anywhere, shadowed) still waits for its rewrite (K from
// 192.168/16): K admitted from anywhere. Crossed: no order of whole files
// is safe; the keys whose first holder changes are held revoked until
// every file is written. (Found by review, 2026-12-05, second pass.)
func TestSyncKeyInTwoFilesNeverWidens(t *testing.T) {
	const (
		ten = "10.0.0.0/8"
		lan = "192.168.0.0/16"
		any = ""
	)
	for _, tc := range []struct {
		name         string
		before, then holds
		byHand       []string // sync's files removed by hand in between
	}{
		{"removed", holds{"a.json": {{"K", ten}}, "b.json": {{"K", any}}}, holds{"b.json": {{"K", lan}}}, nil},
		{"rewritten", holds{"a.json": {{"K", ten}, {"L", any}}, "b.json": {{"K", any}}}, holds{"a.json": {{"L", any}}, "b.json": {{"K", lan}}}, nil},
		{"two removed", holds{"a.json": {{"K", ten}}, "b.json": {{"K", any}}, "u.json": {{"K", lan}}}, holds{"u.json": {{"K", lan}}}, nil},
		{"added first", holds{"b.json": {{"K", ten}}, "c.json": {{"K", any}}}, holds{"a.json": {{"K", lan}}, "b.json": {{"K", ten}, {"L", any}}, "c.json": {{"K", any}}}, nil},
		// An entry the stores skip (its "name" is no string), whose key
		// they then refuse while it is there.
		{"entry skipped", holds{"a.json": {{"K", ten}, {"L", any}}, "b.json": {{"K", any}}}, holds{"a.json": {{"K", badName}, {"L", any}}, "b.json": {{"K", lan}}}, nil},
		// A file of sync's removed by hand is written again: a step too.
		{"written again", holds{"a.json": {{"K", ten}}, "b.json": {{"K", any}}, "c.json": {{"K", lan}}}, holds{"a.json": {{"K", ten}}, "c.json": {{"K", lan}}}, []string{"a.json"}},
		{"crossed", holds{"a.json": {{"K", ten}}, "b.json": {{"K", any}, {"L", ten}}}, holds{"a.json": {{"L", lan}}, "b.json": {{"K", lan}, {"L", any}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) { checkAuthChange(t, tc.before, tc.then, tc.byHand...) })
	}
}

// TestSyncKeyInTwoFilesNeverWidensAnyChange is TestSyncKeyInTwoFilesNeverWidens
// for changes drawn at random among four files and two keys.
func TestSyncKeyInTwoFilesNeverWidensAnyChange(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 12))
	n := 60
	if testing.Short() {
		n = 15
	}
	state := func() holds {
		h := holds{}
		for _, f := range []string{"a.json", "b.json", "c.json", "d.json"} {
			for _, k := range []string{"K", "L"} {
				if r.IntN(3) == 0 {
					h[f] = append(h[f], [2]string{k, []string{"", "10.0.0.0/8", "192.168.0.0/16"}[r.IntN(3)]})
				}
			}
		}
		return h
	}
	for i := range n {
		before, then := state(), state()
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkAuthChange(t, before, then) })
	}
}

// badName, in place of a "from" in holds, is an entry whose "name" is
// no string: the stores skip it, and refuse its key (keydir.Problem.Key).
const badName = "bad name"

// holds is a state of authorized_keys/: file name → the keys it holds (by
// letter) and their "from" ("": any address).
type holds map[string][][2]string

// checkAuthChange mirrors before, then then, and fails if a server
// reading the home at any moment of the second admitted a key from an
// address, or under a name, that neither state does.
func checkAuthChange(t *testing.T, before0, then holds, byHand ...string) {
	t.Helper()
	dir := t.TempDir()
	s, _, errOut := testSyncer(t, dir)
	keys := map[string]*jwk.Key{}
	for _, n := range []string{"K", "L"} {
		k, err := jwk.Generate(jwk.EC256)
		if err != nil {
			t.Fatal(err)
		}
		keys[n] = k.PublicKey()
	}
	state := func(h holds) (entries []StoreEntry) {
		for name, held := range h {
			var ks []*jwk.Key
			for _, kf := range held {
				k := keys[kf[0]].PublicKey()
				k.Attrs = jwk.Attributes{}
				switch kf[1] {
				case "":
				case badName:
					k.Attrs[jwk.AttrName] = []byte("5")
				default:
					k.Attrs.SetString(jwk.AttrFrom, kf[1])
				}
				ks = append(ks, k)
			}
			set, err := jwk.MarshalPublicSet(ks, jwk.JWK)
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, StoreEntry{Kind: StoreAuthorized, Name: name, Value: set})
		}
		return entries
	}
	addrs := []string{"10.1.2.3", "192.168.1.2", "172.16.1.2"}
	// What the home admits: for each key and address, the name of
	// the entry that admits it ("" refused).
	admits := func(h home.Dir) map[string]string {
		st := authkeys.Load(authkeys.HomeOptions(string(h)))
		got := map[string]string{}
		for n, k := range keys {
			for _, a := range addrs {
				if e, err := st.LookupKey(k, netip.MustParseAddr(a)); err == nil {
					got[n+" from "+a] = e.Name
				}
			}
		}
		return got
	}
	// The state after, as a home mirrored afresh holds it.
	fresh, _, _ := testSyncer(t, t.TempDir())
	if _, err := fresh.mirror(state(then), syncAt{}); err != nil {
		t.Fatal(err)
	}
	after := admits(fresh.home)
	if kept, err := s.mirror(state(before0), syncAt{}); err != nil || kept != 0 {
		t.Fatalf("mirror: kept %d, err %v\n%s", kept, err, errOut)
	}
	for _, name := range byHand {
		if err := os.Remove(filepath.Join(string(s.home), StoreAuthorized+".d", name)); err != nil {
			t.Fatal(err)
		}
	}
	before := admits(s.home)
	var failed []string
	check := func(step string) {
		for what, name := range admits(s.home) {
			if before[what] != name && after[what] != name {
				failed = append(failed, fmt.Sprintf("after %q: %s admitted as %q (before: %q, after: %q)", step, what, name, before[what], after[what]))
			}
		}
	}
	var steps bytes.Buffer
	s.c.stdout = writerFunc(func(p []byte) (int, error) {
		steps.Write(p)
		check(string(bytes.TrimSpace(p)))
		return len(p), nil
	})
	syncWriting = func(path string) { check("before writing " + filepath.Base(path)) }
	t.Cleanup(func() { syncWriting = nil })
	if kept, err := s.mirror(state(then), syncAt{}); err != nil || kept != 0 {
		t.Fatalf("mirror: kept %d, err %v\n%s", kept, err, errOut)
	}
	check("done")
	if len(failed) > 0 {
		t.Fatalf("a server reading the home while sync mirrored the change admitted a key with rights neither state gives it:\n%v\nsync's steps:\n%s", failed, &steps)
	}
	if got := admits(s.home); fmt.Sprint(got) != fmt.Sprint(after) {
		t.Fatalf("once done the home admits %v, want %v", got, after)
	}
	var want []string
	for _, kind := range StoreKinds {
		want = append(want, kind+".d")
	}
	for name := range then {
		want = append(want, StoreAuthorized+".d/"+name)
	}
	slices.Sort(want)
	if got := withoutLock(filesUnder(t, string(s.home))); !slices.Equal(withoutSyncs(got), want) {
		t.Fatalf("home holds %v, want %v", got, want)
	}
}

// withoutSyncs is the files of a home but for the root, sync's manifest,
// journal and lock, and the .d directories' lock files.
func withoutSyncs(files []string) (out []string) {
	for _, f := range files {
		switch b := filepath.Base(f); {
		case f == ".", b == ".keytool.lock", b == ".keytool-sync.json", b == ".keytool-sync.log", b == ".keytool-sync.lock":
		default:
			out = append(out, f)
		}
	}
	return out
}
