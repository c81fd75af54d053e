package tlsbridge

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

// keytoolCommand matches a keytool command spelled in a string.
var keytoolCommand = regexp.MustCompile(`\bkeytool [a-z-]+`)

// TestNoKeytoolCommands: the library's strings — errors, messages, bodies
// for remote clients — name no keytool command: what to run is
// cmd/keytool's to say, with the user's own flags.
func TestNoKeytoolCommands(t *testing.T) {
	noKeytoolCommands(t, ".")
}

func noKeytoolCommands(t *testing.T, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
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
				t.Errorf("%s: a string names a keytool command: %q", fset.Position(lit.Pos()), s)
			}
			return true
		})
	}
}
