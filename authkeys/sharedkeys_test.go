package authkeys

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// A key held by two files is reported, the entry in effect first: the
// one whose removal lets the other in, with its own restrictions, was
// seen by no listing (found by review).
func TestSharedKeysReportsShadowedEntries(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "authorized_keys.d")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	other, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, extra string, k *jwk.Key) {
		t.Helper()
		pub, err := k.MarshalPublic(jwk.JWK)
		if err != nil {
			t.Fatal(err)
		}
		data := strings.Replace(string(pub), "{", "{"+extra, 1)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a-restricted.json", `"from":["10.0.0.0/8"],`, k)
	write("other.json", "", other)
	s := Load(HomeOptions(home))
	if got := s.SharedKeys(); got != nil {
		t.Fatalf("one file a key: SharedKeys = %v, want none", got)
	}

	write("b-open.json", `"name":"b-open",`, k)
	s = Load(HomeOptions(home))
	got := s.SharedKeys()
	if len(got) != 1 || got[0].Fingerprint != k.Fingerprint() || len(got[0].Entries) != 2 {
		t.Fatalf("SharedKeys = %v, want the key of two files", got)
	}
	first, second := got[0].Entries[0], got[0].Entries[1]
	if first.Name != "a-restricted" || len(first.From) != 1 || second.Name != "b-open" || second.From != nil {
		t.Errorf("entries: %q (from %v), %q (from %v); want a-restricted in effect, then b-open", first.Name, first.From, second.Name, second.From)
	}
	if d := s.Decide(k.SPKIHash(), netip.MustParseAddr("10.1.2.3")); d.Entry == nil || d.Entry.Name != first.Name {
		t.Errorf("the entry in effect is %v (%v), SharedKeys put %q first", d.Entry, d.Err, first.Name)
	}
	msg := got[0].Error()
	for _, want := range []string{"authkeys: key " + k.Fingerprint() + " is authorized by 2 entries", `"a-restricted"`, `removing it puts "b-open"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

// A key many entries hold names the first maxEntriesNamed after the
// one in effect, in order, then counts the rest: one line, not one name
// a copy.
func TestSharedKeyNamesTheNextFew(t *testing.T) {
	sk := SharedKey{Fingerprint: "SHA256:x"}
	for i := range 2 + maxEntriesNamed + 10 {
		sk.Entries = append(sk.Entries, &Entry{Name: fmt.Sprintf("c%02d", i), File: fmt.Sprintf("/d/c%02d.json", i)})
	}
	msg := sk.Error()
	want := `authkeys: key SHA256:x is authorized by 17 entries, of which only the first takes effect, "c00" (/d/c00.json); removing it puts "c01" (/d/c01.json), then "c02" (/d/c02.json), then "c03" (/d/c03.json), then "c04" (/d/c04.json), then "c05" (/d/c05.json), then 11 more in effect, with its own name and restrictions`
	if msg != want {
		t.Errorf("message\n%s\nwant\n%s", msg, want)
	}
	sk.Entries = sk.Entries[:1+maxEntriesNamed]
	if msg := sk.Error(); strings.Contains(msg, "more") || !strings.Contains(msg, `then "c05" (/d/c05.json) in effect`) {
		t.Errorf("%d entries after the first, all named: %s", maxEntriesNamed, msg)
	}
}

// A name many keys hold names the first maxEntriesNamed of them, then
// counts the rest, in its message and in the log line that says it.
func TestSharedNameNamesTheFirstFew(t *testing.T) {
	sh := SharedName{Name: "bob"}
	for i := range maxEntriesNamed + 3 {
		sh.Entries = append(sh.Entries, &Entry{Fingerprint: fmt.Sprintf("SHA256:k%d", i), File: fmt.Sprintf("/d/s%d.json", i)})
	}
	msg := sh.Error()
	want := `authkeys: the name "bob" is held by 8 keys, which it does not tell apart: SHA256:k0 (/d/s0.json), SHA256:k1 (/d/s1.json), SHA256:k2 (/d/s2.json), SHA256:k3 (/d/s3.json), SHA256:k4 (/d/s4.json), and 3 more`
	if msg != want {
		t.Errorf("message\n%s\nwant\n%s", msg, want)
	}
	sh.Entries = sh.Entries[:maxEntriesNamed]
	if msg := sh.Error(); strings.Contains(msg, "more") || !strings.HasSuffix(msg, "SHA256:k4 (/d/s4.json)") {
		t.Errorf("%d entries, all named: %s", maxEntriesNamed, msg)
	}
}
