package authkeys

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// limitsSet is a JWK Set of keys base+1 … base+5, each member given its
// attributes by limits (nil: none), with a bad member (skipped alone:
// a key for encryption, an "expires" that is not a time, a "from" that is
// not a network) before each key listed in badBefore.
func limitsSet(t *testing.T, base int, limits [5][]string, badBefore ...int) []byte {
	t.Helper()
	bad := [][]string{{"use", "enc"}, {"expires", "tomorrow"}, {"from", "not a network"}}
	var keys []*jwk.Key
	for i, attrs := range limits {
		for _, b := range badBefore {
			if b == i {
				keys = append(keys, keydirtest.WithAttrs(key(t, base+90+i), bad[i%len(bad)]...))
			}
		}
		keys = append(keys, keydirtest.WithAttrs(key(t, base+1+i), attrs...))
	}
	return keydirtest.JWK(t, keys...)
}

// wantLimits checks the verdict of each key of a limitsSet from the
// addresses of a restriction and from loopback.
func wantLimits(t *testing.T, s *Store, base int, limits [5][]string) {
	t.Helper()
	from := map[string]Verdict{"127.0.0.1": Authorized, "10.1.2.3": Authorized, "192.168.7.7": Authorized}
	for i, attrs := range limits {
		want := from
		switch {
		case len(attrs) == 2 && attrs[0] == "from":
			want = map[string]Verdict{"127.0.0.1": WrongNetwork, "10.1.2.3": WrongNetwork, "192.168.7.7": WrongNetwork}
			want[map[string]string{"10.0.0.0/8": "10.1.2.3", "192.168.0.0/16": "192.168.7.7"}[attrs[1]]] = Authorized
		case len(attrs) == 2 && attrs[0] == "expires":
			want = map[string]Verdict{"127.0.0.1": Expired, "10.1.2.3": Expired, "192.168.7.7": Expired}
		}
		for addr, v := range want {
			// Twice: the first makes the Entry, the second is answered
			// with the Entry kept (madeEntries).
			for range 2 {
				if d := s.Decide(key(t, base+1+i).SPKIHash(), netip.MustParseAddr(addr)); d.Verdict != v {
					t.Fatalf("key %d (%v) from %s: %v (%v), want %v", base+1+i, attrs, addr, d.Verdict, d.Err, v)
				}
			}
		}
	}
}

// TestLimitsFollowTheirKeysPastSkippedMembers: in a JWK Set whose bad
// members are skipped, each key keeps its own "from" and "expires" — the
// rare parts are kept by position beside the items (File.RareOf), and a
// skipped member must not shift its neighbours' limits onto another key,
// which would drop a restriction silently. So too after the set is
// rewritten with its limits on other keys and its bad members elsewhere,
// rewritten without any limit (a file with no rare part), and given its
// limits back: the Entry a handshake made before (madeEntries) never
// answers for the file that replaced its own. In a directory and in a
// single file alike.
func TestLimitsFollowTheirKeysPastSkippedMembers(t *testing.T) {
	home := t.TempDir()
	opts := HomeOptions(home)
	dirSet, single := filepath.Join(opts.Dirs[0], "set.json"), opts.Files[0]
	from10, from192, expired := []string{"from", "10.0.0.0/8"}, []string{"from", "192.168.0.0/16"}, []string{"expires", "2001-01-01T00:00:00Z"}
	steps := []struct {
		limits    [5][]string
		badBefore []int
	}{
		{[5][]string{from10, nil, expired, from192, {"comment", "five"}}, []int{0, 1, 3}},
		// The limits moved to other keys, the bad members elsewhere.
		{[5][]string{nil, from192, from10, expired, from10}, []int{2, 4}},
		// No limit, no bad member: a file without rare parts.
		{},
		// The first limits back, the bad members at the end.
		{[5][]string{from10, nil, expired, from192, nil}, []int{4}},
	}
	s := Load(opts)
	defer s.Close()
	for n, step := range steps {
		keydirtest.Write(t, dirSet, limitsSet(t, 0, step.limits, step.badBefore...))
		keydirtest.Write(t, single, limitsSet(t, 100, step.limits, step.badBefore...))
		s.Reload()
		if got := len(s.Problems()); got != 2*len(step.badBefore) {
			t.Fatalf("step %d: %d problems, want %d: %v", n, got, 2*len(step.badBefore), s.Problems())
		}
		wantLimits(t, s, 0, step.limits)
		wantLimits(t, s, 100, step.limits)
		for _, i := range step.badBefore {
			if d := s.Decide(key(t, 90+i).SPKIHash(), netip.MustParseAddr("10.1.2.3")); d.Verdict != Unknown || !d.Incomplete {
				t.Fatalf("step %d: skipped member's key %d: %v, incomplete %v", n, 90+i, d.Verdict, d.Incomplete)
			}
		}
	}
}

// TestLimitsHoldWhileFilesComeAndGo: handshakes decide beside reloads
// that remove files, add others (given the numbers the removed ones had)
// and rewrite a set whose skipped members move: a key limited to
// 10.0.0.0/8 in every file that ever holds it is never Authorized from
// loopback, an expired one never, and a revoked one is always Revoked —
// whichever snapshot, file number or kept Entry a handshake meets. (Run
// with -race: the Entries kept by file number are shared by handshakes
// on old and new snapshots.)
func TestLimitsHoldWhileFilesComeAndGo(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	dir, revDir := opts.Dirs[0], opts.RevokedDirs[0]
	const limited, expired, revoked, free = 1, 2, 3, 4
	write := func(name string, keys ...*jwk.Key) {
		keydirtest.Write(t, filepath.Join(dir, name+".json"), keydirtest.JWK(t, keys...))
	}
	lim := func() *jwk.Key { return keydirtest.WithAttrs(key(t, limited), "from", "10.0.0.0/8") }
	exp := func() *jwk.Key { return keydirtest.WithAttrs(key(t, expired), "expires", "2001-01-01T00:00:00Z") }
	bad := func(n int) *jwk.Key { return keydirtest.WithAttrs(key(t, n), "from", "not a network") }
	// Fillers, so that most reloads edit the index rather than rebuild it.
	for i := range 80 {
		write(fmt.Sprintf("f%02d", i), key(t, 10+i))
	}
	write("set", bad(200), lim(), key(t, free), exp())
	write("zz-revoked-too", key(t, revoked))
	keydirtest.Write(t, filepath.Join(revDir, "r.json"), keydirtest.JWK(t, key(t, 300), key(t, revoked)))
	s := Load(opts)
	defer s.Close()
	loopback := netip.MustParseAddr("127.0.0.1")
	failed := make(chan string, 1)
	fail := func(msg string) {
		select {
		case failed <- msg:
		default:
		}
	}
	check := func() {
		for k, ok := range map[int][]Verdict{limited: {WrongNetwork, Unknown}, expired: {Expired, Unknown}, revoked: {Revoked}, free: {Authorized, Unknown}} {
			sum := key(t, k).SPKIHash()
			d := s.Decide(sum, loopback)
			if !slices.Contains(ok, d.Verdict) || d.Entry != nil && d.Entry.SPKIHash != sum {
				fail(fmt.Sprintf("key %d from loopback: %v, want one of %v (%+v)", k, d.Verdict, ok, d.Entry))
			}
		}
	}
	stop := keydirtest.Repeat(2, check)
	updates, rebuilds := s.updates, s.rebuilds
	for round := range 40 {
		f := fmt.Sprintf("f%02d", round%80)
		switch round % 4 {
		case 0: // the set's file goes; a filler's number is freed too
			os.Remove(filepath.Join(dir, "set.json"))
			os.Remove(filepath.Join(dir, f+".json"))
		case 1: // new files take the numbers freed, the set comes back
			write("a-new", key(t, 400+round), key(t, free))
			write(f, key(t, 10+round%80))
			write("set", lim(), bad(201), exp(), key(t, 500+round), key(t, free)) // free: a key of two files
		case 2: // the set rewritten: its bad members and keys move
			write("set", key(t, 600+round), exp(), bad(202), bad(203), lim())
			os.Remove(filepath.Join(dir, "a-new.json"))
		case 3: // the limited keys in files of their own, without a set
			os.Remove(filepath.Join(dir, "set.json"))
			write("lim", lim())
			write("exp", bad(204), exp())
			s.Reload()
			os.Remove(filepath.Join(dir, "lim.json"))
			os.Remove(filepath.Join(dir, "exp.json"))
			write("set", bad(205), lim(), key(t, free), exp())
		}
		old := s.snap.Load()
		s.Reload()
		// A handshake that read the snapshot before the reload makes its
		// Entries now, under the numbers their files had there: they
		// must not answer for the files given those numbers since.
		for _, k := range []int{limited, expired, free, 10 + round%80} {
			sum := key(t, k).SPKIHash()
			if r := old.keys.lookup(&sum); r.file != 0 {
				s.made.entry(old.files, r)
			}
		}
		check()
	}
	stop()
	select {
	case msg := <-failed:
		t.Fatal(msg)
	default:
	}
	// Both ways of making an index: edited (numbers freed and given
	// again) and rebuilt (every file numbered anew, a key of two files).
	if s.updates == updates || s.rebuilds == rebuilds {
		t.Fatalf("updates %d→%d, rebuilds %d→%d: the test does not reach both", updates, s.updates, rebuilds, s.rebuilds)
	}
}

// TestSkippedEntryHoldsItsKeyBack: a key of which an entry was skipped is
// refused even where another entry holds it — the first entry of a key
// wins, so the skipped one may be the entry in effect, with limits the
// other lacks: a key limited to 10.0.0.0/8 in a.json, whose "expires" has
// a typo, and listed plain in b.json was admitted from anywhere. So for
// an entry of a set and a file of one entry, whether its attributes do
// not read (jwk: a JWK member, a PEM header) or do not convert (a "name"
// that is not a string), and for a key for encryption. Once the entry is fixed, it decides.
func TestSkippedEntryHoldsItsKeyBack(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	dir := opts.Dirs[0]
	write := func(name string, keys ...*jwk.Key) {
		keydirtest.Write(t, filepath.Join(dir, name), keydirtest.JWK(t, keys...))
	}
	numberName := func(k *jwk.Key) *jwk.Key {
		k = keydirtest.WithAttrs(k)
		k.Attrs[jwk.AttrName] = []byte("5")
		return k
	}
	write("a.json", keydirtest.WithAttrs(key(t, 1), "from", "10.0.0.0/8", "expires", "tomorrow"))
	write("b.json", key(t, 1))
	write("c.json", keydirtest.WithAttrs(key(t, 2), "from", "not a network"), key(t, 3), key(t, 2), numberName(key(t, 4)))
	write("d.json", keydirtest.WithAttrs(key(t, 5), "use", "enc"))
	write("e.json", key(t, 4), key(t, 5), key(t, 6))
	// A PEM file whose block's header is not a time.
	pemFile := filepath.Join(filepath.Dir(dir), "authorized_keys.pem")
	keydirtest.Write(t, pemFile, []byte(strings.Replace(string(keydirtest.PEM(t, key(t, 6))), "-----\n", "-----\nexpires: tomorrow\n\n", 1)))
	s := Load(opts)
	defer s.Close()
	remote := netip.MustParseAddr("10.1.2.3")
	for n, file := range map[int]string{1: "a.json", 2: "c.json", 4: "c.json", 5: "d.json", 6: "../authorized_keys.pem"} {
		d := s.Decide(key(t, n).SPKIHash(), remote)
		var se *SkippedEntryError
		if d.Verdict != Unknown || !d.Incomplete || !errors.As(d.Err, &se) || se.Problem.Path != filepath.Clean(filepath.Join(dir, file)) {
			t.Errorf("key %d, with an entry skipped in %s: %v, incomplete %v, %v; want unknown, incomplete, *SkippedEntryError naming the file", n, file, d.Verdict, d.Incomplete, d.Err)
		}
	}
	if d := s.Decide(key(t, 3).SPKIHash(), remote); d.Verdict != Authorized {
		t.Errorf("key 3, beside a skipped entry: %v (%v)", d.Verdict, d.Err)
	}
	// Fixed: the first entry, limited, decides.
	write("a.json", keydirtest.WithAttrs(key(t, 1), "from", "10.0.0.0/8", "expires", "2099-01-01T00:00:00Z"))
	s.Reload()
	for addr, want := range map[string]Verdict{"10.1.2.3": Authorized, "127.0.0.1": WrongNetwork} {
		if d := s.Decide(key(t, 1).SPKIHash(), netip.MustParseAddr(addr)); d.Verdict != want {
			t.Errorf("key 1 from %s once its entry is fixed: %v (%v), want %v", addr, d.Verdict, d.Err, want)
		}
	}
}
