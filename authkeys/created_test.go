package authkeys

import (
	"testing"

	"github.com/keytool/keytool/internal/keydir"
)

// TestNewEntriesRecordedAsCreated: an authorization added under a free
// name and a revocation are written through keydir.CreateFile, which
// records each as created where no file was: the store's mirror
// (internal/cli) refuses a command's new entry on a name the store has —
// freed by an rm -r of the mirror under way — by that record, and with a
// plain create-only write here it would not see the creation and write
// the new entry over the store's (TestStoreMirrorNameFreedDuringTheCommand).
func TestNewEntriesRecordedAsCreated(t *testing.T) {
	home := t.TempDir()
	edits := keydir.RecordEdits(home)
	defer edits.Close()
	s := Load(HomeOptions(home))
	e, err := s.Add(key(t, 1), "alice", AddNew)
	if err != nil {
		t.Fatal(err)
	}
	revoked, err := s.Revoke(key(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	for what, file := range map[string]string{"the authorization": e.File, "the revocation": revoked} {
		if !edits.CreatedFirst(file) {
			t.Errorf("%s %s: not recorded as created (keydir.CreateFile)", what, file)
		}
	}
}
