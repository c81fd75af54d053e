package jwk

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// setOf parses data with ParseSet and fails the test on a whole-file error.
func setOf(t *testing.T, data []byte) []SetEntry {
	t.Helper()
	entries, err := ParseSet(data)
	if err != nil {
		t.Fatalf("ParseSet: %v", err)
	}
	for i, e := range entries {
		if (e.Key == nil) == (e.Err == nil) {
			t.Fatalf("entry %d: key %v, error %v: want exactly one", i, e.Key, e.Err)
		}
	}
	return entries
}

// A JWK Set with one bad member: Parse refuses the file, ParseSet reads
// the others and names the bad one by its index and member.
func TestParseSetJWKSetWithOneBadKey(t *testing.T) {
	a, c := testKey(t, EC256).PublicKey(), testKey(t, EC384).PublicKey()
	bad := []byte(`{"keys": [` + string(mustMarshal(t, a, JWK, false)) + ",\n" +
		`{"kty": "OKP", "crv": "Ed25519", "x": "!!"},` + "\n" +
		string(mustMarshal(t, c, JWK, false)) + "]}")
	if _, err := Parse(bad); err == nil {
		t.Fatalf("Parse accepted a set with a bad key:\n%s", bad)
	}
	entries := setOf(t, bad)
	if len(entries) != 3 {
		t.Fatalf("%d entries, want 3", len(entries))
	}
	if !entries[0].Key.Equal(a) || !entries[2].Key.Equal(c) || entries[1].Err == nil {
		t.Fatalf("entries %+v", entries)
	}
	if got := entries[1].Err.Member; got != "keys[1].x" {
		t.Errorf("bad entry's member %q, want keys[1].x", got)
	}
	if entries[1].Err.Line == 0 || entries[1].Line != entries[1].Err.Line {
		t.Errorf("bad entry's line %d (error's %d), want the line of the fault", entries[1].Line, entries[1].Err.Line)
	}
	if entries[0].Member() != "keys[0]" || entries[1].Member() != "keys[1]" || entries[2].Member() != "keys[2]" || entries[2].Index != 2 {
		t.Errorf("members %q, %q, %q; want keys[0], keys[1], keys[2]", entries[0].Member(), entries[1].Member(), entries[2].Member())
	}
}

// A PEM bundle: an unsupported block and a truncated one are entries in
// error at their BEGIN lines; the blocks after each still read.
func TestParseSetPEMBundle(t *testing.T) {
	a, b, c := testKey(t, EC256).PublicKey(), testKey(t, RSA2048).PublicKey(), testKey(t, Ed25519).PublicKey()
	pa, pb, pc := mustMarshal(t, a, PEM, false), mustMarshal(t, b, PEM, false), mustMarshal(t, c, PEM, false)
	unsupported := []byte("-----BEGIN DSA PUBLIC KEY-----\nAAAA\n-----END DSA PUBLIC KEY-----\n")
	truncated := []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n")
	data := bytes.Join([][]byte{pa, unsupported, pb, truncated, pc}, nil)
	lineAt := func(prefix []byte) int { return bytes.Count(data[:bytes.Index(data, prefix)], []byte{'\n'}) + 1 }
	if _, err := Parse(data); err == nil {
		t.Fatal("Parse accepted the bundle")
	}
	entries := setOf(t, data)
	if len(entries) != 5 {
		t.Fatalf("%d entries, want 5: %+v", len(entries), entries)
	}
	for i, want := range []*Key{a, nil, b, nil, c} {
		if want != nil && (entries[i].Key == nil || !entries[i].Key.Equal(want)) {
			t.Errorf("entry %d: %+v, want key %s", i, entries[i], want.Fingerprint())
		}
	}
	if got, want := entries[1].Line, lineAt(unsupported); got != want || entries[1].Err.Line != want || !errors.Is(entries[1].Err, ErrUnsupportedKey) {
		t.Errorf("unsupported block: line %d, %v; want line %d, ErrUnsupportedKey", got, entries[1].Err, want)
	}
	truncLine := bytes.Count(bytes.Join([][]byte{pa, unsupported, pb}, nil), []byte{'\n'}) + 1
	if got := entries[3].Err.Line; got != truncLine || !strings.Contains(entries[3].Err.Error(), "malformed or truncated") {
		t.Errorf("truncated block: %v (line %d), want line %d", entries[3].Err, got, truncLine)
	}
	for i, e := range entries {
		if e.Index != i || e.Member() != "" {
			t.Errorf("entry %d: index %d, member %q", i, e.Index, e.Member())
		}
	}
	if entries[4].Line != lineAt(pc[:30]) {
		t.Errorf("last block on line %d, want %d", entries[4].Line, lineAt(pc[:30]))
	}
}

// OpenSSH lines: a bad line is an entry in error on its line.
func TestParseSetOpenSSHLines(t *testing.T) {
	a, b := testKey(t, EC256), testKey(t, Ed25519)
	data := []byte("# keys\n" + string(mustMarshalSSH(t, a)) + "ssh-ed25519 AAAAnot-base64 x\n" + string(mustMarshalSSH(t, b)))
	entries := setOf(t, data)
	if len(entries) != 3 || !entries[0].Key.Equal(a) || !entries[2].Key.Equal(b) {
		t.Fatalf("entries %+v", entries)
	}
	if entries[1].Err == nil || entries[1].Line != 3 || entries[1].Err.Line != 3 || entries[0].Line != 2 || entries[2].Index != 2 {
		t.Fatalf("bad line: %+v, want an error on line 3", entries[1])
	}
}

// What is wrong with the file itself, rather than with one of its entries,
// is the error: ParseSet is no more lenient than Parse about it.
func TestParseSetWholeFileErrors(t *testing.T) {
	for name, data := range map[string]string{
		"empty":            "",
		"truncated JSON":   `{"keys":[{"kty":"EC"`,
		"keys not array":   `{"keys":5}`,
		"empty set":        `{"keys":[]}`,
		"duplicate keys":   `{"keys":[],"keys":[]}`,
		"single bad JWK":   `{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}`,
		"neither":          `{"a":1}`,
		"text":             "hello world\nnot a key\n",
		"only EC PARAMS":   "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n",
		"binary":           "\x00\x01",
		"comments only":    "# nothing\n",
		"invalid UTF-8 JS": "{\"keys\":[\xff]}",
	} {
		entries, err := ParseSet([]byte(data))
		var pe *ParseError
		if !errors.As(err, &pe) || entries != nil {
			t.Errorf("%s: %d entries, %v; want a *ParseError", name, len(entries), err)
		}
		if _, perr := Parse([]byte(data)); perr == nil {
			t.Errorf("%s: Parse accepted it", name)
		}
	}
}

// The real libtrust key set (testdata/docker) reads whole, each member
// named by its index, the same keys as Parse's.
func TestParseSetLibtrustKnownHosts(t *testing.T) {
	for _, name := range []string{"libtrust-known-hosts.json", "libtrust-known-hosts.pem", "known-hosts.json"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "docker", name))
		if err != nil {
			t.Fatal(err)
		}
		keys, err := Parse(data)
		if err != nil {
			t.Fatal(err)
		}
		entries := setOf(t, data)
		if len(entries) != len(keys) {
			t.Fatalf("%s: %d entries, Parse read %d keys", name, len(entries), len(keys))
		}
		for i, e := range entries {
			if !e.Key.Equal(keys[i]) || !bytes.Equal(e.Key.Attrs[AttrHosts], keys[i].Attrs[AttrHosts]) {
				t.Errorf("%s: entry %d differs from Parse's key", name, i)
			}
			if strings.HasSuffix(name, ".json") && (e.Member() != "keys["+string(rune('0'+i))+"]" || e.Index != i) {
				t.Errorf("%s: entry %d member %q index %d", name, i, e.Member(), e.Index)
			}
			if strings.HasSuffix(name, ".pem") && (e.Line == 0 || e.Member() != "" || e.Index != i) {
				t.Errorf("%s: entry %d without a line", name, i)
			}
		}
	}
}

// FuzzParseSet checks ParseSet against Parse: on what Parse accepts,
// ParseSet returns the same keys and no entry in error; on what Parse
// refuses, ParseSet refuses the file or has an entry in error. So ParseSet
// never reads a key from a file whose every entry Parse would accept
// otherwise, nor drops an entry silently.
func FuzzParseSet(f *testing.F) {
	addFileSeeds(f)
	addKeySeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, perr := Parse(data)
		entries, err := ParseSet(data)
		if err != nil && entries != nil {
			t.Fatalf("entries and an error")
		}
		bad := 0
		var got []*Key
		for i, e := range entries {
			if (e.Key == nil) == (e.Err == nil) {
				t.Fatalf("entry %d: key %v, error %v", i, e.Key, e.Err)
			}
			if e.Err != nil {
				bad++
				continue
			}
			got = append(got, e.Key)
		}
		if perr == nil {
			if err != nil || bad > 0 || len(got) != len(keys) {
				t.Fatalf("Parse read %d keys; ParseSet: %d keys, %d bad, %v", len(keys), len(got), bad, err)
			}
			for i := range keys {
				if !got[i].Equal(keys[i]) || got[i].IsPrivate() != keys[i].IsPrivate() || len(got[i].Attrs) != len(keys[i].Attrs) {
					t.Fatalf("key %d differs", i)
				}
			}
			return
		}
		if err == nil && bad == 0 {
			t.Fatalf("Parse refused the input (%v); ParseSet read %d keys and found nothing wrong", perr, len(got))
		}
	})
}

// Many bad entries cost linear time, as one bad entry does in Parse: a
// stretch of malformed PEM blocks is one entry, read past without
// decoding the rest of the file again from each of its BEGIN lines
// (which takes minutes on this input), and the lines of a JWK Set's bad
// members, counted on from the previous one, are still right.
func TestParseSetManyBadEntriesInLinearTime(t *testing.T) {
	const n = 40000
	good := mustMarshal(t, testKey(t, EC256).PublicKey(), PEM, false)
	stretch := bytes.Repeat([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n"), n)
	start := time.Now()
	entries := setOf(t, slices.Concat(good, stretch, good, stretch))
	if len(entries) != 4 || entries[0].Key == nil || entries[1].Err == nil || entries[2].Key == nil || entries[3].Err == nil {
		t.Fatalf("%d entries, want good, one malformed stretch, good, one malformed stretch", len(entries))
	}
	goodLines := bytes.Count(good, []byte{'\n'})
	if entries[1].Line != goodLines+1 || entries[2].Line != goodLines+2*n+1 || entries[3].Line != 2*goodLines+2*n+1 {
		t.Errorf("lines %d, %d, %d", entries[1].Line, entries[2].Line, entries[3].Line)
	}

	set := []byte(`{"keys": [` + strings.Repeat("\n"+`{"kty": "foo"},`, n) + "\n" + string(mustMarshal(t, testKey(t, Ed25519).PublicKey(), JWK, false)) + "]}")
	entries = setOf(t, set)
	if len(entries) != n+1 || entries[n].Key == nil || entries[n-1].Err == nil || entries[n-1].Line != n+1 || entries[n-1].Err.Member != "keys["+strconv.Itoa(n-1)+"].kty" {
		t.Fatalf("%d entries; the last bad one %+v", len(entries), entries[n-1])
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v", d)
	}
}

// A member whose key reads and whose attributes do not ("expires" not a
// time, "use" for encryption) names its key in its error
// (ParseError.Key), so that a store skipping it can still refuse the key
// elsewhere; a member whose key does not read names none. So does the
// error of a single JWK, which is about the whole file.
func TestParseErrorNamesTheKeyOfBadAttributes(t *testing.T) {
	a, b := testKey(t, EC256).PublicKey(), testKey(t, Ed25519).PublicKey()
	withAttr := func(k *Key, name, raw string) string {
		k = k.PublicKey()
		k.Attrs = Attributes{name: []byte(raw)}
		return string(mustMarshal(t, k, JWK, false))
	}
	set := []byte(`{"keys": [` + withAttr(a, AttrExpires, `"tomorrow"`) + ",\n" +
		withAttr(b, "use", `"enc"`) + ",\n" +
		`{"kty": "OKP", "crv": "Ed25519", "x": "!!"}]}`)
	entries := setOf(t, set)
	for i, want := range []*Key{a, b, nil} {
		got := entries[i].Err.Key
		switch {
		case want == nil && got != nil:
			t.Errorf("entry %d (%v): names a key", i, entries[i].Err)
		case want != nil && (got == nil || *got != want.SPKIHash()):
			t.Errorf("entry %d (%v): key %v, want %s", i, entries[i].Err, got, want.Fingerprint())
		}
	}
	_, err := ParseSet([]byte(withAttr(a, AttrFrom, `"not a network"`)))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Key == nil || *pe.Key != a.SPKIHash() {
		t.Fatalf("a single JWK with a bad from: %v, want a *ParseError naming its key", err)
	}

	// A PEM block with a bad header (an "expires" that is not a time, a
	// header twice), an OpenSSH line with a bad option; and a block and
	// a line whose key does not read.
	block := func(k *Key, headers string) string {
		b := string(mustMarshal(t, k.PublicKey(), PEM, false))
		return strings.Replace(b, "-----\n", "-----\n"+headers, 1)
	}
	line := func(k *Key, options string) string {
		return options + string(sshMarshalAuthorized(mustSSHPub(t, k)))
	}
	for _, c := range []struct {
		what, data string
		want       []*Key
	}{
		{"PEM", block(a, "expires: tomorrow\n\n") + block(b, "comment: x\ncomment: y\n\n") +
			"-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n", []*Key{a, b, nil}},
		{"OpenSSH", line(a, `from="not a network" `) + line(b, `from="10.0.0.0/8",from="10.0.0.0/8" `) + line(a, "no-pty ") +
			"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n", []*Key{a, b, a, nil}},
	} {
		entries := setOf(t, []byte(c.data))
		if len(entries) != len(c.want) {
			t.Fatalf("%s: %d entries, want %d", c.what, len(entries), len(c.want))
		}
		for i, want := range c.want {
			if entries[i].Err == nil {
				t.Fatalf("%s: entry %d read", c.what, i)
			}
			got := entries[i].Err.Key
			if want == nil && got != nil || want != nil && (got == nil || *got != want.SPKIHash()) {
				t.Errorf("%s: entry %d (%v): key %v, want %v", c.what, i, entries[i].Err, got, want)
			}
		}
	}
}

// TestParseSetBigOnEveryCPU: the members of a big set are parsed on
// several CPUs (parseJWKs); what ParseSet and Parse return must be what
// they return parsing one member after the other — each entry at its
// index, the faults at their members and lines, and Parse's error the
// first bad member's, whichever worker met a fault first.
func TestParseSetBigOnEveryCPU(t *testing.T) {
	var pool [][]byte
	for _, typ := range []Type{EC256, Ed25519, EC384, EC256} {
		pool = append(pool, mustMarshal(t, testKey(t, typ).PublicKey(), JWK, false))
	}
	const n = 3000
	bad := map[int]string{
		1:    `{"kty": "OKP", "crv": "Ed25519", "x": "!!"}`,
		700:  `{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}`,
		1499: `{"kty": "RSA"}`,
		2999: `{"kty": "EC", "crv": "P-256", "use": "enc", "x": "AAAA"}`,
	}
	withExpires := testKey(t, EC256).PublicKey() // a key that reads, an attribute that does not: its error names it
	withExpires.Attrs = Attributes{AttrExpires: []byte(`"tomorrow"`)}
	bad[2001] = string(mustMarshal(t, withExpires, JWK, false))
	var b bytes.Buffer
	b.WriteString(`{"keys": [`)
	for i := range n {
		if i > 0 {
			b.WriteString(",\n")
		}
		if m, ok := bad[i]; ok {
			b.WriteString(m)
		} else {
			b.Write(pool[i%len(pool)])
		}
	}
	b.WriteString("]}\n")
	data := b.Bytes()

	parseAll := func(procs int) ([]SetEntry, error) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		entries, err := ParseSet(data)
		if err != nil {
			t.Fatalf("ParseSet with GOMAXPROCS=%d: %v", procs, err)
		}
		_, perr := Parse(data)
		return entries, perr
	}
	want, wantErr := parseAll(1) // one member after the other (n/parallelSet > 1 worker needs 2 CPUs)
	got, gotErr := parseAll(4)
	if len(got) != n || len(want) != n {
		t.Fatalf("%d entries on 4 CPUs, %d on one; want %d", len(got), len(want), n)
	}
	for i := range n {
		g, w := got[i], want[i]
		switch {
		case g.Index != i || w.Index != i || g.Line != w.Line || g.Member() != w.Member():
			t.Errorf("entry %d: index %d, line %d, member %q; one after the other: %d, %d, %q", i, g.Index, g.Line, g.Member(), w.Index, w.Line, w.Member())
		case (g.Err == nil) != (w.Err == nil) || (g.Err != nil && (g.Err.Error() != w.Err.Error() || (g.Err.Key == nil) != (w.Err.Key == nil) || g.Err.Key != nil && *g.Err.Key != *w.Err.Key)):
			t.Errorf("entry %d: error %v; one after the other: %v", i, g.Err, w.Err)
		case (g.Key == nil) != (w.Key == nil) || (g.Key != nil && !g.Key.Equal(w.Key)):
			t.Errorf("entry %d: key %v; one after the other: %v", i, g.Key, w.Key)
		}
		if _, isBad := bad[i]; isBad != (g.Err != nil) {
			t.Errorf("entry %d: error %v, want one only for the bad members", i, g.Err)
		}
	}
	if k := got[2001].Err; k == nil || k.Key == nil || *k.Key != withExpires.SPKIHash() {
		t.Errorf("keys[2001] on 4 CPUs: %v, want its key named", k)
	}
	if gotErr == nil || wantErr == nil || gotErr.Error() != wantErr.Error() || asParseError(t, gotErr).Member != "keys[1].x" {
		t.Errorf("Parse on 4 CPUs: %v; one after the other: %v; want the first bad member's, keys[1].x", gotErr, wantErr)
	}
}
