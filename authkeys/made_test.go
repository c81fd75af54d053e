package authkeys

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// TestMadeEntryFollowsItsFile: the Entry a handshake made is kept for the
// next handshake only while its file is the same. A file rewritten, a
// file number given to another file after a removal, and a rebuild that
// numbers every file anew must each give the Entry of the file now there
// — never the one made before (madeEntries is the store's, by file
// number, and outlives snapshots).
func TestMadeEntryFollowsItsFile(t *testing.T) {
	opts := HomeOptions(t.TempDir())
	dir := opts.Dirs[0]
	write := func(name string, n int, comment string) {
		keydirtest.Write(t, filepath.Join(dir, name+".json"), keydirtest.JWK(t, keydirtest.WithAttrs(key(t, n), "comment", comment)))
	}
	s := Load(opts)
	defer s.Close()
	decide := func(n int) *Entry {
		t.Helper()
		d := s.Decide(key(t, n).SPKIHash(), netip.Addr{})
		if d.Verdict != Authorized {
			t.Fatalf("key %d: %v", n, d.Err)
		}
		return d.Entry
	}
	// Enough files that one change is an update of the index, not a rebuild.
	for i := range 80 {
		write(fmt.Sprintf("k%02d", i), 10+i, "filler")
	}
	write("alice", 1, "v0")
	write("bob", 2, "bob's")
	s.Reload()
	if e := decide(1); e.Comment != "v0" || decide(1) != e {
		t.Fatalf("alice: %+v, or a second Entry for the same file", e)
	}
	decide(2)

	old, alice := s.snap.Load(), key(t, 1).SPKIHash()
	write("alice", 1, "v1") // rewritten: a new File
	s.Reload()
	// A handshake still deciding on the snapshot before puts the old
	// file's Entry back under the number the new file may have.
	if s.made.entry(old.files, old.keys.lookup(&alice)).Comment != "v0" {
		t.Fatal("the old snapshot's Entry is not the old file's")
	}
	if e := decide(1); e.Comment != "v1" {
		t.Fatalf("alice after her file changed: comment %q, want v1", e.Comment)
	}

	// bob's number is freed and given to carol's file, of another key.
	updates := s.updates
	os.Remove(filepath.Join(dir, "bob.json"))
	write("carol", 3, "carol's")
	s.Reload()
	if s.updates == updates {
		t.Fatal("the change rebuilt the index: the test does not reach a number given again")
	}
	if e := decide(3); e.Name != "carol" || e.Comment != "carol's" {
		t.Fatalf("carol: %+v", e)
	}
	if d := s.Decide(key(t, 2).SPKIHash(), netip.Addr{}); d.Verdict != Unknown {
		t.Fatalf("bob after his file went: %v", d.Verdict)
	}

	// Most files changed: a rebuild, every file numbered anew.
	rebuilds := s.rebuilds
	for i := range 80 {
		write(fmt.Sprintf("k%02d", i), 10+i, "changed")
	}
	s.Reload()
	if s.rebuilds == rebuilds {
		t.Fatal("no rebuild")
	}
	for i := range 80 {
		if e := decide(10 + i); e.Comment != "changed" || e.Name != fmt.Sprintf("k%02d", i) {
			t.Fatalf("after the rebuild, key %d: %+v", 10+i, e)
		}
	}
	if e := decide(1); e.Comment != "v1" || e.Name != "alice" {
		t.Fatalf("alice after the rebuild: %+v", e)
	}
}

// eightyKeys is a store of 80 files of a key each, k00.json (key 10) to
// k79.json (key 89): enough that one file's removal is an update of the
// index, not a rebuild.
func eightyKeys(t *testing.T) (*Store, string) {
	opts := HomeOptions(t.TempDir())
	dir := opts.Dirs[0]
	for i := range 80 {
		keydirtest.Write(t, filepath.Join(dir, fmt.Sprintf("k%02d.json", i)), keydirtest.JWK(t, key(t, 10+i)))
	}
	s := Load(opts)
	t.Cleanup(func() { s.Close() })
	return s, dir
}

// removeKey10 removes eightyKeys' k00.json and reloads, as an update.
func removeKey10(t *testing.T, s *Store, dir string) {
	t.Helper()
	updates := s.updates
	os.Remove(filepath.Join(dir, "k00.json"))
	s.Reload()
	if s.updates == updates {
		t.Fatal("the removal rebuilt the index")
	}
}

// TestMadeEntriesForgottenWithTheirFile: the Entries made for a file that
// leaves the store are dropped with it, so that they do not keep its
// memory (a JWK Set of 50,000 keys) until its number is given again.
func TestMadeEntriesForgottenWithTheirFile(t *testing.T) {
	s, dir := eightyKeys(t)
	sum := key(t, 10).SPKIHash()
	if d := s.Decide(sum, netip.Addr{}); d.Verdict != Authorized {
		t.Fatal(d.Err)
	}
	r := s.snap.Load().keys.lookup(&sum)
	if s.made.slot(r.file).Load() == nil {
		t.Fatal("no Entry kept for the key decided")
	}
	removeKey10(t, s, dir)
	if fm := s.made.slot(r.file).Load(); fm != nil {
		t.Fatalf("the Entries of a file that went are kept: %+v", fm)
	}
}

// TestMadeEntriesOfAnOldSnapshotNotKept: a handshake still deciding on
// the snapshot before a file's removal, which makes the file's Entry
// after the reload dropped the Entries of the files gone, must not keep
// it: it would hold the removed file's memory until its number is given
// to another file, and a stream of such races would grow with the files
// removed, not the clients seen.
func TestMadeEntriesOfAnOldSnapshotNotKept(t *testing.T) {
	s, dir := eightyKeys(t)
	sum := key(t, 10).SPKIHash()
	old := s.snap.Load()
	r := old.keys.lookup(&sum)
	if r.file == 0 {
		t.Fatal("key 10 is not in the store")
	}
	removeKey10(t, s, dir)
	// The handshake on the old snapshot decides now: it has its Entry...
	if e := s.made.entry(old.files, r); e.SPKIHash != sum {
		t.Fatalf("the old snapshot's handshake got %+v", e)
	}
	// ...and the store keeps nothing of the file that went.
	if fm := s.made.slot(r.file).Load(); fm != nil {
		t.Fatalf("the Entries of a file that went are kept by a handshake on the snapshot before: %+v", fm)
	}
	// A key still held is kept as before.
	kept := key(t, 11).SPKIHash()
	if d := s.Decide(kept, netip.Addr{}); d.Verdict != Authorized {
		t.Fatal(d.Err)
	}
	if r := s.snap.Load().keys.lookup(&kept); s.made.slot(r.file).Load() == nil {
		t.Fatal("no Entry kept for a key of the current snapshot")
	}
}

// TestMadeEntriesGrowWithClients: the first handshake of a key of a big
// JWK Set keeps its Entry without a place for an Entry of every key of
// the set — memory that would grow with the keys held, not the clients
// seen, and pointers the collector reads at every collection, which
// items without pointers exist to spare it (madeEntries).
func TestMadeEntriesGrowWithClients(t *testing.T) {
	const n = 100_000
	items := make([]item, n)
	for i := range items {
		items[i].sum = sha256.Sum256(binary.LittleEndian.AppendUint32(nil, uint32(i)))
	}
	set := keydir.NewDirFile("/keys", "set.json", 0, items, nil)
	one := keydir.NewDirFile("/keys", "one.json", 0, items[:1], nil)
	var m madeEntries
	files := keydir.SnapshotOf(one, set)
	m.entry(files, ref{1, 0}) // the page of file numbers, 32 KiB, made beforehand
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	e := m.entry(files, ref{2, 12345})
	runtime.ReadMemStats(&after)
	if e.SPKIHash != items[12345].sum || e.Name != "set" {
		t.Fatalf("entry %+v", e)
	}
	if m.entry(files, ref{2, 12345}) != e {
		t.Fatal("the Entry is not kept")
	}
	// 8 bytes a key (a pointer for each) would be 800,000.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > n {
		t.Fatalf("the first Entry of a set of %d keys allocated %d bytes, more than a byte a key", n, grew)
	}
	// Each key's own Entry, at the ends of chunks and of the set too.
	for _, pos := range []uint32{0, 1, 63, 64, 12344, 12346, n - 1} {
		if e := m.entry(files, ref{2, pos}); e.SPKIHash != items[pos].sum || m.entry(files, ref{2, pos}) != e {
			t.Fatalf("position %d: %+v, or not kept", pos, e)
		}
	}
}

// TestMadeEntryTellsANumberGivenAgain: a number freed by a removal and
// given to the next file that comes has its generation counted up, and
// the Entries kept under the number are told apart by it
// (madeEntries.entry compares generations, not *File pointers, which a
// file of one key is to have none of its own: docs/design.md, "Memory of
// a loaded store", step 5). A handshake still deciding on the snapshot
// of the file that had the number gets that file's Entry, never the
// newcomer's, and the newcomer's handshakes never get the other's.
func TestMadeEntryTellsANumberGivenAgain(t *testing.T) {
	s, dir := eightyKeys(t)
	gone := key(t, 10).SPKIHash()
	if d := s.Decide(gone, netip.Addr{}); d.Verdict != Authorized {
		t.Fatal(d.Err)
	}
	old := s.snap.Load()
	r := old.keys.lookup(&gone)
	removeKey10(t, s, dir)
	keydirtest.Write(t, filepath.Join(dir, "newcomer.json"), keydirtest.JWK(t, key(t, 5)))
	s.Reload()
	came := key(t, 5).SPKIHash()
	sn := s.snap.Load()
	now := sn.keys.lookup(&came)
	if now.file != r.file {
		t.Fatalf("the newcomer is numbered %d, not %d, the number of the file that went: the test does not reach a number given again", now.file, r.file)
	}
	if sn.files.GenAt(now.file) == old.files.GenAt(r.file) {
		t.Fatalf("number %d given again with its generation %d unchanged", now.file, sn.files.GenAt(now.file))
	}
	d := s.Decide(came, netip.Addr{})
	if d.Verdict != Authorized || d.Entry.Name != "newcomer" {
		t.Fatalf("the newcomer: %v %+v", d.Verdict, d.Entry)
	}
	if e := s.made.entry(old.files, r); e.SPKIHash != gone || e.Name != "k00" {
		t.Fatalf("a handshake on the snapshot before got %+v, not k00's Entry", e)
	}
	if again := s.Decide(came, netip.Addr{}); again.Entry.SPKIHash != came || again.Entry.Name != "newcomer" {
		t.Fatalf("the newcomer after a handshake on the snapshot before: %+v", again.Entry)
	}
}
