package keydir

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// scriptSets are the sets of scripts a name may mix: those of Unicode
// Technical Standard #39's "Highly Restrictive" level (section 5.2), the
// scripts written together in Japanese, Chinese with Bopomofo, and
// Korean, each with Latin. A name whose scripts are all in one of them
// passes, a subset too (Latin and Hangul, Han alone).
var scriptSets = [][]string{
	{"Latin", "Han", "Hiragana", "Katakana"},
	{"Latin", "Han", "Bopomofo"},
	{"Latin", "Han", "Hangul"},
}

// scriptTable is Go's unicode.Scripts without Common and Inherited, in
// name order (a map's order would change nothing, as a character is in
// one script, but a slice is walked faster).
var scriptTable = sync.OnceValue(func() []namedScript {
	t := make([]namedScript, 0, len(unicode.Scripts))
	for name, tab := range unicode.Scripts {
		if name != "Common" && name != "Inherited" {
			t = append(t, namedScript{name, tab})
		}
	}
	sort.Slice(t, func(i, j int) bool { return t[i].name < t[j].name })
	return t
})

type namedScript struct {
	name  string
	table *unicode.RangeTable
}

// scriptOf returns the script of r (its Unicode Script property, as Go's
// tables know it), or "" for a character of Common (digits, punctuation,
// symbols, the space), of Inherited (combining marks that take the
// script of the letter they are on), or unassigned (which CheckName
// refuses before it asks).
func scriptOf(r rune) string {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin"
		}
		return ""
	}
	for _, s := range scriptTable() {
		if unicode.Is(s.table, r) {
			return s.name
		}
	}
	return ""
}

// MixedScripts returns a *NameScriptError if name mixes scripts in a way
// UTS #39's "Highly Restrictive" level forbids, else nil: every character
// of a script (not Common or Inherited) must be of one script, or of one
// of the sets in scriptSets. Digits, punctuation, symbols and ASCII other
// than letters are Common, so "x_y+z@w-2" is Latin alone; a combining
// mark is Inherited, so "mu\u0308ller" is too.
//
// Go's tables hold the Script property, not Script_Extensions, which
// UTS #39 resolves a string's scripts with (section 5.1). So a character
// of Common or Inherited that some scripts alone use — U+30FC, the
// prolonged sound mark of Hiragana and Katakana; U+0640, the Arabic
// tatweel; U+0951, a Devanagari stress sign — is taken as neutral here,
// beside letters of any script, where UTS #39 would let it stand only
// beside the scripts it lists: a little more is accepted, nothing that
// reads as another script's letter (they are marks and signs, no Latin
// look-alikes). What UTS #39 also requires, that every character be in
// its identifier profile, is not asked: a name may hold punctuation,
// symbols and emoji, and CheckName has refused what is not shown as
// itself already (docs/design.md, "Names").
func MixedScripts(name string) error {
	type scripted struct {
		script string
		r      rune
		pos    int
	}
	var chars []scripted
	var scripts []string // in the order met
	pos := 0
	for _, r := range name {
		pos++
		if s := scriptOf(r); s != "" {
			chars = append(chars, scripted{s, r, pos})
			if !slices.Contains(scripts, s) {
				scripts = append(scripts, s)
			}
		}
	}
	if len(scripts) <= 1 {
		return nil
	}
	for _, set := range scriptSets {
		if subset(scripts, set) {
			return nil
		}
	}
	// The character named is the first outside the scripts most of the
	// name's letters are in — the Cyrillic а of "p\u0430ypal", not the
	// Latin y after it: each script alone, then each set allowed, the
	// first covering the most letters.
	cands := make([][]string, 0, len(scripts)+len(scriptSets))
	for _, s := range scripts {
		cands = append(cands, []string{s})
	}
	cands = append(cands, scriptSets...)
	best, bestN := cands[0], -1
	for _, c := range cands {
		n := 0
		for _, ch := range chars {
			if slices.Contains(c, ch.script) {
				n++
			}
		}
		if n > bestN {
			best, bestN = c, n
		}
	}
	for _, ch := range chars {
		if !slices.Contains(best, ch.script) {
			return &NameScriptError{Name: name, Scripts: scripts, Char: ch.r, Pos: ch.pos, Main: best}
		}
	}
	return nil // unreachable: no set covers every script
}

func subset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// NameScriptError is CheckName's refusal of a name whose letters are of
// scripts that may not be mixed (MixedScripts): one of them could pass
// for a letter of the other, and the name for another client's.
type NameScriptError struct {
	Name    string
	Scripts []string // the scripts of the name's letters, in the order met
	Char    rune     // the first letter outside the scripts most letters are in
	Pos     int      // its position in Name, counted in characters from 1
	// Main is the script, or the set of scripts allowed together, that
	// most letters are in: the letters outside it are shown escaped.
	Main []string
}

func (e *NameScriptError) Error() string {
	return fmt.Sprintf("keydir: invalid name %s: it mixes the scripts %s: character %d is %U, %s",
		e.Quoted(), andList(e.Scripts), e.Pos, e.Char, scriptOf(e.Char))
}

// Quoted returns the name quoted as %q quotes it, but with each letter
// outside e.Main escaped as \uXXXX: a Cyrillic а among Latin letters
// shows as the escape it is ("\u0430dmin"), where %q would write it as
// itself and the message would read "admin".
func (e *NameScriptError) Quoted() string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range e.Name {
		switch s := scriptOf(r); {
		case s != "" && !slices.Contains(e.Main, s) && r > 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
		case s != "" && !slices.Contains(e.Main, s):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			q := strconv.Quote(string(r))
			b.WriteString(q[1 : len(q)-1])
		}
	}
	b.WriteByte('"')
	return b.String()
}

// andList writes "A and B", "A, B and C".
func andList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
