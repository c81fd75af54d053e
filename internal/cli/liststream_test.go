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
		c = &cli{stdout: &got}
		if err := c.printList(listFlags{json: true}, jsonSeq[hostInfo](slices.Values(items[:n])), nil, ""); err != nil {
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

// keytool list --json prints its object as printJSON prints the struct,
// byte for byte, with the authorized keys and the hosts made one at a
// time (printObject): empty, one item, several; nested objects and
// lists beside them.
func TestObjectPrintsAsTheStruct(t *testing.T) {
	never, soon := (*string)(nil), "2027-01-01T00:00:00Z"
	auth := []authorizedInfo{
		{Name: "ci", Fingerprint: "SHA256:a", KeyID: "K", Comment: `<b>&"q"`, Expires: never, Status: "ok", File: "ci.json"},
		{Name: "鍵", Fingerprint: "SHA256:b", Expires: &soon, From: []string{"10.0.0.0/8"}, Revoked: true, Status: "revoked", AcceptRotation: true, File: "k.json"},
	}
	hosts := []hostInfo{
		{Addresses: []string{"a.example:443"}, Fingerprint: "SHA256:x", Status: "ok", File: "a.json"},
		{Addresses: []string{}, AnyNamedAddress: true, Fingerprint: "SHA256:y", Purposes: []string{"docker"}, Status: "refused", File: "b.json"},
	}
	for n := range 3 {
		o := overview{
			Home:        "/h\"\n",
			Identity:    &identityInfo{Type: "EC", Fingerprint: "SHA256:i", File: "key.json", Previous: []identityInfo{{Type: "OKP", File: "key.old.1.json"}}},
			Revoked:     []revokedInfo{{Fingerprint: "SHA256:r", Status: "revoked"}},
			Invitations: []inviteInfo{},
			PKI:         []pkiInfo{{Kind: "ca", File: "ca.pem", Subject: "CN=x"}},
			Problems:    []problemInfo{{File: "f.json", Error: "e", Fix: "keytool x"}},
		}
		if n == 0 {
			o.Identity, o.Revoked = nil, []revokedInfo{}
		}
		var want, got strings.Builder
		whole := o
		whole.Authorized, whole.Hosts = append([]authorizedInfo{}, auth[:n]...), append([]hostInfo{}, hosts[:n]...)
		if err := (&cli{stdout: &want}).printJSON(&whole); err != nil {
			t.Fatal(err)
		}
		arrays := map[string]jsonArray{"authorized": jsonSeq[authorizedInfo](slices.Values(auth[:n])), "hosts": jsonSeq[hostInfo](slices.Values(hosts[:n]))}
		if err := (&cli{stdout: &got}).printObject(&o, arrays); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%d items: one at a time\n%s\nwhere the struct prints\n%s", n, got.String(), want.String())
		}
	}
	// A member printObject cannot print as encoding/json does is refused,
	// not printed otherwise.
	var out strings.Builder
	if err := (&cli{stdout: &out}).printObject(&struct {
		A string `json:"a,omitempty"`
	}{}, nil); err == nil || out.Len() != 0 {
		t.Errorf("a member with omitempty: %v, printed %q", err, out.String())
	}
	if err := (&cli{stdout: &out}).printObject(&struct{ problemInfo }{}, nil); err == nil || out.Len() != 0 {
		t.Errorf("an embedded member: %v, printed %q", err, out.String())
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
