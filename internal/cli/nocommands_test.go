package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// keytoolAdvice matches a keytool command (any of this command line's),
// or a command-line flag, spelled in a string.
func keytoolAdvice() *regexp.Regexp {
	var names []string
	for name := range newCommands() {
		names = append(names, regexp.QuoteMeta(name))
	}
	return regexp.MustCompile(`\bkeytool( -[-\w]+( \S+)?)* (` + strings.Join(names, "|") + `)\b|(^|[^\w-])--[a-z]`)
}

// TestNoCommandsOutsideTheCommandLine: no package of the module but this
// one names a keytool command or flag in a string — errors, log messages,
// bodies for remote clients. What to run is the command line's to say,
// with the user's own -H and -i (advice*.go); a library used by another
// program must not tell its users to run a tool they may not have
// (docs/design.md, "Errors carry data; the command line speaks").
func TestNoCommandsOutsideTheCommandLine(t *testing.T) {
	advice := keytoolAdvice()
	if !advice.MatchString("run: keytool -H /etc/keytool authorize --name X") || !advice.MatchString("keytool trust-host") {
		t.Fatal("the pattern misses a command")
	}
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch rel {
			case "cmd", "internal/cli", "etcd/cmd", "bench", "examples", "testdata", ".git":
				return filepath.SkipDir // the command line, and modules or data of their own
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		checked++
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && advice.MatchString(s) {
				t.Errorf("%s: a string names a keytool command or flag: %q", fset.Position(lit.Pos()), s)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked %d files: the walk missed the module", checked)
	}
}
