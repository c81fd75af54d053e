package keydir

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
)

// A file another writer adds while a temporary file is being filled is
// another's change: CreateFile's chain breaks (made != filled), and so
// does CreateFiles' (found by review: CreateAll's first form bracketed
// the making and the fill as one change, without its steps).
func TestForeignChangeDuringFillBreaksTheChain(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(dir string) error
	}{
		{"CreateFile", func(dir string) error { return CreateFile(filepath.Join(dir, "a.json"), []byte("{}"), 0o644) }},
		{"CreateFiles", func(dir string) error {
			return CreateFiles([]string{filepath.Join(dir, "a.json")}, [][]byte{[]byte("{}")}, 0o644)[0]
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, done := watchWrites(dir)
			defer done()
			foreign := false
			old := atomicfile.Hook
			t.Cleanup(func() { atomicfile.Hook = old })
			atomicfile.Hook = func(step, path string) {
				if step == atomicfile.StepCreated && !foreign {
					foreign = true // another writer, between the making and the fill
					if err := os.WriteFile(filepath.Join(dir, "other.json"), []byte("{}"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := tc.write(dir); err != nil {
				t.Fatal(err)
			}
			if !w.broken {
				t.Errorf("%s: another writer's file, added while the temporary file was filled, taken as this process's own (chain not broken)", tc.name)
			}
		})
	}
}
