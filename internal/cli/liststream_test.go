package cli

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// A list printed one item at a time (jsonSeq) is, byte for byte, the
// slice printJSON prints: empty, one item, several, with what JSON
// escapes (HTML, quotes, control characters) and nested lists.
func TestJSONSeqPrintsAsTheSlice(t *testing.T) {
	items := []hostInfo{
		{Addresses: []string{"a.example:443", "10.0.0.1:443"}, Fingerprint: "SHA256:x", KeyID: "K", Comment: `<b>&"q"` + "\x01", Status: "ok", File: "a.json"},
		{Addresses: []string{}, AnyNamedAddress: true, Fingerprint: "SHA256:y", Purposes: []string{"docker"}, Status: "revoked", File: "b.json"},
		{Addresses: []string{"*.example:22"}, Fingerprint: "SHA256:z", Status: "refused", File: "c.json"},
	}
	for n := range len(items) + 1 {
		var want, got strings.Builder
		c := &cli{stdout: &want}
		if err := c.printJSON(append([]hostInfo{}, items[:n]...)); err != nil {
			t.Fatal(err)
		}
		if err := jsonSeq[hostInfo](slices.Values(items[:n])).writeJSON(&got); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%d items: one at a time\n%s\nwhere the slice prints\n%s", n, got.String(), want.String())
		}
		var back []hostInfo
		if err := json.Unmarshal([]byte(got.String()), &back); err != nil || len(back) != n {
			t.Errorf("%d items: read back %d, %v", n, len(back), err)
		}
	}
}

// A table whose rows are made for each pass prints as the same rows
// added: the widths of the first pass, the lines of the second.
func TestTableOfMadeRowsPrintsAsAdded(t *testing.T) {
	cols := []column{{title: "NAME", elastic: true}, {title: "FINGERPRINT"}, {title: "FILE", elastic: true, fromLeft: true}}
	rows := [][]string{
		{strings.Repeat("build-farm-", 8), "SHA256:5zH42tWxn6JH…", "/srv/keytool/home/authorized_keys.d/x.json"},
		{"a", "SHA256:zuyE+tOqW2k1…", "a.json"},
		{"鍵", "SHA256:abc", "b.json"},
	}
	added := newTable(cols...)
	for _, r := range rows {
		added.add(r...)
	}
	passes := 0
	made := newTable(cols...)
	made.each = func(yield func([]string) bool) {
		passes++
		for _, r := range rows {
			if !yield(slices.Clone(r)) {
				return
			}
		}
	}
	for _, width := range []int{0, 40, 80} {
		var want, got strings.Builder
		if err := added.write(&want, width); err != nil {
			t.Fatal(err)
		}
		passes = 0
		if err := made.write(&got, width); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() || passes != 2 {
			t.Errorf("width %d, %d passes:\n%s\nwhere the rows added print\n%s", width, passes, got.String(), want.String())
		}
	}
	if made.empty() || !newTable(cols...).empty() {
		t.Errorf("empty: a table of made rows %v, one of none %v", made.empty(), newTable(cols...).empty())
	}
}
