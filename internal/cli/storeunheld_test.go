package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadNoteQuotesWhy: a note's reason is printed as read (--list,
// --remove, HiddenEntryError), so one holding terminal controls — a
// mirror's note written over by hand, say — comes back quoted, as an
// entry's name does.
func TestReadNoteQuotesWhy(t *testing.T) {
	path := filepath.Join(t.TempDir(), unheldPrefix+"x")
	if err := os.WriteFile(path, []byte(`{"name":"bob.json","revision":7,"size":3,"why":"\u001b[2Jcleared"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	n, ok := readNote(path)
	if !ok {
		t.Fatal("readNote: no note")
	}
	if strings.ContainsRune(n.Why, 0x1b) || !strings.Contains(n.Why, `\x1b[2Jcleared`) {
		t.Errorf("Why = %q, want the escape quoted", n.Why)
	}
}
