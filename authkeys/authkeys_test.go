package authkeys

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

func key(tb testing.TB, n int) *jwk.Key { return keydirtest.Key(tb, n) }

func TestLookup(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	d := opts.Dirs[0]
	alice, bob, carol, dave, eve, frank := key(t, 1), key(t, 2), key(t, 3), key(t, 4), key(t, 5), key(t, 6)
	keydirtest.Write(t, filepath.Join(d, "alice.json"), keydirtest.JWK(t, keydirtest.WithAttrs(alice, "comment", "alice@laptop")))
	keydirtest.Write(t, filepath.Join(d, "team.pem"), keydirtest.PEM(t, keydirtest.WithAttrs(bob, "name", "bob"), carol))
	keydirtest.Write(t, filepath.Join(d, "old.json"), keydirtest.JWK(t, keydirtest.WithAttrs(dave, "expires", "2001-01-01T00:00:00Z")))
	keydirtest.Write(t, filepath.Join(d, "future.json"), keydirtest.JWK(t, keydirtest.WithAttrs(frank, "expires", "2999-01-01T00:00:00Z")))
	fromKey := keydirtest.WithAttrs(eve, "comment", "eve")
	fromKey.Attrs.SetList("from", []string{"10.0.0.0/8", "2001:db8::/32"})
	keydirtest.Write(t, filepath.Join(home, "authorized_keys.json"), keydirtest.JWK(t, fromKey))
	s := Load(opts)
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	remote := netip.MustParseAddr("192.0.2.1")
	for _, c := range []struct {
		k    *jwk.Key
		from string
		name string
		err  any
	}{
		{alice, "", "alice", nil},                           // file name without extension
		{bob, "", "bob", nil},                               // the name attribute
		{carol, "", "team", nil},                            // second key of the same file
		{dave, "", "", new(*ExpiredError)},                  // expired
		{frank, "", "future", nil},                          // not yet expired
		{eve, "10.1.2.3", "eve", nil},                       // single file: the comment is the name
		{eve, "::ffff:10.1.2.3", "eve", nil},                // v4-mapped
		{eve, "2001:db8::1", "eve", nil},                    // v6
		{eve, "192.0.2.1", "", new(*SourceNotAllowedError)}, // outside "from"
		{eve, "", "", new(*SourceNotAllowedError)},          // unknown remote
		{key(t, 99), "", "", new(*NotAuthorizedError)},
	} {
		r := remote
		if c.from != "" {
			r = netip.MustParseAddr(c.from)
		} else if c.k == eve {
			r = netip.Addr{}
		}
		e, err := s.LookupKey(c.k, r)
		if c.err == nil {
			if err != nil || e.Name != c.name || e.Fingerprint != c.k.Fingerprint() {
				t.Errorf("%s from %s: %+v, %v; want name %q", c.k.Fingerprint(), c.from, e, err, c.name)
			}
			continue
		}
		if !errors.As(err, c.err) {
			t.Errorf("%s: got %v, want %T", c.k.Fingerprint(), err, c.err)
			continue
		}
		if !strings.Contains(err.Error(), c.k.Fingerprint()) {
			t.Errorf("error does not name the fingerprint: %v", err)
		}
		t.Logf("%v", err)
	}
	// Library errors carry data in one line, prefixed with the package,
	// and no command: advice is the command line's.
	_, err := s.LookupKey(key(t, 99), remote)
	if msg := err.Error(); !strings.HasPrefix(msg, "authkeys: ") || strings.Contains(msg, "\n") || strings.Contains(msg, "keytool ") {
		t.Errorf("NotAuthorized error %q: want one line, prefixed, without a command", msg)
	}
	if e, _ := s.LookupKey(alice, remote); e.Comment != "alice@laptop" || e.File != filepath.Join(d, "alice.json") {
		t.Errorf("entry %+v", e)
	}

	// Revocation comes first: a revoked key that is also expired and
	// authorized is reported revoked.
	keydirtest.Write(t, filepath.Join(home, "revoked_keys.d", "x.json"), keydirtest.JWK(t, dave))
	s.Reload()
	var re *RevokedError
	if _, err := s.LookupKey(dave, remote); !errors.As(err, &re) || re.File != filepath.Join(home, "revoked_keys.d", "x.json") {
		t.Fatalf("got %v", err)
	}
	if _, err := s.LookupKey(alice, remote); err != nil {
		t.Fatal(err)
	}
}

func TestRevocationUnreadableRefusesEveryone(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	a := key(t, 1)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "a.json"), keydirtest.JWK(t, a))
	keydirtest.Write(t, filepath.Join(home, "revoked_keys.pem"), []byte("-----BEGIN PUBLIC KEY-----\ngarbage\n"))
	s := Load(opts)
	_, err := s.LookupKey(a, netip.Addr{})
	var re *RevokedError
	if !errors.As(err, &re) || re.Err == nil || !strings.Contains(err.Error(), "revoked_keys.pem") {
		t.Fatalf("got %v", err)
	}
	t.Log(err)
	if os.Geteuid() != 0 {
		keydirtest.Write(t, filepath.Join(home, "revoked_keys.pem"), keydirtest.PEM(t, key(t, 2)))
		os.Chmod(filepath.Join(home, "revoked_keys.pem"), 0)
		s.Reload()
		if _, err := s.LookupKey(a, netip.Addr{}); !errors.As(err, &re) || !errors.Is(err, os.ErrPermission) {
			t.Fatalf("permission denied: got %v", err)
		}
	}
	os.Remove(filepath.Join(home, "revoked_keys.pem"))
	s.Reload()
	if _, err := s.LookupKey(a, netip.Addr{}); err != nil {
		t.Fatalf("after the fix: %v", err)
	}
}

func TestLookupAllocatesNothing(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	a := keydirtest.WithAttrs(key(t, 1), "expires", "2999-01-01T00:00:00Z")
	a.Attrs.SetList("from", []string{"10.0.0.0/8"})
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "a.json"), keydirtest.JWK(t, a))
	s := Load(opts)
	sum, remote := a.SPKIHash(), netip.MustParseAddr("10.9.9.9")
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := s.Lookup(sum, remote); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
}

func TestAdd(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	s := Load(opts)
	priv, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	withAttrs := keydirtest.WithAttrs(priv, "comment", "ci runner")
	e, err := s.Add(withAttrs, "ci", AddNew)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(opts.Dirs[0], "ci.json")
	if e.Name != "ci" || e.Comment != "ci runner" || e.File != path {
		t.Fatalf("entry %+v", e)
	}
	data, _ := os.ReadFile(path)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 || strings.Contains(string(data), `"d"`) {
		t.Fatalf("mode %v, content %s", fi.Mode(), data)
	}
	if _, err := s.LookupKey(priv, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	// Same key, same name: nothing to do.
	if _, err := s.Add(priv, "ci", AddNew); err != nil {
		t.Fatal(err)
	}
	// Same key, other name.
	var ae *AlreadyAuthorizedError
	if _, err := s.Add(priv, "ci2", AddNew); !errors.As(err, &ae) || ae.Entry.Name != "ci" {
		t.Fatalf("got %v", err)
	}
	// Other key, same name: never silently replaced.
	other := key(t, 7)
	var ne *NameExistsError
	if _, err := s.Add(other, "ci", AddNew); !errors.As(err, &ne) || ne.Fingerprint != priv.Fingerprint() {
		t.Fatalf("got %v", err)
	}
	if _, err := s.LookupKey(other, netip.Addr{}); err == nil {
		t.Fatal("the refused key was added")
	}
	if _, err := s.Add(other, "ci", Replace); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupKey(priv, netip.Addr{}); err == nil {
		t.Fatal("overwrite kept the old key")
	}
	// Hostile names write nothing anywhere.
	for _, name := range []string{"../evil", "a/b", ".hidden", "..", "x\ny", "x\x00", "x\x1b[31m", ""} {
		if _, err := s.Add(key(t, 8), name, AddNew); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	entries, _ := os.ReadDir(opts.Dirs[0])
	entries = slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == ".keytool.lock" }) // the writers' lock
	top, _ := os.ReadDir(home)
	if len(entries) != 1 || len(top) != 1 {
		t.Fatalf("stray files: %v %v", entries, top)
	}
	// A revoked key cannot be added.
	keydirtest.Write(t, filepath.Join(opts.RevokedDirs[0], "r.json"), keydirtest.JWK(t, key(t, 9)))
	var re *RevokedError
	if _, err := s.Add(key(t, 9), "r", AddNew); !errors.As(err, &re) {
		t.Fatalf("got %v", err)
	}
}

func TestRemove(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	a, b, c := key(t, 1), key(t, 2), key(t, 3)
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "alice.json"), keydirtest.JWK(t, a))
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "team.json"), keydirtest.JWK(t, b, c))
	s := Load(opts)
	got, err := s.Remove("alice")
	if err != nil || len(got) != 1 || got[0].Fingerprint != a.Fingerprint() {
		t.Fatal(got, err)
	}
	if _, err := os.Stat(filepath.Join(opts.Dirs[0], "alice.json")); !os.IsNotExist(err) {
		t.Fatal("file not removed")
	}
	// By fingerprint, in its several forms, from a file with other keys.
	for _, fp := range []string{b.Fingerprint(), b.KeyID()} {
		keydirtest.Write(t, filepath.Join(opts.Dirs[0], "team.json"), keydirtest.JWK(t, b, c))
		got, err = s.Remove(fp)
		if err != nil || len(got) != 1 || got[0].Fingerprint != b.Fingerprint() {
			t.Fatal(fp, got, err)
		}
		if _, err := s.LookupKey(c, netip.Addr{}); err != nil {
			t.Fatalf("the other key of the file went too: %v", err)
		}
		if _, err := s.LookupKey(b, netip.Addr{}); err == nil {
			t.Fatal("not removed")
		}
	}
	if _, err := s.Remove(c.Thumbprint()); err != nil {
		t.Fatalf("by thumbprint: %v", err)
	}
	if len(s.Entries()) != 0 {
		t.Fatal(s.Entries())
	}
	if _, err := s.Remove("nobody"); err == nil {
		t.Fatal("removing nothing must fail")
	}
}

func TestConcurrentAdders(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			s := Load(opts)
			for i := range 10 {
				if _, err := s.Add(key(t, w*100+i), fmt.Sprintf("w%d-%d", w, i), AddNew); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	s := Load(opts)
	if n := len(s.Entries()); n != 20 {
		t.Fatalf("%d entries, want 20", n)
	}
}

// TestConcurrentProcesses runs two copies of this test binary adding keys
// to the same directory at once.
func TestConcurrentProcesses(t *testing.T) {
	if home := os.Getenv("KEYTOOL_TEST_ADD_HOME"); home != "" {
		w, _ := strconv.Atoi(os.Getenv("KEYTOOL_TEST_ADD_WORKER"))
		s := Load(HomeOptions(home))
		for i := range 15 {
			if _, err := s.Add(key(t, w*100+i), fmt.Sprintf("p%d-%d", w, i), AddNew); err != nil {
				t.Fatal(err)
			}
			// Both also race for one shared name with the same key.
			if _, err := s.Add(key(t, 999), "shared", AddNew); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	home := t.TempDir()
	var cmds []*exec.Cmd
	for w := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentProcesses$")
		cmd.Env = append(os.Environ(), "KEYTOOL_TEST_ADD_HOME="+home, "KEYTOOL_TEST_ADD_WORKER="+strconv.Itoa(w))
		cmds = append(cmds, cmd)
	}
	var wg sync.WaitGroup
	for _, cmd := range cmds {
		wg.Go(func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%v\n%s", err, out)
			}
		})
	}
	wg.Wait()
	s := Load(HomeOptions(home))
	if n := len(s.Entries()); n != 31 {
		t.Fatalf("%d entries, want 31", n)
	}
}

func TestOpenFollowsChanges(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	opts.Debounce = 20 * time.Millisecond
	before := runtime.NumGoroutine()
	s := Open(context.Background(), opts)
	ch, stop := s.Subscribe()
	defer stop()
	a := key(t, 1)
	start := time.Now()
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "a.json"), keydirtest.JWK(t, a))
	for {
		if _, err := s.LookupKey(a, netip.Addr{}); err == nil {
			break
		}
		select {
		case <-ch:
		case <-time.After(10 * time.Second): // a bound on a hang
			t.Fatal("not authorized within 10s")
		}
	}
	t.Logf("authorized %v after the file was written", time.Since(start).Round(time.Millisecond))
	s.Close()
	deadline := time.Now().Add(10 * time.Second) // a bound on a hang: leaked goroutines never end
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("%d goroutines before Open, %d after Close", before, n)
	}
}

// Revoke writes to revoked_keys.d and the key is refused at once, even
// though it stays authorized; Unrevoke lifts it.
func TestRevokeAndUnrevoke(t *testing.T) {
	home := t.TempDir()
	s := Load(HomeOptions(home))
	k := keydirtest.Key(t, 1)
	if _, err := s.Add(k, "alice", AddNew); err != nil {
		t.Fatal(err)
	}
	file, err := s.Revoke(k)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(file) != filepath.Join(home, "revoked_keys.d") {
		t.Errorf("revoked into %s", file)
	}
	var re *RevokedError
	if _, err := s.LookupKey(k, netip.Addr{}); !errors.As(err, &re) || re.File != file {
		t.Fatalf("after Revoke: %v", err)
	}
	if again, err := s.Revoke(k); err != nil || again != file {
		t.Errorf("second Revoke = %s, %v", again, err)
	}
	if _, err := s.Unrevoke("SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); err == nil {
		t.Error("Unrevoke of an unknown fingerprint succeeded")
	}
	gone, err := s.Unrevoke(k.KeyID())
	if err != nil || len(gone) != 1 || gone[0].SPKIHash != k.SPKIHash() {
		t.Fatalf("Unrevoke = %v, %v", gone, err)
	}
	if _, err := s.LookupKey(k, netip.Addr{}); err != nil {
		t.Errorf("after Unrevoke: %v", err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("revocation file still there: %v", err)
	}
}

// TestFromIgnoresTheZone: an IPv6 link-local client address carries its
// zone (fe80::1%eth0, as net.TCPAddr gives it); a "from" network carries
// none, and netip.Prefix.Contains is false for any zoned address. The
// address is compared without its zone, as OpenSSH's from= compares the
// address: fe80::/10 admits fe80::1%eth0, and the zone widens nothing.
func TestFromIgnoresTheZone(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	k := keydirtest.WithAttrs(key(t, 1), "comment", "linklocal")
	k.Attrs.SetList("from", []string{"fe80::/10", "10.0.0.0/8"})
	keydirtest.Write(t, filepath.Join(home, "authorized_keys.json"), keydirtest.JWK(t, k))
	s := Load(opts)
	if p := s.Problems(); len(p) != 0 {
		t.Fatal(p)
	}
	for addr, want := range map[string]Verdict{
		"fe80::1%eth0":     Authorized,
		"fe80::1%7":        Authorized,
		"fe80::1":          Authorized,
		"fe90::1%eth0":     Authorized, // fe80::/10 spans fe80–febf
		"fec0::1%eth0":     WrongNetwork,
		"2001:db8::1%eth0": WrongNetwork,
		"::ffff:10.1.2.3":  Authorized,
	} {
		remote := netip.MustParseAddr(addr)
		d := s.Decide(k.SPKIHash(), remote)
		if d.Verdict != want {
			t.Errorf("from %s: %v (%v), want %v", addr, d.Verdict, d.Err, want)
		}
		if want == WrongNetwork {
			var se *SourceNotAllowedError
			if !errors.As(d.Err, &se) || se.Remote != remote {
				t.Errorf("from %s: %v, want a SourceNotAllowedError naming the zoned address", addr, d.Err)
			}
		}
	}
}

// TestDecideOnceKeepsNoEntry: DecideOnce decides as Decide does —
// authorized, expired, revoked, unknown — but keeps no Entry for the
// key's next decision, where Decide keeps one (madeEntries): keytool
// bundle decides every authorized key once, and kept them all live.
func TestDecideOnceKeepsNoEntry(t *testing.T) {
	home := t.TempDir()
	d := filepath.Join(home, "authorized_keys.d")
	keydirtest.Write(t, filepath.Join(d, "a.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(d, "old.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 2), "expires", "2001-01-01T00:00:00Z")))
	keydirtest.Write(t, filepath.Join(d, "r.json"), keydirtest.JWK(t, key(t, 3)))
	keydirtest.Write(t, filepath.Join(home, "revoked_keys.d", "r.json"), keydirtest.JWK(t, key(t, 3)))
	s := Load(HomeOptions(home))
	kept := func(sum [32]byte) bool {
		sn := s.snap.Load()
		r := sn.keys.lookup(&sum)
		fm := s.made.slot(r.file).Load()
		return fm != nil && fm.place(r.pos).Load() != nil
	}
	for i, want := range map[int]Verdict{1: Authorized, 2: Expired, 3: Revoked, 4: Unknown} {
		sum := key(t, i).SPKIHash()
		once := s.DecideOnce(sum, netip.Addr{})
		if once.Verdict != want {
			t.Fatalf("key %d: DecideOnce says %v, want %v", i, once.Verdict, want)
		}
		if want == Authorized || want == Expired {
			if once.Entry == nil || once.Entry.SPKIHash != sum {
				t.Fatalf("key %d: DecideOnce's entry %v", i, once.Entry)
			}
			if kept(sum) {
				t.Fatalf("key %d: DecideOnce kept its entry", i)
			}
		}
		if d := s.Decide(sum, netip.Addr{}); d.Verdict != want {
			t.Fatalf("key %d: Decide says %v, DecideOnce %v", i, d.Verdict, want)
		}
		if (want == Authorized || want == Expired) && !kept(sum) {
			t.Fatalf("key %d: Decide kept no entry (the test does not see the cache)", i)
		}
	}
}

// TestAllIsEntriesOneAtATime: All yields the entries Entries lists, in
// its order (a key held twice by its first file, a revoked key's entry
// as Entries has it), and makes each as it yields it — keytool bundle
// goes through 100,000 keys holding one Entry, where the list of all was
// most of its heap: a loop that stops at the first entry allocates a few
// times, not once an entry.
func TestAllIsEntriesOneAtATime(t *testing.T) {
	home := t.TempDir()
	d := filepath.Join(home, "authorized_keys.d")
	const n = 200
	for i := range n {
		keydirtest.Write(t, filepath.Join(d, fmt.Sprintf("k%03d.json", i)), keydirtest.JWK(t, key(t, 10+i)))
	}
	keydirtest.Write(t, filepath.Join(d, "z-again.json"), keydirtest.JWK(t, key(t, 10)))
	keydirtest.Write(t, filepath.Join(home, "revoked_keys.d", "r.json"), keydirtest.JWK(t, key(t, 11)))
	s := Load(HomeOptions(home))
	list := s.Entries()
	var all []*Entry
	for e := range s.All() {
		all = append(all, e)
	}
	if len(all) != len(list) || len(list) < n-1 {
		t.Fatalf("All yields %d entries, Entries lists %d (want %d or more)", len(all), len(list), n-1)
	}
	// Entries is All collected: compare both with what the store holds,
	// not only with each other — a key of each file, in name order, the
	// key held again by z-again.json shadowed by k000's entry.
	if len(all) != n {
		t.Fatalf("All yields %d entries, want %d", len(all), n)
	}
	for i, e := range all {
		if want := filepath.Join(d, fmt.Sprintf("k%03d.json", i)); e.File != want || e.SPKIHash != key(t, 10+i).SPKIHash() {
			t.Fatalf("entry %d: %s of %s, want the key of %s", i, e.Name, e.File, want)
		}
	}
	for i := range list {
		if all[i].Name != list[i].Name || all[i].SPKIHash != list[i].SPKIHash || all[i].File != list[i].File {
			t.Fatalf("entry %d: All yields %s (%s), Entries lists %s (%s)", i, all[i].Name, all[i].File, list[i].Name, list[i].File)
		}
	}
	first := func() {
		for range s.All() {
			break
		}
	}
	if allocs := testing.AllocsPerRun(20, first); allocs > 10 {
		t.Errorf("All stopped at its first entry allocates %.0f times, want a few: it made the entries it did not yield", allocs)
	}
}

// TestLenCountsEntries: Len is len(Entries()) — each key once, however
// many files hold it; expired and revoked entries counted as Entries
// lists them — through reloads that add, share and remove keys.
func TestLenCountsEntries(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	opts.Rescan = -1
	d := opts.Dirs[0]
	check := func(s *Store, what string, want int) {
		t.Helper()
		if n, all := s.Len(), len(s.Entries()); n != all || n != want {
			t.Errorf("%s: Len %d, len(Entries) %d, want %d", what, n, all, want)
		}
	}
	empty := Load(opts)
	check(empty, "no directory", 0)
	empty.Close()
	keydirtest.Write(t, filepath.Join(d, "a.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(d, "team.pem"), keydirtest.PEM(t, key(t, 1), key(t, 2), key(t, 3)))
	keydirtest.Write(t, filepath.Join(d, "old.json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 4), "expires", "2001-01-01T00:00:00Z")))
	keydirtest.Write(t, filepath.Join(home, "revoked_keys.d", "r.json"), keydirtest.JWK(t, key(t, 2)))
	s := Load(opts)
	defer s.Close()
	check(s, "a key in two files, one expired, one revoked", 4)
	keydirtest.Write(t, filepath.Join(d, "b.json"), keydirtest.JWK(t, key(t, 3)))
	s.Reload()
	check(s, "a third file of a key", 4)
	for _, name := range []string{"team.pem", "a.json"} {
		if err := os.Remove(filepath.Join(d, name)); err != nil {
			t.Fatal(err)
		}
	}
	s.Reload()
	check(s, "two files removed", 2)
}
