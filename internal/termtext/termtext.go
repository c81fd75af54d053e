// Package termtext makes text taken from files safe to print: key files
// and trust files are not to be trusted with a terminal, so their names,
// comments and attributes, and the bits of them an error message quotes,
// go through Safe on their way to the screen.
package termtext

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Safe returns s as it is when it is UTF-8 and every character in it is
// printable, and otherwise s quoted in Go syntax, with every control or
// invisible character escaped: nothing it returns can move the cursor,
// clear the screen, reorder the text (bidi controls) or start a line
// that is not there.
func Safe(s string) string {
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// SafeLines is Safe applied to each line of s: an error message of
// several lines keeps them, and none of them can do more than Safe's.
func SafeLines(s string) string {
	if Safe(strings.ReplaceAll(s, "\n", "")) == strings.ReplaceAll(s, "\n", "") {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Safe(l)
	}
	return strings.Join(lines, "\n")
}
