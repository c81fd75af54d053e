package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// testSyncer is a syncer into a new home under dir, from the store
// "etcd://127.0.0.1:2379/p", writing its messages to out and errOut.
func testSyncer(t *testing.T, dir string) (s *syncer, out, errOut *bytes.Buffer) {
	t.Helper()
	out, errOut = &bytes.Buffer{}, &bytes.Buffer{}
	h := filepath.Join(dir, "mirror")
	if err := os.Mkdir(h, 0o700); err != nil {
		t.Fatal(err)
	}
	return &syncer{c: &cli{stdout: out, stderr: errOut}, home: home.Dir(h), store: "etcd://127.0.0.1:2379/p"}, out, errOut
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSyncManifestOutsideLayout: the manifest names the files sync may
// overwrite and remove; one naming a path out of the home's .d
// directories (hand-edited, corrupt) is refused whole, and nothing is
// removed or written.
func TestSyncManifestOutsideLayout(t *testing.T) {
	for _, rel := range []string{"../victim", "authorized_keys.d/../../victim", "authorized_keys.d/x/../../../victim", "pub_key.json", "revoked_keys.d/.hidden", "authorized_keys.d/"} {
		t.Run(rel, func(t *testing.T) {
			dir := t.TempDir()
			s, _, _ := testSyncer(t, dir)
			victim := filepath.Join(dir, "victim")
			if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
			m, _ := json.Marshal(syncManifest{Store: s.store, Files: map[string]string{rel: contentSum([]byte("precious"))}})
			if err := os.WriteFile(s.manifestPath(), m, 0o600); err != nil {
				t.Fatal(err)
			}
			alice := filepath.Join(dir, "alice.json")
			writePublicKey(t, alice, nil)
			_, err := s.mirror([]StoreEntry{{Kind: StoreAuthorized, Name: "alice.json", Value: readFile(t, alice), Revision: 2}}, syncAt{})
			if err == nil || !strings.Contains(err.Error(), "no file of sync's") {
				t.Fatalf("mirror with manifest entry %q: err = %v, want it refused", rel, err)
			}
			if got := string(readFile(t, victim)); got != "precious" {
				t.Fatalf("victim is %q", got)
			}
			if _, err := os.Stat(filepath.Join(string(s.home), "authorized_keys.d", "alice.json")); err == nil {
				t.Fatal("alice.json written despite a refused manifest")
			}
		})
	}
}

// TestSyncUnmirrorableRevocationRefusesAll: a revocation entry whose name
// is no file name makes the stores reading the store refuse every key; the
// mirror must not admit the key it holds (or any other) either.
func TestSyncUnmirrorableRevocationRefusesAll(t *testing.T) {
	dir := t.TempDir()
	s, _, errOut := testSyncer(t, dir)
	alice := filepath.Join(dir, "alice.json")
	writePublicKey(t, alice, nil)
	key := readFile(t, alice)
	kept, err := s.mirror([]StoreEntry{
		{Kind: StoreAuthorized, Name: "alice.json", Value: key, Revision: 2},
		{Kind: StoreRevoked, Name: ".hidden", Value: key, Revision: 3},
	}, syncAt{})
	if err != nil || kept != 1 {
		t.Fatalf("mirror: kept %d, err %v; want 1, nil", kept, err)
	}
	if !strings.Contains(errOut.String(), "revoked_keys/.hidden: not a file name: mirrored as") {
		t.Errorf("stderr: %s", errOut)
	}
	stdout, _, _ := runKeytool(t, "", "-H", string(s.home), "authorize", "--list")
	if regexp.MustCompile(`(?m)^alice +SHA256:\S+ +ok`).MatchString(stdout) {
		t.Fatalf("the mirror admits alice, revoked in the store under a bad name:\n%s", stdout)
	}
	// The entry renamed: the stand-in goes, the real revocation stays.
	kept, err = s.mirror([]StoreEntry{
		{Kind: StoreAuthorized, Name: "alice.json", Value: key, Revision: 2},
		{Kind: StoreRevoked, Name: "alice.json", Value: key, Revision: 4},
	}, syncAt{})
	if err != nil || kept != 0 {
		t.Fatalf("mirror: kept %d, err %v", kept, err)
	}
	des, _ := keyDirEntries(filepath.Join(string(s.home), "revoked_keys.d"))
	if len(des) != 1 || des[0].Name() != "alice.json" {
		t.Fatalf("revoked_keys.d holds %v", des)
	}
}

// TestSyncRevocationUnderASkippedName: a revocation whose name the
// stores reading the store take (keydir.CheckName) but a directory's
// loader skips (bob.tmp, bob.swp: a temporary file's) refuses its key, and
// that key only, as it does in the stores reading the store: it is
// written under a name of sync's, reported. (Found by review: it was
// mirrored as the stand-in that refuses every key.)
func TestSyncRevocationUnderASkippedName(t *testing.T) {
	dir := t.TempDir()
	s, _, errOut := testSyncer(t, dir)
	alice, bob := filepath.Join(dir, "alice.json"), filepath.Join(dir, "bob.json")
	writePublicKey(t, alice, nil)
	writePublicKey(t, bob, nil)
	kept, err := s.mirror([]StoreEntry{
		{Kind: StoreAuthorized, Name: "alice.json", Value: readFile(t, alice)},
		{Kind: StoreAuthorized, Name: "bob.json", Value: readFile(t, bob)},
		{Kind: StoreRevoked, Name: "bob.tmp", Value: readFile(t, bob)},
	}, syncAt{})
	if err != nil || kept != 1 {
		t.Fatalf("mirror: kept %d, err %v; want 1 (reported), nil", kept, err)
	}
	if !strings.Contains(errOut.String(), "revoked_keys/bob.tmp") || !strings.Contains(errOut.String(), "mirrored as") {
		t.Errorf("stderr: %s", errOut)
	}
	stdout, _, _ := runKeytool(t, "", "-H", string(s.home), "authorize", "--list")
	if !regexp.MustCompile(`(?m)^alice +SHA256:\S+ +ok`).MatchString(stdout) || !regexp.MustCompile(`(?m)^bob +SHA256:\S+ +revoked`).MatchString(stdout) {
		t.Fatalf("want alice admitted and bob revoked, as the stores reading the store say:\n%s", stdout)
	}
	// The entry gone: so is its file.
	if _, err := s.mirror([]StoreEntry{{Kind: StoreAuthorized, Name: "alice.json", Value: readFile(t, alice)}}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	if des, _ := keyDirEntries(filepath.Join(string(s.home), "revoked_keys.d")); len(des) != 0 {
		t.Fatalf("revoked_keys.d holds %v once the revocation is gone", des)
	}
}

// TestSyncTightensFirst: revocations are written, and the files of
// vanished authorizations removed, before any authorization is added, and
// a vanished revocation's file goes last: a program reading the home
// between two writes never admits a key the store refuses.
func TestSyncTightensFirst(t *testing.T) {
	dir := t.TempDir()
	s, out, _ := testSyncer(t, dir)
	var keys [4][]byte
	for i := range keys {
		p := filepath.Join(dir, "k"+string(rune('0'+i)))
		writePublicKey(t, p, nil)
		keys[i] = readFile(t, p)
	}
	if _, err := s.mirror([]StoreEntry{
		{Kind: StoreAuthorized, Name: "old.json", Value: keys[0]},
		{Kind: StoreRevoked, Name: "gone.json", Value: keys[1]},
	}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if _, err := s.mirror([]StoreEntry{
		{Kind: StoreAuthorized, Name: "a-new.json", Value: keys[2]},
		{Kind: StoreTrusted, Name: "host.json", Value: keys[2]},
		{Kind: StoreRevoked, Name: "z-new.json", Value: keys[3]},
	}, syncAt{}); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{
		"removed " + string(s.home) + "/authorized_keys.d/old.json",
		"wrote " + string(s.home) + "/revoked_keys.d/z-new.json",
		"wrote " + string(s.home) + "/authorized_keys.d/a-new.json",
		"wrote " + string(s.home) + "/trusted_hosts.d/host.json",
		"removed " + string(s.home) + "/revoked_keys.d/gone.json",
	}
	// The first two tighten, in either order.
	if len(got) != len(want) || !(got[0] == want[0] && got[1] == want[1] || got[0] == want[1] && got[1] == want[0]) || strings.Join(got[2:], "\n") != strings.Join(want[2:], "\n") {
		t.Fatalf("sync's steps:\n%s\nwant (the first two in any order):\n%s", out, strings.Join(want, "\n"))
	}
}

// TestMaterializeNameCollision: two entries that one file stands for (on
// a file system folding case, "Alice.json" and "alice.json") are refused
// before any command runs: otherwise the command sees one, and the
// write-back removes or overwrites the other (a revocation among them).
func TestMaterializeNameCollision(t *testing.T) {
	h := home.Dir(t.TempDir())
	_, err := materialize(h, []StoreEntry{
		{Kind: StoreRevoked, Name: "alice.json", Value: []byte("one"), Revision: 2},
		{Kind: StoreRevoked, Name: "alice.json", Value: []byte("two"), Revision: 3},
	}, false, 0)
	if err == nil || !strings.Contains(err.Error(), "same name on this file system") {
		t.Fatalf("materialize: %v", err)
	}
}

// TestSyncNameCollision: on a file system that folds case or normalizes
// Unicode, two entries (Bob.json, bob.json) would share one file; sync
// refuses the pair as the edit commands do (sameFileError's reason, exit
// 1): an authorization is not mirrored, a revocation is the stand-in that
// refuses every key, the safe side. No such file system can be made here,
// so the pair is two entries of one name, as in
// TestMaterializeNameCollision, on a home said to fold names. (Found by
// review: sync wrote both, the second over the first.)
func TestSyncNameCollision(t *testing.T) {
	dir := t.TempDir()
	alice, bob := filepath.Join(dir, "alice.json"), filepath.Join(dir, "bob.json")
	writePublicKey(t, alice, nil)
	writePublicKey(t, bob, nil)
	entries := func() []StoreEntry {
		return []StoreEntry{
			{Kind: StoreAuthorized, Name: "alice.json", Value: readFile(t, alice)},
			{Kind: StoreAuthorized, Name: "bob.json", Value: readFile(t, alice)},
			{Kind: StoreAuthorized, Name: "bob.json", Value: readFile(t, bob)},
			{Kind: StoreRevoked, Name: "carol.json", Value: readFile(t, bob)},
			{Kind: StoreRevoked, Name: "carol.json", Value: []byte("{}")},
		}
	}
	// On a file system that keeps names, nothing is looked for: every
	// entry's file is its own (a store has one entry of a name).
	s, _, errOut := testSyncer(t, dir)
	if _, err := s.mirror(entries()[:2], syncAt{}); err != nil || errOut.Len() != 0 {
		t.Fatalf("mirror: %v, stderr %s", err, errOut)
	}

	defer func(f func(home.Dir) bool) { syncExactNames = f }(syncExactNames)
	syncExactNames = func(home.Dir) bool { return false }
	s, _, errOut = testSyncer(t, t.TempDir())
	kept, err := s.mirror(entries(), syncAt{})
	if err != nil || kept != 4 {
		t.Fatalf("mirror: kept %d, err %v; want 4 (both of each pair reported), nil", kept, err)
	}
	for _, want := range []string{
		"authorized_keys/bob.json: " + sameFileName + ": not mirrored",
		"revoked_keys/carol.json: " + sameFileName + ": mirrored as ",
	} {
		if strings.Count(errOut.String(), want) != 2 {
			t.Errorf("stderr lacks %q twice:\n%s", want, errOut)
		}
	}
	if _, err := os.Lstat(filepath.Join(string(s.home), "authorized_keys.d", "bob.json")); err == nil {
		t.Error("bob.json written: one of two entries sharing the file")
	}
	stdout, _, _ := runKeytool(t, "", "-H", string(s.home), "authorize", "--list")
	if regexp.MustCompile(`(?m)^alice +SHA256:\S+ +ok`).MatchString(stdout) || strings.Contains(stdout, "bob") {
		t.Fatalf("want alice refused (carol's revocations refuse every key) and bob absent:\n%s", stdout)
	}
	des, _ := keyDirEntries(filepath.Join(string(s.home), "revoked_keys.d"))
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), "keytool-sync-unmirrorable-") {
			t.Errorf("revoked_keys.d holds %s, want the stand-in alone", de.Name())
		}
	}
}

// TestStoreURLPasswordNotEchoed: a password written into a --store URL
// (which no backend takes) is not printed back, in the terminal or a
// unit's log.
func TestStoreURLPasswordNotEchoed(t *testing.T) {
	for _, args := range [][]string{
		{"authorize", "--store", "etcd://root:hunter2@127.0.0.1:2379/p", "--list"},
		{"authorize", "--store", "etcd://root:hunter2@/p", "--list"},
		{"authorize", "--store", "etcd://root:hunter2@127.0.0.1:2379:x/p", "--list"},
		{"authorize", "--store", "zk://root:hunter2@127.0.0.1:2379/p", "--list"},
		{"sync", "etcd://root:hunter2@127.0.0.1:2379/p", "--to", t.TempDir()},
	} {
		stdout, stderr, code := runKeytool(t, "", append([]string{"-H", t.TempDir()}, args...)...)
		if code == 0 || strings.Contains(stdout+stderr, "hunter2") {
			t.Errorf("keytool %s: exit %d, output shows the password:\n%s%s", strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

// TestSyncBlockedRevocationStillEnforced: a revocation whose file name is
// taken by a file sync may not touch (an administrator's, or one changed
// since) is left as it is and reported, and still enforced: written under
// a name of sync's, removed once the name is free again.
func TestSyncBlockedRevocationStillEnforced(t *testing.T) {
	dir := t.TempDir()
	s, _, errOut := testSyncer(t, dir)
	alice, other := filepath.Join(dir, "alice.json"), filepath.Join(dir, "other.json")
	writePublicKey(t, alice, nil)
	writePublicKey(t, other, nil)
	key := readFile(t, alice)
	mine := filepath.Join(string(s.home), "revoked_keys.d", "bob.json")
	if err := os.MkdirAll(filepath.Dir(mine), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mine, readFile(t, other), 0o644); err != nil {
		t.Fatal(err)
	}
	entries := []StoreEntry{
		{Kind: StoreAuthorized, Name: "alice.json", Value: key},
		{Kind: StoreRevoked, Name: "bob.json", Value: key},
	}
	kept, err := s.mirror(entries, syncAt{})
	if err != nil || kept != 1 {
		t.Fatalf("mirror: kept %d, err %v; want 1, nil", kept, err)
	}
	if !strings.Contains(errOut.String(), "was not written by sync") || !strings.Contains(errOut.String(), "mirrored as") {
		t.Errorf("stderr: %s", errOut)
	}
	if !bytes.Equal(readFile(t, mine), readFile(t, other)) {
		t.Fatal("the administrator's file was overwritten")
	}
	stdout, _, _ := runKeytool(t, "", "-H", string(s.home), "authorize", "--list")
	if !regexp.MustCompile(`(?m)^alice +SHA256:\S+ +revoked`).MatchString(stdout) {
		t.Fatalf("alice, revoked in the store, is not revoked in the mirror:\n%s", stdout)
	}
	// The name free again: the revocation takes it, the stand-in goes.
	if err := os.Remove(mine); err != nil {
		t.Fatal(err)
	}
	if kept, err := s.mirror(entries, syncAt{}); err != nil || kept != 0 {
		t.Fatalf("mirror: kept %d, err %v", kept, err)
	}
	des, _ := keyDirEntries(filepath.Dir(mine))
	if len(des) != 1 || des[0].Name() != "bob.json" {
		t.Fatalf("revoked_keys.d holds %v", des)
	}
}

// TestSyncKeepsOthersRevocations: a revocation file sync did not write
// stays, even when it holds the very bytes of an entry that then goes
// from the store: sync never removes a revocation it did not write.
func TestSyncKeepsOthersRevocations(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := testSyncer(t, dir)
	alice := filepath.Join(dir, "alice.json")
	writePublicKey(t, alice, nil)
	mine := filepath.Join(string(s.home), "revoked_keys.d", "alice.json")
	if err := os.MkdirAll(filepath.Dir(mine), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mine, readFile(t, alice), 0o644); err != nil {
		t.Fatal(err)
	}
	if kept, err := s.mirror([]StoreEntry{{Kind: StoreRevoked, Name: "alice.json", Value: readFile(t, alice)}}, syncAt{}); err != nil || kept != 0 {
		t.Fatalf("mirror: kept %d, err %v", kept, err)
	}
	if kept, err := s.mirror(nil, syncAt{}); err != nil || kept != 0 {
		t.Fatalf("mirror: kept %d, err %v", kept, err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Fatalf("the administrator's revocation was removed: %v", err)
	}
}

// TestSyncNeverWritesPrivateKeys: the home's .d files are readable by
// everyone, so an entry holding a private key (an admin's mistaken put, in
// JWK or PEM) is not mirrored: an authorization is left out, reported; a
// revocation is still enforced by a stand-in that refuses every key. No
// file sync writes holds the private key.
func TestSyncNeverWritesPrivateKeys(t *testing.T) {
	dir := t.TempDir()
	s, _, errOut := testSyncer(t, dir)
	var private [][]byte
	for _, f := range []jwk.Format{jwk.JWK, jwk.PEM} {
		k, err := jwk.Generate(jwk.EC256)
		if err != nil {
			t.Fatal(err)
		}
		b, err := k.MarshalPrivate(f)
		if err != nil {
			t.Fatal(err)
		}
		private = append(private, b)
	}
	kept, err := s.mirror([]StoreEntry{
		{Kind: StoreAuthorized, Name: "alice.json", Value: private[0], Revision: 2},
		{Kind: StoreAuthorized, Name: "bob.pem", Value: private[1], Revision: 3},
		{Kind: StoreRevoked, Name: "carol.json", Value: private[0], Revision: 4},
	}, syncAt{})
	if err != nil || kept != 3 {
		t.Fatalf("mirror: kept %d, err %v; want 3, nil", kept, err)
	}
	for _, want := range []string{"authorized_keys/alice.json: holds a private key: not mirrored", "authorized_keys/bob.pem: holds a private key: not mirrored", "revoked_keys/carol.json: holds a private key: mirrored as"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	err = filepath.WalkDir(string(s.home), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b := readFile(t, path); valueHoldsPrivateKey(b) || bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a private key", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	des, _ := keyDirEntries(filepath.Join(string(s.home), "revoked_keys.d"))
	if len(des) != 1 || !strings.HasPrefix(des[0].Name(), "keytool-sync-unmirrorable-") {
		t.Fatalf("revoked_keys.d holds %v, want the stand-in alone", des)
	}
}

// TestSyncOversizedEntryGrantsNothing: an entry larger than the store's
// live view takes (etcd's Options.MaxValue) grants nothing to the stores
// reading the store, and under revoked_keys refuses every key there; a
// file that large the home's loader takes, so sync must not mirror it as
// it is. (Found by review: sync wrote it, and the mirror admitted an
// authorization the store's readers ignore.)
func TestSyncOversizedEntryGrantsNothing(t *testing.T) {
	dir := t.TempDir()
	s, _, errOut := testSyncer(t, dir)
	s.maxValue = 4096
	alice, bob := filepath.Join(dir, "alice.json"), filepath.Join(dir, "bob.json")
	writePublicKey(t, alice, nil)
	writePublicKey(t, bob, nil)
	big := func(path string) []byte { // the key, then spaces past the bound: still a key file
		return append(readFile(t, path), bytes.Repeat([]byte(" "), s.maxValue)...)
	}
	// bob's authorization, mirrored, then made too large: its file goes.
	kept, err := s.mirror([]StoreEntry{
		{Kind: StoreAuthorized, Name: "alice.json", Value: readFile(t, alice)},
		{Kind: StoreAuthorized, Name: "bob.json", Value: readFile(t, bob)},
	}, syncAt{})
	if err != nil || kept != 0 {
		t.Fatalf("mirror: kept %d, err %v; want 0, nil", kept, err)
	}
	kept, err = s.mirror([]StoreEntry{
		{Kind: StoreAuthorized, Name: "alice.json", Value: readFile(t, alice)},
		{Kind: StoreAuthorized, Name: "bob.json", Value: big(bob)},
	}, syncAt{})
	if err != nil || kept != 1 {
		t.Fatalf("mirror: kept %d, err %v; want 1 (reported), nil", kept, err)
	}
	if want := fmt.Sprintf("authorized_keys/bob.json: %d bytes, more than the 4096 an entry may hold: not mirrored", len(big(bob))); !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
	if _, err := os.Stat(filepath.Join(string(s.home), "authorized_keys.d", "bob.json")); err == nil {
		t.Fatal("bob.json written: the mirror admits an entry the store's readers ignore")
	}
	stdout, _, _ := runKeytool(t, "", "-H", string(s.home), "authorize", "--list")
	if !regexp.MustCompile(`(?m)^alice +SHA256:\S+ +ok`).MatchString(stdout) || strings.Contains(stdout, "bob") {
		t.Fatalf("want alice admitted and bob absent:\n%s", stdout)
	}
	// An oversized revocation: every key refused, as the readers do.
	kept, err = s.mirror([]StoreEntry{
		{Kind: StoreAuthorized, Name: "alice.json", Value: readFile(t, alice)},
		{Kind: StoreRevoked, Name: "bob.json", Value: big(bob)},
	}, syncAt{})
	if err != nil || kept != 1 {
		t.Fatalf("mirror: kept %d, err %v; want 1 (reported), nil", kept, err)
	}
	if !strings.Contains(errOut.String(), "revoked_keys/bob.json: ") || !strings.Contains(errOut.String(), "which refuses every key") {
		t.Errorf("stderr: %s", errOut)
	}
	des, _ := keyDirEntries(filepath.Join(string(s.home), "revoked_keys.d"))
	if len(des) != 1 || !strings.HasPrefix(des[0].Name(), "keytool-sync-unmirrorable-") {
		t.Fatalf("revoked_keys.d holds %v, want the stand-in alone", des)
	}
	stdout, _, _ = runKeytool(t, "", "-H", string(s.home), "authorize", "--list")
	if regexp.MustCompile(`(?m)^alice +SHA256:\S+ +ok`).MatchString(stdout) {
		t.Fatalf("the mirror admits alice while an oversized revocation refuses every key in the store's readers:\n%s", stdout)
	}
}

// TestSyncQuotesNames: sync's report shows an entry's name quoted where
// it holds what a terminal acts on — a name that is no file name may hold
// a newline or a terminal's escape, that forge a line of sync's or drive
// the terminal; a name the home's loader skips (NAME.tmp) is a file name,
// and may still hold a bidi control (U+202E, which CheckName lets
// through) that reorders the report's line. (Found by review: each was
// printed as it was.)
func TestSyncQuotesNames(t *testing.T) {
	for _, tc := range []struct {
		what, name, raw, says string
	}{
		{"forged", "x\x1b[2K\rkeytool sync: wrote everything\n", "\x1b\r", "not a file name"},
		{"skipped", "bob\u202enosj.tmp", "\u202e", "a name the home's stores skip"},
	} {
		t.Run(tc.what, func(t *testing.T) {
			dir := t.TempDir()
			s, _, errOut := testSyncer(t, dir)
			alice := filepath.Join(dir, "alice.json")
			writePublicKey(t, alice, nil)
			if _, err := s.mirror([]StoreEntry{
				{Kind: StoreAuthorized, Name: tc.name, Value: readFile(t, alice)},
				{Kind: StoreRevoked, Name: tc.name, Value: readFile(t, alice)},
			}, syncAt{}); err != nil {
				t.Fatal(err)
			}
			out := errOut.String()
			if strings.ContainsAny(out, tc.raw) || strings.Count(out, "\n") != 2 {
				t.Fatalf("the name reached the report as it is:\n%q", out)
			}
			for _, kind := range []string{StoreAuthorized, StoreRevoked} {
				if want := kind + "/" + strconv.Quote(tc.name) + ": " + tc.says; !strings.Contains(out, want) {
					t.Errorf("report lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestSyncRefusesAHomeTheRuleRefuses: sync writes nothing into a home
// another user owns (uid 65534 here) or may write — where its .d
// directories may be their links to another home's, which would then
// trust the store's entries — as the stores' edits refuse it
// (keydir.Loader.MakeDir). Before, a first sync (no manifest yet, whose
// read checks the home) wrote every entry there (found by review).
func TestSyncRefusesAHomeTheRuleRefuses(t *testing.T) {
	dir := t.TempDir()
	s, _, _ := testSyncer(t, dir)
	alice := filepath.Join(dir, "alice.json")
	writePublicKey(t, alice, nil)
	if err := os.Chown(string(s.home), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := s.mirror([]StoreEntry{{Kind: StoreAuthorized, Name: "alice.json", Value: readFile(t, alice), Revision: 2}}, syncAt{})
	var pe *trustfile.PermissionError
	if !errors.As(err, &pe) || pe.Path != string(s.home) {
		t.Fatalf("mirror into a home of uid 65534: %v; want a *trustfile.PermissionError naming it", err)
	}
	if des, _ := os.ReadDir(filepath.Join(string(s.home), "authorized_keys.d")); len(des) > 0 {
		t.Fatalf("written: %v", des)
	}
	if err := os.Chown(string(s.home), 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.mirror([]StoreEntry{{Kind: StoreAuthorized, Name: "alice.json", Value: readFile(t, alice), Revision: 2}}, syncAt{}); err != nil {
		t.Fatalf("mirror into the admin's home: %v", err)
	}
}

// TestSyncQuotesWrittenPaths: a name that is a file name may still hold a
// bidi control (U+202E, which CheckName lets through), so that the path
// of the file sync writes for it, removes, or leaves as it is holds one
// too; each line that names the file shows the path quoted, or a store
// could reorder sync's report of what it did to the home ("wrote …/bob
// U+202E nosj.json" shows as "…/bobjson.son"). (Found by review: wrote,
// updated, removed and the files left as they are were printed as they
// were, where the store's names alone were quoted.)
func TestSyncQuotesWrittenPaths(t *testing.T) {
	dir := t.TempDir()
	s, out, errOut := testSyncer(t, dir)
	alice, bob := filepath.Join(dir, "alice.json"), filepath.Join(dir, "bob.json")
	writePublicKey(t, alice, nil)
	writePublicKey(t, bob, nil)
	name := "bob\u202enosj.json"
	entries := func(key string) []StoreEntry {
		return []StoreEntry{
			{Kind: StoreAuthorized, Name: name, Value: readFile(t, key)},
			{Kind: StoreRevoked, Name: name, Value: readFile(t, key)},
		}
	}
	// Written, updated, then a file sync did not write left as it is and
	// the other removed.
	if _, err := s.mirror(entries(alice), syncAt{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.mirror(entries(bob), syncAt{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(string(s.home), "authorized_keys.d", name), []byte("by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.mirror(nil, syncAt{}); err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"stdout": out.String(), "stderr": errOut.String()} {
		if strings.Contains(text, "\u202e") {
			t.Errorf("the path reached %s as it is:\n%q", what, text)
		}
	}
	for _, want := range []string{
		"wrote " + strconv.Quote(filepath.Join(string(s.home), "authorized_keys.d", name)),
		"updated " + strconv.Quote(filepath.Join(string(s.home), "revoked_keys.d", name)),
		"removed " + strconv.Quote(filepath.Join(string(s.home), "revoked_keys.d", name)),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %s:\n%s", want, out)
		}
	}
	if want := strconv.Quote(filepath.Join(string(s.home), "authorized_keys.d", name)) + " is gone from the store"; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr lacks %s:\n%s", want, errOut)
	}
}
