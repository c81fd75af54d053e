package proxy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// keytoolCommand matches a keytool command or a flag spelled in a string.
var keytoolCommand = regexp.MustCompile(`\bkeytool [a-z-]+|(^|[^\w-])--[a-z]`)

// TestNoKeytoolCommands: the package's strings — errors, log messages —
// name no keytool command and no flag: what to run is cmd/keytool's to
// say, with the user's own flags.
func TestNoKeytoolCommands(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err == nil && keytoolCommand.MatchString(s) {
				t.Errorf("%s: a string names a keytool command or flag: %q", fset.Position(lit.Pos()), s)
			}
			return true
		})
	}
}
