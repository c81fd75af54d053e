package cli

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSeedsNameRealTests: every test docs/seeds.md cites in its Test
// column — a Go test (TestX, or pkg.TestX) or a testscript (name.txt) —
// exists, so that the tables cannot point at a test that was renamed or
// never written. A name ending in "…" is a prefix.
func TestSeedsNameRealTests(t *testing.T) {
	data, err := os.ReadFile("../../docs/seeds.md")
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func (Test\w+|Example\w*)\(`)
	err = filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && strings.HasPrefix(d.Name(), ".") && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
			funcs[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := regexp.MustCompile("`(?:[a-z/]+\\.)?(Test\\w+)(…)?`|`([\\w-]+\\.txt)`")
	n := 0
	for i, line := range strings.Split(string(data), "\n") {
		cols := strings.Split(line, " | ")
		if !strings.HasPrefix(line, "| ") || len(cols) < 3 {
			continue
		}
		for _, m := range cited.FindAllStringSubmatch(cols[len(cols)-1], -1) {
			n++
			switch {
			case m[3] != "":
				if _, err := os.Stat(filepath.Join("testdata", "script", m[3])); err != nil {
					t.Errorf("docs/seeds.md:%d cites %s, which is not a testscript of testdata/script", i+1, m[3])
				}
			case m[2] != "":
				found := false
				for name := range funcs {
					found = found || strings.HasPrefix(name, m[1])
				}
				if !found {
					t.Errorf("docs/seeds.md:%d cites %s…, which no test starts with", i+1, m[1])
				}
			case !funcs[m[1]]:
				t.Errorf("docs/seeds.md:%d cites %s, which no _test.go declares", i+1, m[1])
			}
		}
	}
	if n < 100 {
		t.Errorf("docs/seeds.md cites %d tests; the tables seem not to have been read", n)
	}
}
