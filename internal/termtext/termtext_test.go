package termtext

import "testing"

func TestSafe(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		"alice's laptop":      "alice's laptop",
		"héllo, 世界":           "héllo, 世界",
		"a\x1b[2Jb":           `"a\x1b[2Jb"`,
		"two\nlines":          `"two\nlines"`,
		"tab\there":           `"tab\there"`,
		"\u202eevil":          `"\u202eevil"`,
		"line\u2028separator": `"line\u2028separator"`,
		"bad\xffutf8":         `"bad\xffutf8"`,
		"c1\u009bcontrol":     `"c1\u009bcontrol"`,
		// What keydir.CheckName refuses in a name given and a file of an
		// earlier version may hold: format characters (zero-width, bidi
		// isolates and marks, U+FEFF, the soft hyphen), other spaces.
		"ad\u200bmin":       `"ad\u200bmin"`,
		"ad\u200dmin":       `"ad\u200dmin"`,
		"\ufeffadmin":       `"\ufeffadmin"`,
		"ad\u00admin":       `"ad\u00admin"`,
		"\u2066nimda\u2069": `"\u2066nimda\u2069"`,
		"a\u200fb\u061c":    `"a\u200fb\u061c"`,
		"alice\u00a0laptop": `"alice\u00a0laptop"`,
		"admin\U000e0041":   `"admin\U000e0041"`,
	} {
		if got := Safe(in); got != want {
			t.Errorf("Safe(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSafeLines(t *testing.T) {
	for in, want := range map[string]string{
		"one line":             "one line",
		"two\nlines":           "two\nlines",
		"ok\nbad\x1b[2J\nok":   "ok\n\"bad\\x1b[2J\"\nok",
		"tab\there\nand\nmore": "\"tab\\there\"\nand\nmore",
	} {
		if got := SafeLines(in); got != want {
			t.Errorf("SafeLines(%q) = %q, want %q", in, got, want)
		}
	}
}
