package cli

import (
	"strings"
	"testing"
)

// columns counts terminal columns the way a terminal does for the text
// these tests print: the CJK ideographs below take two, the rest one.
func columns(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x4e00 && r <= 0x9fff {
			n += 2
		} else {
			n++
		}
	}
	return n
}

// A table fits the width it is given: elastic columns give way with "…",
// wide characters counted as the two columns they take, and nothing is
// cut when no width is set (--long, --full).
func TestTableFitsWidth(t *testing.T) {
	tb := newTable(column{title: "NAME", elastic: true}, column{title: "FINGERPRINT"},
		column{title: "COMMENT", elastic: true}, column{title: "FILE", elastic: true, fromLeft: true})
	long := strings.Repeat("build-farm-", 8)
	tb.add(long, "SHA256:5zH42tWxn6JH…", strings.Repeat("世界鍵農場七番", 4), "/srv/keytool/home/authorized_keys.d/"+long+".json")
	tb.add("a", "SHA256:zuyE+tOqW2k1…", "-", "a.json")

	var b strings.Builder
	if err := tb.write(&b, 80); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines:\n%s", len(lines), b.String())
	}
	for _, l := range lines {
		if w := columns(l); w > 80 {
			t.Errorf("%d columns, over 80: %q", w, l)
		}
	}
	row := lines[1]
	if !strings.HasPrefix(row, "build-farm-") || !strings.Contains(row, "SHA256:5zH42tWxn6JH…") {
		t.Errorf("row lost its start or its fingerprint: %q", row)
	}
	if !strings.HasSuffix(row, ".json") || !strings.Contains(row, "…") {
		t.Errorf("FILE should keep its end and NAME/COMMENT be cut with …: %q", row)
	}
	if !strings.HasPrefix(lines[2], "a  ") || !strings.HasSuffix(lines[2], "  a.json") {
		t.Errorf("short row changed: %q", lines[2])
	}

	b.Reset()
	if err := tb.write(&b, 0); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), long+".json") || !strings.Contains(b.String(), strings.Repeat("世界鍵農場七番", 4)) {
		t.Errorf("width 0 cut something:\n%s", b.String())
	}
}

// The short fingerprint is SHA256: and 12 characters, then …; --full
// keeps it whole.
func TestShortFingerprint(t *testing.T) {
	fp := "SHA256:5zH42tWxn6JH2J7PWIJm4kf3eS1V9dc4Xo0nINsdmbw"
	if got := (listFlags{}).fingerprint(fp); got != "SHA256:5zH42tWxn6JH…" {
		t.Errorf("short: %q", got)
	}
	if got := (listFlags{full: true}).fingerprint(fp); got != fp {
		t.Errorf("--full: %q", got)
	}
}
