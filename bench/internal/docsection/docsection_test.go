package docsection

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSplice: the text between the markers is replaced and the rest kept;
// a document without them gets them at its end.
func TestSplice(t *testing.T) {
	doc := filepath.Join(t.TempDir(), "doc.md")
	if err := os.WriteFile(doc, []byte("# T\n\nprose\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"one\n", "two\n"} {
		if err := Splice(doc, "<!-- b -->", "<!-- e -->", section); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := os.ReadFile(doc)
	if want := "# T\n\nprose\n\n<!-- b -->\ntwo\n<!-- e -->\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
