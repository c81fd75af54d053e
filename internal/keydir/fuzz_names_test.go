package keydir

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/keytool/keytool/internal/termtext"
)

// violatesNameRules reports whether name breaks a rule CheckName's doc
// comment states, written from the doc rather than from the code: empty,
// too long, invalid UTF-8, a leading dot, a path separator, an editor
// backup's shape (which the loader ignores), a control character (Unicode
// Cc: C0, DEL, C1) or a line or paragraph separator — CheckFileName's
// rules — or, CheckName's, a character unicode.IsPrint refuses, or
// letters of scripts UTS #39's "Highly Restrictive" level does not let
// stand together.
func violatesNameRules(name string) bool {
	return violatesFileNameRules(name) || strings.ContainsFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) ||
		mixesScripts(name)
}

// mixesScripts reports whether the characters of name in a script other
// than Common and Inherited are of more than one script, and not all of
// Latin, Han, Hiragana and Katakana, nor all of Latin, Han and Bopomofo,
// nor all of Latin, Han and Hangul.
func mixesScripts(name string) bool {
	var in []string
	for script, table := range unicode.Scripts {
		if script != "Common" && script != "Inherited" && strings.ContainsFunc(name, func(r rune) bool { return unicode.Is(table, r) }) {
			in = append(in, script)
		}
	}
	if len(in) < 2 {
		return false
	}
	for _, allowed := range []string{"Latin Han Hiragana Katakana", "Latin Han Bopomofo", "Latin Han Hangul"} {
		all := true
		for _, s := range in {
			all = all && slices.Contains(strings.Fields(allowed), s)
		}
		if all {
			return false
		}
	}
	return true
}

func violatesFileNameRules(name string) bool {
	if name == "" || len(name) > MaxNameLen || !utf8.ValidString(name) ||
		strings.HasPrefix(name, ".") || strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, filepath.Separator) ||
		strings.HasSuffix(name, "~") || strings.HasPrefix(name, "#") {
		return true
	}
	return strings.ContainsFunc(name, func(r rune) bool {
		return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
	})
}

// portableName maps s onto the alphabet the names keytool derives are
// made of (authorize's sanitizeName: ASCII letters, digits and ._@+-;
// knownhosts.FileName: letters, digits, .-_ and %XX), without a leading
// dot and within MaxNameLen: every such name must be accepted.
func portableName(s string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@+%-"
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < MaxNameLen; i++ {
		c := alphabet[int(s[i])%len(alphabet)]
		if len(b) == 0 && c == '.' {
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

// FuzzCheckName checks what CheckName promises of a name that becomes a
// file in a .d directory (as NAME.json, written through atomicfile's
// ".NAME.json.*.tmp"): an accepted name cannot leave the directory, hide
// the file from the loader, or carry a control character, a newline or
// NUL; a name is refused exactly when it breaks a documented rule, with
// an error that is itself safe to print; and names in the alphabet of
// keytool's derived names are accepted.
func FuzzCheckName(f *testing.F) {
	for _, s := range []string{
		"alice", "alice.laptop", "bob-2", "ünïcode", "a b", "client-0a1b2c3d", "host.example_2222",
		"", ".", "..", "../x", "a/b", `a\b`, ".hidden", "a\nb", "a\rb", "a\x00b", "a\x1bb", "a\x7fb",
		"a\u0085b", "a\u2028b", "ad\u200bmin", "a\u202eb", "a\u2066b\u2069", "\ufeffx", "a\u00a0b", "a\ue000b", "x~", "#x#", "#x", "x.tmp", "x.swp", "\u0430dmin", "p\u0430ypal", "東京-tokyo", "서울seoul", "алиса", "\xff", "a\xc0\x80", strings.Repeat("a", MaxNameLen+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if err := CheckFileName(name); (err != nil) != violatesFileNameRules(name) {
			t.Fatalf("CheckFileName(%q) = %v, but the documented rules say refused=%v", name, err, violatesFileNameRules(name))
		}
		err := CheckName(name)
		if (err != nil) != violatesNameRules(name) {
			t.Fatalf("CheckName(%q) = %v, but the documented rules say refused=%v", name, err, violatesNameRules(name))
		}
		if err == nil && termtext.Safe(name) != name {
			t.Fatalf("CheckName(%q) accepted a name termtext.Safe quotes", name)
		}
		if err != nil {
			// Names come from the network (enrollment) and from key files;
			// the error is logged and shown: it must not carry them raw.
			msg := err.Error()
			if msg == "" || !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool {
				return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
			}) {
				t.Fatalf("CheckName(%q): error %q is empty or not safe to print", name, msg)
			}
		} else {
			checkSafeName(t, name)
		}

		if p := portableName(name); p != "" {
			if err := CheckName(p); err != nil {
				t.Fatalf("derived-alphabet name %q refused: %v", p, err)
			}
		}
	})
}

// checkSafeName asserts that an accepted name is safe as a file name in
// a directory, by the standard library's own judgement where it has one.
func checkSafeName(t *testing.T, name string) {
	t.Helper()
	if name == "" || name == "." || name == ".." || len(name) > MaxNameLen {
		t.Fatalf("accepted %q: empty, a dot entry or too long", name)
	}
	if strings.ContainsAny(name, "/\\\x00\n\r") || strings.ContainsRune(name, filepath.Separator) {
		t.Fatalf("accepted %q: a separator, NUL or newline", name)
	}
	if !utf8.ValidString(name) {
		t.Fatalf("accepted %q: invalid UTF-8", name)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			t.Fatalf("accepted %q: a control character %U", name, r)
		}
	}
	if !filepath.IsLocal(name) || filepath.Base(name) != name || filepath.Clean(name) != name {
		t.Fatalf("accepted %q: not a plain local file name", name)
	}
	const dir = "/keys.d"
	for _, file := range []string{name + ".json", "." + name + ".json.4294967295.tmp"} {
		if p := filepath.Join(dir, file); filepath.Dir(p) != dir || filepath.Base(p) != file {
			t.Fatalf("accepted %q: %s is not in %s", name, p, dir)
		}
		if len(file) > 255 {
			t.Fatalf("accepted %q: file name %q longer than 255 bytes", name, file)
		}
	}
	if Ignored(name + ".json") {
		t.Fatalf("accepted %q, but the loader ignores %s.json", name, name)
	}
	if !Ignored("." + name + ".json.123.tmp") {
		t.Fatalf("accepted %q, but the loader reads its temporary file", name)
	}
}
