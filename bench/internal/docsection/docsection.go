// Package docsection rewrites the generated part of a Markdown document:
// the text between two marker comments, which the benchmark commands
// (cmd/report, cmd/peers) fill with their tables, leaving the prose
// around them alone.
package docsection

import (
	"os"
	"strings"
)

// Splice replaces the text between the markers begin and end of the
// file doc with section (appending both markers and the section if the
// markers are missing).
func Splice(doc, begin, end, section string) error {
	data, err := os.ReadFile(doc)
	if err != nil {
		return err
	}
	s := string(data)
	block := begin + "\n" + section + end
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(end):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + block + "\n"
	}
	return os.WriteFile(doc, []byte(s), 0o644)
}
