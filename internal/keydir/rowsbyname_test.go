package keydir

import (
	"path/filepath"
	"strconv"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// The table of rows by name finds every row the search of the sorted
// list finds — single-key files kept without a File (their names in the
// numbers' mapped pages), a file of two keys (a File of its own), a file
// that failed to parse (a row with no number, its name in its rare
// part), across several chunks — and no row for a name that has none.
func TestRowsByNameFindsWhatTheSearchFinds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authorized_keys.d")
	var names []string
	for n := range 2*chunkLen + 100 { // three chunks
		name := "k" + strconv.Itoa(n) + ".json"
		keydirtest.Write(t, filepath.Join(dir, name), keydirtest.JWK(t, key(t, n)))
		names = append(names, name)
	}
	keydirtest.Write(t, filepath.Join(dir, "set.jwk"), keydirtest.JWK(t, key(t, 1000), key(t, 1001)))
	keydirtest.Write(t, filepath.Join(dir, "broken.json"), []byte("{not json"))
	names = append(names, "set.jwk", "broken.json")
	l := newLeanLoader(Source{Path: dir, Dir: true})
	t.Cleanup(func() { l.Close() })
	l.Reload()
	snap, nameAt := l.Snapshot(), l.states[0].nameAt
	files := snap.rows[0]
	if len(files.chunks) < 3 {
		t.Fatalf("%d chunks, want three or more", len(files.chunks))
	}
	table := newRowsByName(files, &snap.numbers, nameAt)
	rare := 0
	for _, name := range names {
		want := lookupRow(files, &snap.numbers, nameAt, name)
		got := table.lookup(name)
		if want == nil || got == nil || *got != *want {
			t.Fatalf("%s: the table found %v, the search %v", name, got, want)
		}
		if got.num == 0 {
			rare++
		}
	}
	if rare == 0 {
		t.Errorf("no row without a number among the files: broken.json's was meant to be one")
	}
	for _, name := range []string{"k9999.json", "k1.jso", "", "zzz", "K1.json"} {
		if got := table.lookup(name); got != nil {
			t.Errorf("%q: the table found a row: %v", name, got)
		}
	}
}
