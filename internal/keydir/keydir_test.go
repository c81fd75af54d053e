package keydir

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/internal/trustfile"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// fps converts each key to its fingerprint, so a snapshot's contents are
// easy to compare.
func fpConvert(_ SourceRef, _ string, k *jwk.Key) (string, error) { return k.Fingerprint(), nil }

func newLoader(srcs ...Source) *Loader[string] {
	return New(Config[string]{Sources: srcs, Convert: fpConvert})
}

// newSPKILoader is a loader of home whose entries are their keys' SPKI
// hashes (spkiOf gives an entry's), what the tests of Find and the Finder
// use.
func newSPKILoader(home string, srcs ...Source) *Loader[[32]byte] {
	return New(Config[[32]byte]{Home: home, Sources: srcs, Convert: func(_ SourceRef, _ string, k *jwk.Key) ([32]byte, error) { return k.SPKIHash(), nil }})
}

// spkiOf is the SPKI hash of an entry of newSPKILoader.
func spkiOf(s *[32]byte) [32]byte { return *s }

// newLeanLoader is newLoader of entries that hold no pointer (a key's
// SPKI hash): a file of one key of a source other than a revocation
// source is kept without a File of its own (Loader.parsedOne).
func newLeanLoader(srcs ...Source) *Loader[[32]byte] {
	return New(Config[[32]byte]{Sources: srcs, Convert: func(_ SourceRef, _ string, k *jwk.Key) ([32]byte, error) { return k.SPKIHash(), nil },
		KeyOf: func(sum *[32]byte) [32]byte { return *sum }})
}

func fingerprints(s *Snapshot[string]) []string {
	var out []string
	for _, f := range s.Files() {
		out = append(out, f.Items()...)
	}
	slices.Sort(out)
	return out
}

func want(tb testing.TB, keys ...*jwk.Key) []string {
	var out []string
	for _, k := range keys {
		out = append(out, k.Fingerprint())
	}
	slices.Sort(out)
	return out
}

func key(tb testing.TB, n int) *jwk.Key { return keydirtest.Key(tb, n) }

func TestEveryFormatInDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	k := func(n int) *jwk.Key { return key(t, n) }
	keydirtest.Write(t, filepath.Join(dir, "one.json"), keydirtest.JWK(t, k(1)))
	keydirtest.Write(t, filepath.Join(dir, "set.jwk"), keydirtest.JWK(t, k(2), k(3)))
	keydirtest.Write(t, filepath.Join(dir, "bundle.pem"), keydirtest.PEM(t, k(4), k(5)))
	keydirtest.Write(t, filepath.Join(dir, "ssh"), append([]byte("# comment\n\n"), keydirtest.SSH(t, k(6), k(7))...))
	ec, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	keydirtest.Write(t, filepath.Join(dir, "ec.pem"), keydirtest.PEM(t, ec))
	single := filepath.Join(filepath.Dir(dir), "authorized_keys.json")
	keydirtest.Write(t, single, keydirtest.JWK(t, k(8)))

	s := newLoader(Source{Path: single}, Source{Path: dir, Dir: true}).Reload()
	if len(s.Problems) != 0 {
		t.Fatalf("problems: %v", s.Problems)
	}
	if got, w := fingerprints(s), want(t, k(1), k(2), k(3), k(4), k(5), k(6), k(7), k(8), ec); !slices.Equal(got, w) {
		t.Fatalf("got %v\nwant %v", got, w)
	}
	// Files come in source order, then by name.
	var paths []string
	for _, f := range s.Files() {
		paths = append(paths, filepath.Base(f.Path()))
	}
	if w := []string{"authorized_keys.json", "bundle.pem", "ec.pem", "one.json", "set.jwk", "ssh"}; !slices.Equal(paths, w) {
		t.Fatalf("file order %v, want %v", paths, w)
	}
}

func TestBadFilesAreSkippedAndReported(t *testing.T) {
	dir := t.TempDir()
	good := key(t, 1)
	keydirtest.Write(t, filepath.Join(dir, "good.json"), keydirtest.JWK(t, good))
	set := keydirtest.JWK(t, key(t, 2), key(t, 3))
	set = bytes.Replace(set, []byte(`"kty": "OKP"`), []byte(`"kty": "XXX"`), 1) // first key of the set
	cases := []struct {
		name, content string
		line          int
		member        string
		msg           string
	}{
		{"garbage.json", "this is not a key\n", 0, "", "not a JWK"},
		{"empty.pem", "", 0, "", "no key"},
		{"badset.json", string(set), 3, "keys[0].kty", "unsupported"},
		{"truncated.pem", "\n\n" + strings.TrimSuffix(string(keydirtest.PEM(t, key(t, 4))), "-----END PUBLIC KEY-----\n"), 3, "", "PEM"},
		{"badssh", "ssh-ed25519 AAAAnotbase64 x\n", 1, "", "OpenSSH"},
		{"badexpiry.json", string(keydirtest.JWK(t, keydirtest.WithAttrs(key(t, 5), "expires", "tomorrow"))), 0, "expires", "RFC 3339"},
	}
	for _, c := range cases {
		keydirtest.Write(t, filepath.Join(dir, c.name), []byte(c.content))
	}
	keydirtest.Mkfifo(t, filepath.Join(dir, "fifo"), 0o644)
	s := newLoader(Source{Path: dir, Dir: true}).Reload()
	// The good file loads, and so does the good key of the bad set (its
	// bad key is a problem of its own, below).
	if got := fingerprints(s); !slices.Equal(got, want(t, good, key(t, 3))) {
		t.Fatalf("the good file and the set's good key must still load: got %v", got)
	}
	byName := map[string]Problem{}
	for _, p := range s.Problems {
		byName[filepath.Base(p.Path)] = p
		if !strings.HasPrefix(p.Path, dir) {
			t.Errorf("problem path %q is not the file's", p.Path)
		}
	}
	for _, c := range cases {
		p, ok := byName[c.name]
		if !ok {
			t.Errorf("%s: no problem reported", c.name)
			continue
		}
		t.Logf("%s", p.Error())
		if p.Line != c.line || p.Member != c.member || !strings.Contains(p.Error(), c.msg) || p.Entry != (c.name == "badset.json") {
			t.Errorf("%s: got line %d member %q msg %q entry %v; want line %d member %q containing %q", c.name, p.Line, p.Member, p.Error(), p.Entry, c.line, c.member, c.msg)
		}
	}
	if p, ok := byName["fifo"]; !ok || !strings.Contains(p.Error(), "not a regular file") {
		t.Errorf("fifo: %v", p)
	}
	if s.RevocationErr != nil {
		t.Errorf("RevocationErr set for a trust source: %v", s.RevocationErr)
	}
}

func TestConvertErrorNamesTheKeyInASet(t *testing.T) {
	dir := t.TempDir()
	keydirtest.Write(t, filepath.Join(dir, "set.json"), keydirtest.JWK(t, key(t, 1), key(t, 2)))
	bad := key(t, 2).Fingerprint()
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: func(_ SourceRef, path string, k *jwk.Key) (string, error) {
		if k.Fingerprint() == bad {
			return "", &jwk.ParseError{Member: "address", Err: errors.New("bad address")}
		}
		return k.Fingerprint(), nil
	}})
	s := l.Reload()
	// The entry that does not convert is skipped and named; the other
	// loads.
	if len(s.Problems) != 1 || s.Problems[0].Member != "keys[1].address" || !s.Problems[0].Entry {
		t.Fatalf("problems %+v", s.Problems)
	}
	if got := fingerprints(s); !slices.Equal(got, want(t, key(t, 1))) {
		t.Fatalf("loaded %v, want only key 1", got)
	}
}

// TestConvertToldTheSourceIndex gives the loader sources that look
// alike — one directory twice, a file as a key source and as a
// revocation source, two feeds of one name holding other keys — and
// checks that Convert (on each path: a file that loads whole, a file read
// entry by entry, a feed) and Parse are told the index of the source each
// file is read for: a store tells an entry's source by it, never by
// comparing Sources.
func TestConvertToldTheSourceIndex(t *testing.T) {
	base := t.TempDir()
	dir, file := filepath.Join(base, "keys.d"), filepath.Join(base, "keys.json")
	keydirtest.Write(t, filepath.Join(dir, "one.json"), keydirtest.JWK(t, key(t, 1)))
	// A line that does not parse: the file is read entry by entry.
	keydirtest.Write(t, filepath.Join(dir, "lines"), append(keydirtest.SSH(t, key(t, 2)), "ssh-ed25519 AAAA\n"...))
	keydirtest.Write(t, file, keydirtest.JWK(t, key(t, 3), key(t, 4)))
	a, b := newMemFeed("fleet"), newMemFeed("fleet")
	a.Set(FeedView{Entries: map[string][]byte{"k": keydirtest.JWK(t, key(t, 5))}})
	b.Set(FeedView{Entries: map[string][]byte{"k": keydirtest.JWK(t, key(t, 6))}})
	srcs := []Source{
		{Path: dir, Dir: true}, {Path: dir, Dir: true},
		{Path: file}, {Path: file, Revocation: true},
		{Path: a.Name(), Dir: true, Feed: a}, {Path: b.Name(), Dir: true, Feed: b},
	}
	// Each entry is its source's index as Convert or Parse was told it,
	// and the fingerprint of its key (Parse: of the file's content).
	told := func(src SourceRef) string {
		if src.Index < 0 || src.Index >= len(srcs) || src.Source != srcs[src.Index] {
			t.Errorf("told source %d %+v, which is not Config.Sources[%d]", src.Index, src.Source, src.Index)
		}
		return strconv.Itoa(src.Index)
	}
	convert := func(src SourceRef, _ string, k *jwk.Key) (string, error) {
		return told(src) + " " + k.Fingerprint(), nil
	}
	parse := func(src SourceRef, _ string, data []byte) ([]string, error) {
		return []string{told(src) + " " + string(data)}, nil
	}
	for _, c := range []Config[string]{{Sources: srcs, Convert: convert}, {Sources: srcs, Parse: parse}} {
		s := Load(c)
		wantProblems := 0
		if c.Convert != nil {
			wantProblems = 2 // the bad line, in each source of the directory
		}
		if len(s.Problems) != wantProblems || slices.ContainsFunc(s.Problems, func(p Problem) bool { return p.Path != filepath.Join(dir, "lines") || !p.Entry }) {
			t.Errorf("problems %v, want %d of the bad line of lines", s.Problems, wantProblems)
		}
		perSource := make([]int, len(srcs))
		for _, f := range s.Files() {
			perSource[f.Source()]++
			for _, it := range f.Items() {
				if i, _, _ := strings.Cut(it, " "); i != strconv.Itoa(f.Source()) {
					t.Errorf("%s of source %d: an entry Convert or Parse was told is of source %s", f.Path(), f.Source(), i)
				}
			}
		}
		// Every source but the revocation of a file of two keys that
		// also holds them read its files (the directory's two; the
		// file; the feeds' one each).
		if want := []int{2, 2, 1, 1, 1, 1}; !slices.Equal(perSource, want) {
			t.Errorf("files per source %v, want %v", perSource, want)
		}
		if c.Convert != nil {
			for i, fp := range map[int]string{4: key(t, 5).Fingerprint(), 5: key(t, 6).Fingerprint()} {
				if !slices.ContainsFunc(s.Files(), func(f *File[string]) bool { return f.Source() == i && f.Items()[0] == strconv.Itoa(i)+" "+fp }) {
					t.Errorf("feed source %d does not hold its own key", i)
				}
			}
		}
	}
}

func TestIgnoredNames(t *testing.T) {
	dir := t.TempDir()
	k := key(t, 1)
	keydirtest.Write(t, filepath.Join(dir, "alice.json"), keydirtest.JWK(t, k))
	for _, name := range []string{".hidden.json", "alice.json~", ".alice.json.swp", "x.tmp", ".alice.json.123.tmp", "#alice.json#"} {
		keydirtest.Write(t, filepath.Join(dir, name), keydirtest.JWK(t, key(t, 2)))
	}
	keydirtest.Write(t, filepath.Join(dir, "sub", "k.json"), keydirtest.JWK(t, key(t, 3))) // subdirectories are not read
	s := newLoader(Source{Path: dir, Dir: true}).Reload()
	if got := fingerprints(s); !slices.Equal(got, want(t, k)) || len(s.Problems) != 0 {
		t.Fatalf("got %v problems %v", got, s.Problems)
	}
}

// TestListSortedIsReadDir checks that the loader's listing (listSorted)
// gives what os.ReadDir gives, in the same order and with the same
// types, and that pathIn is filepath.Join for what it lists, the root
// directory included.
func TestListSortedIsReadDir(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"b.json", "a.json", "B.json", "a.json~", "é.json", "a b.json", "a.json.d", "10.json", "9.json"} {
		keydirtest.Write(t, filepath.Join(dir, name), []byte("{}"))
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b.json", filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	keydirtest.Mkfifo(t, filepath.Join(dir, "fifo"), 0o600)
	got, err := listSorted(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.len() != len(want) {
		t.Fatalf("listSorted: %d entries, os.ReadDir %d", got.len(), len(want))
	}
	for i, e := range want {
		if g := got.entry(i); g.name != e.Name() || g.typ != e.Type() {
			t.Errorf("entry %d: listSorted %q %v, os.ReadDir %q %v", i, g.name, g.typ, e.Name(), e.Type())
		}
		if p := pathIn(dir, e.Name()); p != filepath.Join(dir, e.Name()) {
			t.Errorf("pathIn(%q, %q) = %q, want %q", dir, e.Name(), p, filepath.Join(dir, e.Name()))
		}
	}
	for _, c := range [][3]string{{"/", "etc", "/etc"}, {"", "a.json", "a.json"}, {"keys.d", "a.json", "keys.d/a.json"}} {
		if p := pathIn(c[0], c[1]); p != c[2] {
			t.Errorf("pathIn(%q, %q) = %q, want %q", c[0], c[1], p, c[2])
		}
	}
	if _, err := listSorted(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("listSorted of a missing directory: %v, want fs.ErrNotExist", err)
	}
}

// kubeLayout builds the layout kubelet's atomic writer makes for a
// ConfigMap or Secret volume: the files live in ..<timestamp>/, ..data
// links to it, and each visible name links to ..data/NAME.
func kubeLayout(t *testing.T, dir, stamp string, files map[string][]byte) {
	t.Helper()
	ts := filepath.Join(dir, stamp)
	if err := os.MkdirAll(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		keydirtest.Write(t, filepath.Join(ts, name), data)
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Swap ..data atomically: a new link renamed over the old one.
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(stamp, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func TestKubernetesLayoutIsAPlainDirectory(t *testing.T) {
	dir := t.TempDir()
	a, b := key(t, 1), key(t, 2)
	kubeLayout(t, dir, "..2024_01_01_00_00_00.000000001", map[string][]byte{"alice.json": keydirtest.JWK(t, a), "bob.pem": keydirtest.PEM(t, b)})
	s := newLoader(Source{Path: dir, Dir: true}).Reload()
	if got := fingerprints(s); !slices.Equal(got, want(t, a, b)) || len(s.Problems) != 0 {
		t.Fatalf("got %v problems %v", got, s.Problems)
	}
	for _, f := range s.Files() {
		if strings.Contains(f.Path(), "..") {
			t.Errorf("file read through its hidden name: %s", f.Path())
		}
	}
}

func TestMissingSourcesAreEmpty(t *testing.T) {
	dir := t.TempDir()
	s := newLoader(
		Source{Path: filepath.Join(dir, "authorized_keys.json")},
		Source{Path: filepath.Join(dir, "authorized_keys.d"), Dir: true},
		Source{Path: filepath.Join(dir, "nohome", "revoked_keys.d"), Dir: true, Revocation: true},
		Source{Path: filepath.Join(dir, "revoked_keys.pem"), Revocation: true},
	).Reload()
	if len(s.Files()) != 0 || len(s.Problems) != 0 || s.RevocationErr != nil {
		t.Fatalf("got %+v", s)
	}
	// Loaded, though empty: a readiness check (proxy.Health) must not
	// wait forever for a store nobody has added a key to yet.
	if s.Generation != 1 {
		t.Fatalf("generation %d after the first load of empty sources, want 1", s.Generation)
	}
}

func TestStrictModes(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "authorized_keys.d")
	file := filepath.Join(home, "authorized_keys.json")
	keydirtest.Write(t, filepath.Join(dir, "a.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(dir, "b.json"), keydirtest.JWK(t, key(t, 2)))
	keydirtest.Write(t, file, keydirtest.JWK(t, key(t, 3)))
	srcs := []Source{{Path: file}, {Path: dir, Dir: true}}
	check := func(name string, wantKeys int, wantFix ...string) {
		t.Helper()
		s := newLoader(srcs...).Reload()
		if len(fingerprints(s)) != wantKeys || len(s.Problems) != len(wantFix) {
			t.Fatalf("%s: %d keys, problems %v; want %d keys, %d problems", name, len(fingerprints(s)), s.Problems, wantKeys, len(wantFix))
		}
		for i, fix := range wantFix {
			var pe *trustfile.PermissionError
			if !errors.As(s.Problems[i].Err, &pe) || pe.Path != fix {
				t.Errorf("%s: problem %q is not a *trustfile.PermissionError naming %s", name, s.Problems[i].Error(), fix)
			}
		}
		l := New(Config[string]{Sources: srcs, Convert: fpConvert, NoStrictModes: true})
		if s := l.Reload(); len(fingerprints(s)) != 3 || len(s.Problems) != 0 {
			t.Errorf("%s with NoStrictModes: %v %v", name, fingerprints(s), s.Problems)
		}
	}
	check("clean", 3)
	os.Chmod(filepath.Join(dir, "a.json"), 0o664)
	check("group-writable file in dir", 2, filepath.Join(dir, "a.json"))
	os.Chmod(filepath.Join(dir, "a.json"), 0o644)
	os.Chmod(dir, 0o777)
	check("world-writable dir", 1, dir)
	os.Chmod(dir, 0o755)
	os.Chmod(file, 0o646)
	check("world-writable single file", 2, file)
	os.Chmod(file, 0o644)
	os.Chmod(home, 0o775)
	check("group-writable parent", 0, home, home)
	os.Chmod(home, 0o755)
	if os.Geteuid() == 0 {
		if err := os.Chown(filepath.Join(dir, "b.json"), 4242, 4242); err != nil {
			t.Fatal(err)
		}
		check("owned by another user", 2, filepath.Join(dir, "b.json"))
	} else {
		t.Log("not root: cannot test a file owned by another user")
	}
}

func TestRevocationFailsClosed(t *testing.T) {
	dir := t.TempDir()
	rev := filepath.Join(dir, "revoked_keys.d")
	keydirtest.Write(t, filepath.Join(rev, "ok.json"), keydirtest.JWK(t, key(t, 1)))
	keydirtest.Write(t, filepath.Join(rev, "more.json"), keydirtest.JWK(t, key(t, 2)))
	l := newLoader(Source{Path: rev, Dir: true, Revocation: true})
	if s := l.Reload(); s.RevocationErr != nil {
		t.Fatal(s.RevocationErr)
	}
	// An I/O error (EACCES here; a test running as root cannot make one
	// with chmod) on one revocation file.
	l.cfg.ReadFile = func(path string) ([]byte, fs.FileInfo, error) {
		if filepath.Base(path) == "more.json" {
			return nil, nil, &fs.PathError{Op: "open", Path: path, Err: syscall.EACCES}
		}
		return trustfile.Read(path)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(rev, "more.json"), old, old)
	s := l.Reload()
	if s.RevocationErr == nil || !errors.Is(s.RevocationErr, fs.ErrPermission) || !strings.Contains(s.RevocationErr.Error(), "more.json") {
		t.Fatalf("RevocationErr = %v", s.RevocationErr)
	}
	// A parse error in a revocation file fails closed too.
	l.cfg.ReadFile = trustfile.Read
	keydirtest.Write(t, filepath.Join(rev, "more.json"), []byte("garbage"))
	if s := l.Reload(); s.RevocationErr == nil {
		t.Fatal("a malformed revocation file must fail closed")
	}
	keydirtest.Write(t, filepath.Join(rev, "more.json"), keydirtest.JWK(t, key(t, 2)))
	if s := l.Reload(); s.RevocationErr != nil {
		t.Fatal(s.RevocationErr)
	}
	// A revocation directory that cannot be listed.
	if os.Geteuid() != 0 {
		os.Chmod(rev, 0o000)
		defer os.Chmod(rev, 0o755)
		if s := l.Reload(); s.RevocationErr == nil {
			t.Fatal("an unreadable revocation directory must fail closed")
		}
	}
}

func TestReloadReadsOnlyChangedFiles(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		keydirtest.Write(t, filepath.Join(dir, "k"+string(rune('a'+i))+".json"), keydirtest.JWK(t, key(t, i)))
	}
	l := newLoader(Source{Path: dir, Dir: true})
	var mu sync.Mutex
	var reads []string
	l.cfg.ReadFile = func(path string) ([]byte, fs.FileInfo, error) {
		mu.Lock()
		reads = append(reads, filepath.Base(path))
		mu.Unlock()
		return trustfile.Read(path)
	}
	s1 := l.Reload()
	if len(reads) != 20 {
		t.Fatalf("cold load read %d files", len(reads))
	}
	reads = nil
	if s2 := l.Reload(); len(reads) != 0 || s2 != s1 {
		t.Fatalf("an unchanged rescan read %v and made a new snapshot: %v", reads, s2 != s1)
	}
	keydirtest.Replace(t, filepath.Join(dir, "kc.json"), keydirtest.JWK(t, key(t, 100)))
	s3 := l.Reload()
	if !slices.Equal(reads, []string{"kc.json"}) || s3 == s1 {
		t.Fatalf("after one change read %v", reads)
	}
	// Same content rewritten: read (the stat changed) but no new snapshot.
	reads = nil
	keydirtest.Replace(t, filepath.Join(dir, "kd.json"), keydirtest.JWK(t, key(t, 3)))
	if s4 := l.Reload(); len(reads) != 1 || s4 != s3 {
		t.Fatalf("identical rewrite: read %v, new snapshot %v", reads, s4 != s3)
	}
	// A targeted reload (what an event triggers) looks at just that file.
	reads = nil
	keydirtest.Write(t, filepath.Join(dir, "new.json"), keydirtest.JWK(t, key(t, 200)))
	s5 := l.Reload(filepath.Join(dir, "new.json"))
	if !slices.Equal(reads, []string{"new.json"}) || len(fingerprints(s5)) != 21 {
		t.Fatalf("targeted reload read %v, %d keys", reads, len(fingerprints(s5)))
	}
	os.Remove(filepath.Join(dir, "new.json"))
	if s6 := l.Reload(filepath.Join(dir, "new.json")); len(fingerprints(s6)) != 20 {
		t.Fatalf("targeted delete: %d keys", len(fingerprints(s6)))
	}
}

func TestProblemsLoggedOncePerChange(t *testing.T) {
	dir := t.TempDir()
	keydirtest.Write(t, filepath.Join(dir, "bad.json"), []byte("{"))
	var buf syncBuffer
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert,
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	for range 5 {
		l.Reload()
	}
	if n := strings.Count(buf.String(), "skipping trust file"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, buf.String())
	}
	keydirtest.Write(t, filepath.Join(dir, "bad.json"), []byte("{}"))
	l.Reload()
	l.Reload()
	if n := strings.Count(buf.String(), "skipping trust file"); n != 2 {
		t.Fatalf("a changed problem must be logged again; logged %d times:\n%s", n, buf.String())
	}
	keydirtest.Write(t, filepath.Join(dir, "bad.json"), keydirtest.JWK(t, key(t, 1)))
	l.Reload()
	if !strings.Contains(buf.String(), "resolved") {
		t.Fatalf("fix not logged:\n%s", buf.String())
	}
}

// syncBuffer is the module's one log buffer for tests.
type syncBuffer = testlog.Buffer

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"alice", "alice.laptop", "bob-2", "ünïcode", "a b"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", `a\b`, ".hidden", "a\nb", "a\rb", "a\x00b", "a\x1bb", "x~", "#x#", "\xff", strings.Repeat("a", 201)} {
		if err := CheckName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
		if err := CheckFileName(bad); err == nil {
			t.Errorf("%q accepted as a file name", bad)
		}
	}
}

// TestCheckNameRefusesWhatIsNotShown: a name given may hold no character
// that is not shown as itself — a format character (bidi controls,
// zero-width ones, U+FEFF, the soft hyphen, tags), another space than
// U+0020, a private-use or unassigned one — each refused with a
// *NameCharError naming it as U+XXXX and its place; CheckFileName, the
// rule of the names already there, takes them all (docs/design.md, "Names").
func TestCheckNameRefusesWhatIsNotShown(t *testing.T) {
	for _, tc := range []struct {
		name string
		char rune
		pos  int
		kind string
	}{
		{"ad\u200bmin", 0x200b, 3, "invisible format"},
		{"ad\u200cmin", 0x200c, 3, "invisible format"},
		{"ad\u200dmin", 0x200d, 3, "invisible format"},
		{"admin\u2060", 0x2060, 6, "invisible format"},
		{"\ufeffadmin", 0xfeff, 1, "invisible format"},
		{"ad\u00admin", 0xad, 3, "invisible format"},
		{"admin\U000e0041", 0xe0041, 6, "invisible format"},
		{"x\u202eevil", 0x202e, 2, "bidirectional"},
		{"x\u202aevil", 0x202a, 2, "bidirectional"},
		{"\u2066admin\u2069", 0x2066, 1, "bidirectional"},
		{"a\u200eb", 0x200e, 2, "bidirectional"},
		{"a\u200fb", 0x200f, 2, "bidirectional"},
		{"a\u061cb", 0x61c, 2, "bidirectional"},
		{"alice\u00a0laptop", 0xa0, 6, "space other than U+0020"},
		{"é\u3000x", 0x3000, 2, "space other than U+0020"},
		{"a\ue000b", 0xe000, 2, "private-use"},
		{"a\U0010fffdb", 0x10fffd, 2, "private-use"},
		{"a\u0378b", 0x378, 2, "not a character Unicode assigns"},
	} {
		err := CheckName(tc.name)
		var ce *NameCharError
		if !errors.As(err, &ce) {
			t.Errorf("CheckName(%q) = %v, want a *NameCharError", tc.name, err)
			continue
		}
		if ce.Char != tc.char || ce.Pos != tc.pos || ce.Name != tc.name {
			t.Errorf("CheckName(%q): %+v, want %U at character %d", tc.name, *ce, tc.char, tc.pos)
		}
		msg := err.Error()
		want := fmt.Sprintf("character %d is %U, ", tc.pos, tc.char)
		if !strings.HasPrefix(msg, "keydir: invalid name ") || !strings.Contains(msg, want) || !strings.Contains(msg, tc.kind) {
			t.Errorf("CheckName(%q): %q, want keydir: … %s…%s", tc.name, msg, want, tc.kind)
		}
		if termtext.Safe(msg) != msg || strings.Contains(msg, string(tc.char)) {
			t.Errorf("CheckName(%q): the message holds the character raw: %q", tc.name, msg)
		}
		if err := CheckFileName(tc.name); err != nil {
			t.Errorf("CheckFileName(%q) = %v: a file of that name is read", tc.name, err)
		}
		if PrintableName(tc.name) {
			t.Errorf("PrintableName(%q) = true", tc.name)
		}
	}
	for _, ok := range []string{"alice", "a b", "ünïcode", "日本語", "e\u0301", "ناصر", "smile😀", "x_y+z@w", "a\ufffdb"} {
		if err := CheckName(ok); err != nil || !PrintableName(ok) {
			t.Errorf("CheckName(%q) = %v, PrintableName %v", ok, err, PrintableName(ok))
		}
		if r, pos, bad := FirstUnprintable(ok); bad {
			t.Errorf("FirstUnprintable(%q) = %U at %d", ok, r, pos)
		}
	}
	// A byte that is not UTF-8 is not shown as it is either (a file's
	// name may hold one: CheckFileName refuses it, a JWK member cannot),
	// though U+FFFD, which decoding makes of it, is printable: it is
	// told apart by its size.
	for _, tc := range []struct {
		name string
		pos  int
	}{{"a\xffb", 2}, {"\xc3", 1}, {"é\xe2\x80", 2}, {"ab\u200b\xff", 3}} {
		r, pos, bad := FirstUnprintable(tc.name)
		if !bad || pos != tc.pos || PrintableName(tc.name) {
			t.Errorf("FirstUnprintable(%q) = %U, %d, %v; want character %d", tc.name, r, pos, bad, tc.pos)
		}
	}
}

func TestEditFile(t *testing.T) {
	dir := t.TempDir()
	l := New(Config[string]{Home: dir, Sources: []Source{{Path: dir, Dir: true}}, Convert: fpConvert})
	a, b, c := key(t, 1), key(t, 2), key(t, 3)
	drop := func(k *jwk.Key) func(*jwk.Key) *jwk.Key {
		return func(x *jwk.Key) *jwk.Key {
			if x.Equal(k) {
				return nil
			}
			return x
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"set.json", keydirtest.JWK(t, a, b, c)}, {"bundle.pem", keydirtest.PEM(t, a, b, c)}} {
		p := filepath.Join(dir, f.name)
		keydirtest.Write(t, p, f.data)
		if removed, err := l.EditFile(p, drop(b)); err != nil || removed {
			t.Fatal(removed, err)
		}
		keys, err := jwk.ReadFile(p)
		if err != nil || len(keys) != 2 || !keys[0].Equal(a) || !keys[1].Equal(c) {
			t.Fatalf("%s: %v %v", f.name, keys, err)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v", f.name, fi.Mode())
		}
		l.EditFile(p, drop(a))
		if removed, err := l.EditFile(p, drop(c)); err != nil || !removed {
			t.Fatal(removed, err)
		}
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: an empty file must be removed", f.name)
		}
	}
	p := filepath.Join(dir, "ssh")
	keydirtest.Write(t, p, keydirtest.SSH(t, a, b))
	if _, err := l.EditFile(p, drop(a)); err == nil || !strings.Contains(err.Error(), "by hand") {
		t.Fatalf("OpenSSH rewrite: %v", err)
	}
}

// TestEditsRecorded: EditFile's removal of a file left with no key is
// recorded in the Edits open on a directory above it, named relative or
// not, and only there (not a sibling directory whose name it begins with,
// not once closed); a rewrite is no removal. (Found by store-txn-ops.txt:
// keytool -H home, relative, and the stores' absolute file names.) A
// CreateFile where no file was is recorded as the path's first edit; one
// where a file is fails and records nothing, and one after the process's
// own removal is not a first creation.
func TestEditsRecorded(t *testing.T) {
	dir := t.TempDir()
	k, k2 := key(t, 1), key(t, 2)
	sub, sibling := filepath.Join(dir, "m"), filepath.Join(dir, "m2")
	t.Chdir(dir)
	r, other := RecordEdits("m"), RecordEdits(sibling) // a home named relative, its files absolute
	defer other.Close()
	none := func(*jwk.Key) *jwk.Key { return nil }
	gone, kept, late := filepath.Join(sub, "a.d", "gone.json"), filepath.Join(sub, "a.d", "kept.json"), filepath.Join(sub, "a.d", "late.json")
	for _, p := range []string{gone, kept, late} {
		keydirtest.Write(t, p, keydirtest.JWK(t, k, k2))
	}
	l := New(Config[string]{Home: dir, Sources: []Source{{Path: filepath.Join(sub, "a.d"), Dir: true}}, Convert: fpConvert})
	if removed, err := l.EditFile(gone, none); err != nil || !removed {
		t.Fatal(removed, err)
	}
	if removed, err := l.EditFile(kept, func(x *jwk.Key) *jwk.Key {
		if x.Equal(k2) {
			return nil
		}
		return x
	}); err != nil || removed {
		t.Fatal(removed, err)
	}
	made := filepath.Join(sub, "a.d", "made.json")
	for _, p := range []string{made, gone} { // made: a free name; gone: freed by this process
		if err := CreateFile(p, []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := CreateFile(kept, []byte("{}"), 0o644); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("CreateFile over a file: %v", err)
	}
	r.Close()
	if err := RemoveFile(late); err != nil {
		t.Fatal(err)
	}
	if !r.Removed(gone) || r.Removed(kept) || r.Removed(late) || r.Removed(made) || other.Removed(gone) {
		t.Fatalf("removed: gone %v, kept %v, late %v, made %v, in the sibling %v; want only gone", r.Removed(gone), r.Removed(kept), r.Removed(late), r.Removed(made), other.Removed(gone))
	}
	if !r.CreatedFirst(made) || r.CreatedFirst(gone) || r.CreatedFirst(kept) || other.CreatedFirst(made) {
		t.Fatalf("created first: made %v, gone %v, kept %v, in the sibling %v; want only made", r.CreatedFirst(made), r.CreatedFirst(gone), r.CreatedFirst(kept), other.CreatedFirst(made))
	}
}

// A first load (no rows: every regular file listed is read unchecked)
// finds what a rescan of the same directory finds (pairing its listing
// with rows): the same files in the same order, the same problems — over
// some thousand files, with a link, a link to nothing, a directory, a
// FIFO, bad files and ignored names among them.
func TestFirstLoadIsARescan(t *testing.T) {
	dir := t.TempDir()
	keydirtest.Write(t, filepath.Join(dir, "0000.json"), keydirtest.JWK(t, key(t, 0)))
	rescanned := newLoader(Source{Path: dir, Dir: true})
	rescanned.Reload() // one file: the next reload is a rescan, not a first load
	n := 1124
	for i := 1; i < n; i++ {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("%04d.json", i)), keydirtest.JWK(t, key(t, i)))
	}
	keydirtest.Write(t, filepath.Join(dir, "0500-bad.json"), []byte("not a key\n"))
	keydirtest.Write(t, filepath.Join(dir, "0600.json~"), []byte("ignored\n"))
	keydirtest.Write(t, filepath.Join(dir, ".hidden.json"), []byte("ignored\n"))
	if err := os.Symlink("0001.json", filepath.Join(dir, "0700-link.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("missing.json", filepath.Join(dir, "0800-dangling.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "0900-sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	keydirtest.Mkfifo(t, filepath.Join(dir, "1000-fifo"), 0o644)

	first := newLoader(Source{Path: dir, Dir: true}).Reload()
	again := rescanned.Reload()
	names := func(s *Snapshot[string]) (files, problems []string) {
		for _, f := range s.Files() {
			files = append(files, f.Name()+" "+strings.Join(f.Items(), ","))
		}
		for _, p := range s.Problems {
			problems = append(problems, p.Error())
		}
		return files, problems
	}
	files, problems := names(first)
	wantFiles, wantProblems := names(again)
	if len(files) != n+1 || !slices.Equal(files, wantFiles) {
		t.Fatalf("a first load gave %d files, a rescan %d (want %d): first %v…, rescan %v…", len(files), len(wantFiles), n+1, files[:min(3, len(files))], wantFiles[:min(3, len(wantFiles))])
	}
	if len(problems) != 3 || !slices.Equal(problems, wantProblems) {
		t.Fatalf("a first load's problems:\n%s\na rescan's:\n%s", strings.Join(problems, "\n"), strings.Join(wantProblems, "\n"))
	}
}

// Past maxProblemsLogged new problems a snapshot logs a count, not a
// line each, and the same for problems resolved; the snapshot still
// holds every one. The revocation inputs are logged first, and those
// past the first lines counted on a line of their own, as an error.
func TestManyProblemsLoggedAsACount(t *testing.T) {
	dir, revs := t.TempDir(), t.TempDir()
	n := maxProblemsLogged + 5
	for i := range n {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("bad%02d.json", i)), []byte("{"))
	}
	for i := range maxProblemsLogged + 1 {
		keydirtest.Write(t, filepath.Join(revs, fmt.Sprintf("revoked%02d.json", i)), []byte("{"))
	}
	var buf syncBuffer
	l := New(Config[string]{Sources: []Source{{Path: dir, Dir: true}, {Path: revs, Dir: true, Revocation: true}}, Convert: fpConvert,
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	snap := l.Reload()
	out := buf.String()
	if len(snap.Problems) != n+maxProblemsLogged+1 || strings.Count(out, "\n") != maxProblemsLogged+2 ||
		strings.Count(out, `level=ERROR msg="revocation list unreadable`) != maxProblemsLogged ||
		!strings.Contains(out, `level=ERROR msg="more revocation lists unreadable: refusing every key until they are fixed" count=1`) ||
		!strings.Contains(out, `level=WARN msg="skipping more trust files and entries" count=25`) {
		t.Fatalf("%d problems logged as:\n%s", len(snap.Problems), out)
	}
	before := len(buf.String())
	for i := range n {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("bad%02d.json", i)), keydirtest.JWK(t, key(t, i)))
	}
	l.Reload()
	if out := buf.String()[before:]; strings.Count(out, `msg="trust file problem resolved"`) != maxProblemsLogged ||
		!strings.Contains(out, `msg="more trust file problems resolved" count=5`) || strings.Count(out, "\n") != maxProblemsLogged+1 {
		t.Fatalf("%d problems fixed, logged as:\n%s", n, out)
	}
}
