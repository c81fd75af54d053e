package keydir

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/termtext"
)

// TestCheckNameRefusesMixedScripts: a name given may not mix scripts as
// UTS #39's "Highly Restrictive" level forbids — "\u0430dmin" with a
// Cyrillic а reads "admin" and passed the name-taken check, which
// compares strings. The refusal is a *NameScriptError naming the scripts
// in the order met and the first letter outside the scripts most letters
// are in, as U+XXXX and its place, with that letter escaped in the quoted
// name; CheckFileName, the rule of the names already there, takes them
// all (docs/design.md, "Names").
func TestCheckNameRefusesMixedScripts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		scripts []string
		char    rune
		pos     int
		msg     string
	}{
		{"\u0430dmin", []string{"Cyrillic", "Latin"}, 0x430, 1,
			`keydir: invalid name "\u0430dmin": it mixes the scripts Cyrillic and Latin: character 1 is U+0430, Cyrillic`},
		{"p\u0430ypal", []string{"Latin", "Cyrillic"}, 0x430, 2,
			`keydir: invalid name "p\u0430ypal": it mixes the scripts Latin and Cyrillic: character 2 is U+0430, Cyrillic`},
		{"\u0391lice", []string{"Greek", "Latin"}, 0x391, 1,
			`keydir: invalid name "\u0391lice": it mixes the scripts Greek and Latin: character 1 is U+0391, Greek`},
		// The scripts of Japanese are not those of Korean: Han and Latin
		// go with either, Katakana and Hangul not together. Latin, Han
		// and Hangul cover the most letters here: the Katakana is named.
		{"東京-tokyo-カ-서울", []string{"Han", "Latin", "Katakana", "Hangul"}, 0x30ab, 10,
			`keydir: invalid name "東京-tokyo-\u30ab-서울": it mixes the scripts Han, Latin, Katakana and Hangul: character 10 is U+30AB, Katakana`},
		{"admin-\u0430", []string{"Latin", "Cyrillic"}, 0x430, 7, ""},
		{"ad\u03bcin", []string{"Latin", "Greek"}, 0x3bc, 3, ""},
		{"alice\u0663", []string{"Latin", "Arabic"}, 0x663, 6, ""}, // an Arabic-Indic digit is Arabic
		{"\u0430\u0434min", []string{"Cyrillic", "Latin"}, 0x430, 1, ""},
		{"a\u0430", []string{"Latin", "Cyrillic"}, 0x430, 2, ""}, // a tie: the script met first is the name's
		{"ab\"\u0430", []string{"Latin", "Cyrillic"}, 0x430, 4, `keydir: invalid name "ab\"\u0430": it mixes the scripts Latin and Cyrillic: character 4 is U+0430, Cyrillic`},
		{"x\U00010300", []string{"Latin", "Old_Italic"}, 0x10300, 2, `keydir: invalid name "x\U00010300": it mixes the scripts Latin and Old_Italic: character 2 is U+10300, Old_Italic`},
	} {
		err := CheckName(tc.name)
		var se *NameScriptError
		if !errors.As(err, &se) {
			t.Errorf("CheckName(%q) = %v, want a *NameScriptError", tc.name, err)
			continue
		}
		if se.Name != tc.name || !slices.Equal(se.Scripts, tc.scripts) || se.Char != tc.char || se.Pos != tc.pos {
			t.Errorf("CheckName(%q): %+v, want scripts %v, %U at character %d", tc.name, *se, tc.scripts, tc.char, tc.pos)
		}
		msg := err.Error()
		if tc.msg != "" && msg != tc.msg {
			t.Errorf("CheckName(%q):\n%s\nwant\n%s", tc.name, msg, tc.msg)
		}
		want := fmt.Sprintf(": character %d is %U, ", tc.pos, tc.char)
		if !strings.HasPrefix(msg, "keydir: invalid name ") || !strings.Contains(msg, want) || strings.Contains(msg, "\n") {
			t.Errorf("CheckName(%q): %q, want one line keydir: … %s…", tc.name, msg, want)
		}
		if termtext.Safe(msg) != msg || strings.ContainsRune(msg, tc.char) {
			t.Errorf("CheckName(%q): the message holds the letter raw: %q", tc.name, msg)
		}
		if err := CheckFileName(tc.name); err != nil {
			t.Errorf("CheckFileName(%q) = %v: a file of that name is read", tc.name, err)
		}
	}
	for _, ok := range []string{
		"alice", "müller", "mu\u0308ller", "日本語", "東京-tokyo", "ひらがなカタカナ漢字abc", "ラーメン", "서울seoul",
		"서울-首尔", "ㄅㄆ-注音-abc", "ناصر", "алиса", "ѕсоре", "Αλίκη", "x_y+z@w", "0123", "alice-2", "a b", "smile😀",
		"é\u0301", "ünïcode 世界", "client-0a1b2c3d", "ناصر-٣",
	} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
}
