package jwk

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// Docker and libtrust files (testdata/docker, see its README) load
// unchanged: kid checked, hosts read as addresses.

// copyToTemp copies a repository testdata file into a fresh directory with
// the given mode (git does not keep 0600) and returns its path.
func copyToTemp(t *testing.T, rel string, mode uint32) (path string, data []byte) {
	t.Helper()
	data = repoFile(t, rel)
	return writeFile(t, t.TempDir(), filepath.Base(rel), data, fsMode(mode)), data
}

func TestDockerKeyJSON(t *testing.T) {
	path, data := copyToTemp(t, "docker/key.json", 0o600)
	keys, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Fatalf("%d keys", len(keys))
	}
	k := keys[0]
	if !k.IsPrivate() || k.Type() != EC256 {
		t.Errorf("private %v, type %s", k.IsPrivate(), k.Type())
	}
	kid, _ := k.Attrs.String(AttrKeyID)
	if kid != k.KeyID() || !isLibtrustKeyID(kid) {
		t.Errorf("kid %q, key ID %q", kid, k.KeyID())
	}
	if len(k.Attrs) != 1 {
		t.Errorf("attributes %v, want only kid", k.Attrs)
	}

	// public-key.json is its public half, with the same kid.
	pub, err := ParseOne(repoFile(t, "docker/public-key.json"))
	if err != nil {
		t.Fatal(err)
	}
	if pub.IsPrivate() || !pub.Equal(k) {
		t.Errorf("public-key.json: private %v, %s vs %s", pub.IsPrivate(), pub.Fingerprint(), k.Fingerprint())
	}
	if pkid, _ := pub.Attrs.String(AttrKeyID); pkid != kid {
		t.Errorf("public-key.json kid %q, key.json kid %q", pkid, kid)
	}
	// Exporting key.json's public half gives public-key.json's content.
	out := mustMarshal(t, k, JWK, false)
	if got, want := canonical(t, out), canonical(t, repoFile(t, "docker/public-key.json")); got != want {
		t.Errorf("public export of key.json:\n%s\nwant (as public-key.json):\n%s", got, want)
	}
	// Rewriting key.json keeps every member, kid included.
	if got, want := canonical(t, mustMarshal(t, k, JWK, true)), canonical(t, data); got != want {
		t.Errorf("rewrite of key.json:\n%s\nwant:\n%s", got, want)
	}

	// Docker refuses a key.json whose kid was damaged: so does keytool,
	// naming the file and both IDs.
	other := testKey(t, EC256).KeyID()
	bad := bytes.Replace(data, []byte(kid), []byte(other), 1)
	badPath := writeFile(t, t.TempDir(), "key.json", bad, 0o600)
	_, err = ReadFile(badPath)
	pe := asParseError(t, err)
	var mm *KeyIDMismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("got %v, want a *KeyIDMismatchError", err)
	}
	if mm.Stated != other || mm.Computed != kid {
		t.Errorf("Stated %q Computed %q, want %q %q", mm.Stated, mm.Computed, other, kid)
	}
	if pe.File != badPath || pe.Member != "kid" {
		t.Errorf("file %q member %q", pe.File, pe.Member)
	}
	wantSubstrings(t, err.Error(), badPath, other, kid)

	// A kid that is not in libtrust form is a label, kept as it is; so is
	// a lower-case one, which libtrust never writes.
	for _, label := range []string{"1", "my key", strings.ToLower(other), other[:len(other)-5]} {
		data := bytes.Replace(data, []byte(kid), []byte(label), 1)
		k, err := ParseOne(data)
		if err != nil {
			t.Errorf("kid %q: %v", label, err)
			continue
		}
		if got, _ := k.Attrs.String(AttrKeyID); got != label {
			t.Errorf("kid %q read as %q", label, got)
		}
		if !bytes.Contains(mustMarshal(t, k, JWK, false), []byte(`"kid": "`+label+`"`)) {
			t.Errorf("kid %q not written back", label)
		}
	}
}

func TestLibtrustKeySets(t *testing.T) {
	wantHosts := [][]string{
		{"docker1.example.com:2376", "10.0.0.5:2376"},
		{"*.swarm.example.com"},
		{"[2001:db8::1]:2376"},
	}
	var sets [][]*Key
	for _, name := range []string{"known-hosts.json", "known-hosts.pem"} {
		t.Run(name, func(t *testing.T) {
			path, data := copyToTemp(t, "docker/"+name, 0o644)
			keys, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != len(wantHosts) {
				t.Fatalf("%d keys, want %d", len(keys), len(wantHosts))
			}
			for i, k := range keys {
				if k.IsPrivate() {
					t.Errorf("key %d is private", i)
				}
				if kid, _ := k.Attrs.String(AttrKeyID); kid != k.KeyID() {
					t.Errorf("key %d: kid %q, key ID %q", i, kid, k.KeyID())
				}
				addrs, err := k.Attrs.Addresses()
				if err != nil || strings.Join(addrs, " ") != strings.Join(wantHosts[i], " ") {
					t.Errorf("key %d: Addresses() = %q, %v; want %q", i, addrs, err, wantHosts[i])
				}
				if _, ok := k.Attrs[AttrHosts]; !ok {
					t.Errorf("key %d: the hosts member was renamed: %v", i, k.Attrs)
				}
			}
			if keys[2].Type() != RSA2048 {
				t.Errorf("third key is %s", keys[2].Algorithm())
			}
			// Written back in the same format, nothing is lost.
			f := JWK
			if strings.HasSuffix(name, ".pem") {
				f = PEM
			}
			out, err := MarshalPublicSet(keys, f)
			if err != nil {
				t.Fatal(err)
			}
			if f == PEM && !bytes.Equal(out, data) {
				t.Errorf("PEM rewrite differs:\n%s\nwant:\n%s", out, data)
			}
			if f == JWK && canonical(t, out) != canonical(t, data) {
				t.Errorf("JWK rewrite differs:\n%s\nwant:\n%s", out, data)
			}
			sets = append(sets, keys)
		})
	}
	if len(sets) == 2 {
		sameKeys(t, sets[1], sets[0])
		// The PEM header "hosts: a,b" is the JSON list ["a","b"]: converted
		// to JWK, the bundle gives the key set's members.
		for i := range sets[0] {
			for _, name := range []string{AttrHosts, AttrKeyID} {
				if got, want := canonical(t, sets[1][i].Attrs[name]), canonical(t, sets[0][i].Attrs[name]); got != want {
					t.Errorf("key %d: PEM %s = %s, JSON %s", i, name, got, want)
				}
			}
		}
	}

	// A damaged kid in the second block of the bundle names the block's
	// line and both IDs.
	data := repoFile(t, "docker/known-hosts.pem")
	blocks := bytes.SplitAfter(data, []byte("-----END PUBLIC KEY-----\n"))
	second := bytes.Index(data, blocks[1])
	line := bytes.Count(data[:second], []byte("\n")) + 1
	k2, err := Parse(blocks[1])
	if err != nil {
		t.Fatal(err)
	}
	other := testKey(t, EC256).KeyID()
	bad := bytes.Replace(data, []byte(k2[0].KeyID()), []byte(other), 1)
	path := writeFile(t, t.TempDir(), "known-hosts.pem", bad, 0o644)
	_, err = ReadFile(path)
	pe := asParseError(t, err)
	var mm *KeyIDMismatchError
	if !errors.As(err, &mm) || pe.Line != line || pe.File != path || pe.Member != "kid" {
		t.Errorf("got %v (line %d, member %q), want a kid mismatch at %s:%d", err, pe.Line, pe.Member, path, line)
	}
	wantSubstrings(t, err.Error(), other, k2[0].KeyID())

	// The same in the JSON key set names keys[1].kid.
	js := repoFile(t, "docker/known-hosts.json")
	bad = bytes.Replace(js, []byte(k2[0].KeyID()), []byte(other), 1)
	path = writeFile(t, t.TempDir(), "known-hosts.json", bad, 0o644)
	_, err = ReadFile(path)
	pe = asParseError(t, err)
	if !errors.As(err, &mm) || pe.Member != "keys[1].kid" || pe.File != path {
		t.Errorf("got %v (member %q), want a kid mismatch in keys[1].kid", err, pe.Member)
	}
	sep := []byte("},\n        {")
	wantLine := bytes.Count(js[:bytes.Index(js, sep)+len(sep)], []byte("\n")) + 1
	if pe.Line != wantLine {
		t.Errorf("line %d, want %d (the line where keys[1] starts)", pe.Line, wantLine)
	}
}
