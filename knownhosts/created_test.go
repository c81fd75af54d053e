package knownhosts

import (
	"testing"

	"github.com/keytool/keytool/internal/keydir"
)

// TestNewPinsRecordedAsCreated: a pin, the first or one more beside it,
// is written through keydir.CreateFile, which records it as created
// where no file was: the store's mirror (internal/cli) refuses a
// command's new entry on a name the store has — freed by an rm -r of the
// mirror under way — by that record, and with a plain create-only write
// here it would not see the creation and write the new pin over the
// store's (TestStoreMirrorNameFreedDuringTheCommand).
func TestNewPinsRecordedAsCreated(t *testing.T) {
	const addr = "db.example:7443"
	home := t.TempDir()
	edits := keydir.RecordEdits(home)
	defer edits.Close()
	s := Load(HomeOptions(home))
	first, err := s.AddKey(addr, key(t, 1), AddNew)
	if err != nil {
		t.Fatal(err)
	}
	another, err := s.AddKey(addr, key(t, 2), AddAnother)
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{first, another} {
		if !edits.CreatedFirst(file) {
			t.Errorf("the pin %s: not recorded as created (keydir.CreateFile)", file)
		}
	}
}
