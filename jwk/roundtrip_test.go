package jwk

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

// fullAttrs are attributes of every kind keytool knows, plus an unknown
// member with a nested value, for key k (whose key ID is the kid).
func fullAttrs(k *Key) Attributes {
	a := Attributes{
		"x-extra": json.RawMessage(`{"nested": {"list": [1, 2.5, {"deep": null}], "flag": true}, "s": "v"}`),
	}
	a.SetString(AttrKeyID, k.KeyID())
	a.SetList(AttrAddress, []string{"db1.example.com:8443", "[2001:db8::1]:443", "*.example.org", "!bad.example.org"})
	a.SetList(AttrHosts, []string{"legacy.example.com"})
	a.SetString(AttrComment, "alice, laptop (ünïcode)")
	a.SetString(AttrExpires, "2030-01-31T00:00:00Z")
	a.SetList(AttrFrom, []string{"10.0.0.0/8", "192.168.1.7", "2001:db8::/32"})
	a.SetString(AttrName, "alice")
	return a
}

// checkKnownAttrs checks the attributes keytool interprets, whatever
// their JSON form.
func checkKnownAttrs(t *testing.T, k *Key) {
	t.Helper()
	a := k.Attrs
	if kid, _ := a.String(AttrKeyID); kid != k.KeyID() {
		t.Errorf("kid = %q, want %q", kid, k.KeyID())
	}
	addrs, err := a.Addresses()
	if want := "db1.example.com:8443 [2001:db8::1]:443 *.example.org !bad.example.org legacy.example.com"; err != nil || strings.Join(addrs, " ") != want {
		t.Errorf("Addresses() = %q, %v; want %q", addrs, err, want)
	}
	if c := a.Comment(); c != "alice, laptop (ünïcode)" {
		t.Errorf("Comment() = %q", c)
	}
	if exp, err := a.Expires(); err != nil || !exp.Equal(time.Date(2030, 1, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Expires() = %v, %v", exp, err)
	}
	nets, err := a.From()
	if err != nil || len(nets) != 3 || nets[0].String() != "10.0.0.0/8" || nets[1].String() != "192.168.1.7/32" || nets[2].String() != "2001:db8::/32" {
		t.Errorf("From() = %v, %v", nets, err)
	}
	if n, _ := a.String(AttrName); n != "alice" {
		t.Errorf("name = %q", n)
	}
	if _, ok := a["x-extra"]; !ok {
		t.Error("unknown member x-extra was dropped")
	}
}

func TestRoundTrip(t *testing.T) {
	for _, typ := range testTypes {
		for _, f := range []Format{JWK, PEM} {
			for _, private := range []bool{false, true} {
				name := string(typ) + "/" + string(f) + "/public"
				if private {
					name = string(typ) + "/" + string(f) + "/private"
				}
				t.Run(name, func(t *testing.T) {
					k := testKey(t, typ)
					if !private {
						k = k.PublicKey()
					}
					// Without attributes.
					out := mustMarshal(t, k, f, private)
					back, err := ParseOne(out)
					if err != nil {
						t.Fatalf("%v\n%s", err, out)
					}
					if back.SPKIHash() != k.SPKIHash() || back.IsPrivate() != private || back.Type() != typ {
						t.Errorf("read back %s private=%v %s, want %s private=%v", back.Fingerprint(), back.IsPrivate(), back.Type(), k.Fingerprint(), private)
					}
					if len(back.Attrs) != 0 {
						t.Errorf("attributes appeared: %v", back.Attrs)
					}
					if again := mustMarshal(t, back, f, private); !bytes.Equal(again, out) {
						t.Errorf("second write differs:\n%s\n%s", out, again)
					}

					// With every kind of attribute.
					k = withAttrs(k, fullAttrs(k))
					out = mustMarshal(t, k, f, private)
					back, err = ParseOne(out)
					if err != nil {
						t.Fatalf("%v\n%s", err, out)
					}
					if back.SPKIHash() != k.SPKIHash() || back.IsPrivate() != private {
						t.Errorf("with attributes: read back %s private=%v", back.Fingerprint(), back.IsPrivate())
					}
					checkKnownAttrs(t, back)
					if f == JWK {
						// JWK keeps every value as JSON, exactly.
						if !slices.Equal(slices.Sorted(maps.Keys(back.Attrs)), slices.Sorted(maps.Keys(k.Attrs))) {
							t.Errorf("attribute names %v, want %v", slices.Sorted(maps.Keys(back.Attrs)), slices.Sorted(maps.Keys(k.Attrs)))
						}
						for name, raw := range k.Attrs {
							if got := canonical(t, back.Attrs[name]); got != canonical(t, raw) {
								t.Errorf("attribute %q = %s, want %s", name, got, canonical(t, raw))
							}
						}
						m := jsonObject(t, out)
						if m["kid"] != k.KeyID() {
							t.Errorf("kid member %v", m["kid"])
						}
						if private {
							if _, ok := m["d"]; !ok {
								t.Errorf("private JWK without d: %s", out)
							}
						} else {
							noPrivateMembers(t, m)
						}
					} else {
						// PEM: headers; the nested value becomes its compact JSON text.
						blk, _ := pem.Decode(out)
						if want := "PUBLIC KEY"; !private && blk.Type != want || private && blk.Type != "PRIVATE KEY" {
							t.Errorf("block type %q", blk.Type)
						}
						if blk.Headers["hosts"] != "legacy.example.com" || blk.Headers["kid"] != k.KeyID() || blk.Headers["from"] != "10.0.0.0/8,192.168.1.7,2001:db8::/32" {
							t.Errorf("headers %v", blk.Headers)
						}
						if x, _ := back.Attrs.String("x-extra"); canonical(t, []byte(x)) != canonical(t, k.Attrs["x-extra"]) {
							t.Errorf("x-extra = %q", x)
						}
					}
					// And again: the second generation is byte-identical.
					again := mustMarshal(t, back, f, private)
					if !bytes.Equal(again, out) {
						t.Errorf("rewrite changed the file:\n%s\n---\n%s", out, again)
					}
				})
			}
		}
	}
}

// MarshalPublic never writes a private member, even one a caller put in
// the attributes.
func TestMarshalPublicNeverLeaks(t *testing.T) {
	for _, typ := range testTypes {
		t.Run(string(typ), func(t *testing.T) {
			k := testKey(t, typ)
			secret := `"c2VjcmV0LXNlY3JldC1zZWNyZXQ"`
			attrs := Attributes{}
			for _, name := range append(privateMembers, "kty", "crv", "x", "y", "n", "e") {
				attrs[name] = json.RawMessage(secret)
			}
			attrs.SetString(AttrComment, "ok")
			k = withAttrs(k, attrs)

			out := mustMarshal(t, k, JWK, false)
			m := jsonObject(t, out)
			noPrivateMembers(t, m)
			if bytes.Contains(out, []byte("c2VjcmV0")) {
				t.Errorf("an attribute named like key material was written:\n%s", out)
			}
			if m["comment"] != "ok" {
				t.Errorf("comment lost: %s", out)
			}
			back, err := ParseOne(out)
			if err != nil || back.IsPrivate() || back.SPKIHash() != k.SPKIHash() {
				t.Fatalf("read back: %v", err)
			}

			// The private JWK holds the real key material, not the attributes.
			priv := mustMarshal(t, k, JWK, true)
			if bytes.Contains(priv, []byte("c2VjcmV0")) {
				t.Errorf("an attribute overrode key material:\n%s", priv)
			}
			if back, err := ParseOne(priv); err != nil || !back.IsPrivate() || back.SPKIHash() != k.SPKIHash() {
				t.Errorf("private read back: %v", err)
			}

			pemOut := mustMarshal(t, k, PEM, false)
			blk, rest := pem.Decode(pemOut)
			if blk == nil || len(bytes.TrimSpace(rest)) != 0 || blk.Type != "PUBLIC KEY" {
				t.Fatalf("public PEM:\n%s", pemOut)
			}
			for name := range blk.Headers {
				if name != "comment" {
					t.Errorf("public PEM has header %q", name)
				}
			}
			if bytes.Contains(pemOut, []byte("PRIVATE")) {
				t.Errorf("public PEM holds a private key:\n%s", pemOut)
			}

			// A public key parsed from a private file, and PublicKey(), too.
			pub := k.PublicKey()
			noPrivateMembers(t, jsonObject(t, mustMarshal(t, pub, JWK, false)))
			set, err := MarshalPublicSet([]*Key{k, pub}, JWK)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(set, []byte("c2VjcmV0")) {
				t.Errorf("public set leaks:\n%s", set)
			}
			var s struct{ Keys []map[string]any }
			if err := json.Unmarshal(set, &s); err != nil || len(s.Keys) != 2 {
				t.Fatalf("set: %v\n%s", err, set)
			}
			for _, m := range s.Keys {
				noPrivateMembers(t, m)
			}
		})
	}
}

func TestSetsAndBundles(t *testing.T) {
	var keys []*Key
	for i, typ := range testTypes {
		k := withAttrs(testKey(t, typ), Attributes{})
		k.Attrs.SetString(AttrComment, "key "+string(typ))
		k.Attrs.SetList(AttrAddress, []string{"h" + string(rune('a'+i)) + ".example.com"})
		keys = append(keys, k)
	}
	for _, f := range []Format{JWK, PEM} {
		t.Run(string(f), func(t *testing.T) {
			out, err := MarshalPublicSet(keys, f)
			if err != nil {
				t.Fatal(err)
			}
			if f == JWK {
				if !bytes.HasPrefix(out, []byte("{\n  \"keys\": [")) || !bytes.HasSuffix(out, []byte("}\n")) {
					t.Errorf("not an indented JWK Set:\n%s", out)
				}
				var s struct{ Keys []map[string]any }
				if err := json.Unmarshal(out, &s); err != nil || len(s.Keys) != len(keys) {
					t.Fatalf("%v\n%s", err, out)
				}
				for _, m := range s.Keys {
					noPrivateMembers(t, m)
				}
			} else if n := bytes.Count(out, []byte("-----BEGIN PUBLIC KEY-----")); n != len(keys) {
				t.Errorf("%d PUBLIC KEY blocks, want %d", n, len(keys))
			}
			back, err := Parse(out)
			if err != nil {
				t.Fatal(err)
			}
			sameKeys(t, back, keys)
			for i, k := range back {
				if k.IsPrivate() {
					t.Errorf("key %d is private", i)
				}
				if k.Attrs.Comment() != keys[i].Attrs.Comment() {
					t.Errorf("key %d: comment %q", i, k.Attrs.Comment())
				}
				if a, _ := k.Attrs.Addresses(); len(a) != 1 || a[0] != "h"+string(rune('a'+i))+".example.com" {
					t.Errorf("key %d: addresses %q", i, a)
				}
			}
			if again, _ := MarshalPublicSet(back, f); !bytes.Equal(again, out) {
				t.Errorf("rewrite differs:\n%s\n%s", out, again)
			}
			if _, err := ParseOne(out); err == nil {
				t.Error("ParseOne accepted several keys")
			}
		})
	}
	// A JWK Set of one key, and an empty one.
	out, _ := MarshalPublicSet(keys[:1], JWK)
	if k, err := ParseOne(out); err != nil || !k.Equal(keys[0]) {
		t.Errorf("set of one: %v", err)
	}
	if _, err := Parse([]byte(`{"keys":[]}`)); asParseError(t, err).Member != "keys" {
		t.Errorf("empty set: %v", err)
	}
}

// PEM headers written by hand, as libtrust and admins write them.
func TestPEMHeaders(t *testing.T) {
	k := testKey(t, EC256)
	blk := &pem.Block{Type: "PUBLIC KEY", Bytes: k.SPKI(), Headers: map[string]string{
		"address": " a.example.com , b.example.com:22 ,",
		"comment": "one, two",
		"from":    "10.1.0.0/16",
		"expires": "2031-05-06T07:08:09+02:00",
		"custom":  `{"a":1}`,
	}}
	back, err := ParseOne(pem.EncodeToMemory(blk))
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := back.Attrs.Addresses(); strings.Join(a, " ") != "a.example.com b.example.com:22" {
		t.Errorf("address = %q", a)
	}
	for name, want := range map[string]string{"address": `["a.example.com","b.example.com:22"]`, "from": `["10.1.0.0/16"]`, "comment": `"one, two"`} {
		if got := canonical(t, back.Attrs[name]); got != want {
			t.Errorf("header %s read as %s, want %s", name, got, want)
		}
	}
	if back.Attrs.Comment() != "one, two" {
		t.Errorf("comment = %q: a comment is not a list", back.Attrs.Comment())
	}
	if s, _ := back.Attrs.String("custom"); s != `{"a":1}` {
		t.Errorf("custom = %q", s)
	}
	if _, err := back.Attrs.Expires(); err != nil {
		t.Error(err)
	}
	// Bad header values are refused when read, like bad JWK members.
	for name, value := range map[string]string{"expires": "tomorrow", "from": "example.com", "kid": "AAAA:BBBB:CCCC:DDDD:EEEE:FFFF:GGGG:HHHH:IIII:JJJJ:KKKK:LLLL"} {
		blk := &pem.Block{Type: "PUBLIC KEY", Bytes: k.SPKI(), Headers: map[string]string{name: value}}
		pe := asParseError(t, func() error { _, err := Parse(pem.EncodeToMemory(blk)); return err }())
		if pe.Member != name || pe.Line != 1 {
			t.Errorf("%s: %v (member %q, line %d)", name, pe, pe.Member, pe.Line)
		}
	}
	// Attributes that cannot be PEM headers are refused on write, not
	// written corrupt.
	for _, a := range []Attributes{
		{"comment": json.RawMessage(`"two\nlines"`)},
		{"bad:name": json.RawMessage(`"v"`)},
		{" kid": json.RawMessage(`"2222:2222:2222:2222:2222:2222:2222:2222:2222:2222:2222:2222"`)}, // would read back as kid
		{"x ": json.RawMessage(`"v"`)},
		{"kid": json.RawMessage(`" 2222:2222:2222:2222:2222:2222:2222:2222:2222:2222:2222:2222"`)}, // a label in JWK, a wrong key ID once trimmed
		{"comment": json.RawMessage(`"trailing "`)},
		{"hosts": json.RawMessage(`["a.example,b.example"]`)},
		{"hosts": json.RawMessage(`[" a.example"]`)},
		{"hosts": json.RawMessage(`[""]`)},
		{"comment": json.RawMessage(`"see -----BEGIN X"`)}, // the reader would take it for the next block
		{"-----x": json.RawMessage(`"v"`)},
		{"from": json.RawMessage(`""`)},   // anywhere in a JWK, an empty list (nowhere) read back
		{"from": json.RawMessage(`[]`)},   // likewise
		{"from": json.RawMessage(`null`)}, // likewise
		{"comment": json.RawMessage(`"lone \ud800 surrogate"`)},
		{"": json.RawMessage(`"v"`)},
		{"extra": json.RawMessage(`"tab\there"`)},
		{"extra": json.RawMessage(`["a","b\u0007"]`)},
		// PEM's own headers: written, the block would read as encrypted.
		{"Proc-Type": json.RawMessage(`"4,ENCRYPTED"`)},
		{"DEK-Info": json.RawMessage(`"AES-128-CBC,00"`)},
	} {
		if out, err := withAttrs(k, a).MarshalPublic(PEM); err == nil {
			t.Errorf("%v written as PEM:\n%s", a, out)
		}
	}
	// Headers JWK gives a meaning of their own: key material is refused,
	// as are the JOSE parameters a header cannot carry; use and alg are
	// plain strings and survive PEM -> JWK -> parse.
	for h, want := range map[string]string{"d": "is a JWK key member", "x": "is a JWK key member", "x5c": "JOSE parameter", "key_ops": "JOSE parameter"} {
		blk := &pem.Block{Type: "PUBLIC KEY", Bytes: k.SPKI(), Headers: map[string]string{h: "AAAA"}}
		if _, err := ParseOne(pem.EncodeToMemory(blk)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("PEM header %q: got %v, want an error saying %q", h, err, want)
		}
	}
	// What the writer refuses, the reader refuses too, so PEM -> PEM is
	// exact: an empty name, a tab, an escape.
	for _, hdr := range []string{": v", "a: x\ty", "a\x1b[2J: v"} {
		block := "-----BEGIN PUBLIC KEY-----\n" + hdr + "\n\n" + strings.SplitN(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: k.SPKI()})), "\n", 2)[1]
		if back, err := ParseOne([]byte(block)); err == nil {
			t.Errorf("header %q read as %v", hdr, back.Attrs)
		}
	}
	// null is JSON text in a header, not an empty string.
	if out, err := withAttrs(k, Attributes{"x-null": json.RawMessage(`null`)}).MarshalPublic(PEM); err != nil || !strings.Contains(string(out), "x-null: null\n") {
		t.Errorf("null attribute as PEM: %v\n%s", err, out)
	}
	blk = &pem.Block{Type: "PUBLIC KEY", Bytes: k.SPKI(), Headers: map[string]string{"use": "sig", "alg": "ES256"}}
	if back, err := ParseOne(pem.EncodeToMemory(blk)); err != nil {
		t.Errorf("use and alg headers: %v", err)
	} else if again, err := ParseOne(mustMarshal(t, back, JWK, false)); err != nil || len(again.Attrs) != 2 {
		t.Errorf("use and alg through JWK: %v %v", again, err)
	}
	if out, err := withAttrs(k, Attributes{"key_ops": json.RawMessage(`["verify"]`)}).MarshalPublic(PEM); err == nil {
		t.Errorf("key_ops written as a PEM header:\n%s", out)
	}
	// Encryption headers are not attributes.
	blk = &pem.Block{Type: "PUBLIC KEY", Bytes: k.SPKI(), Headers: map[string]string{"DEK-Info": "AES-128-CBC,00", "comment": "c"}}
	if back, err := ParseOne(pem.EncodeToMemory(blk)); err != nil || len(back.Attrs) != 1 {
		t.Errorf("DEK-Info: %v %v", back, err)
	}
}

func TestAttributes(t *testing.T) {
	a := Attributes{
		"s":       json.RawMessage(`"x"`),
		"n":       json.RawMessage(`5`),
		"l":       json.RawMessage(`["a","b"]`),
		"csv":     json.RawMessage(`"a, b,,c"`),
		"expires": json.RawMessage(`"2030-01-31T00:00:00Z"`),
	}
	if s, err := a.String("s"); s != "x" || err != nil {
		t.Errorf("String(s) = %q, %v", s, err)
	}
	if s, err := a.String("missing"); s != "" || err != nil {
		t.Errorf("String(missing) = %q, %v", s, err)
	}
	if _, err := a.String("n"); err == nil {
		t.Error("String of a number succeeded")
	}
	if l, err := a.List("csv"); strings.Join(l, "|") != "a|b|c" || err != nil {
		t.Errorf("List(csv) = %q, %v", l, err)
	}
	if l, err := a.List("l"); strings.Join(l, "|") != "a|b" || err != nil {
		t.Errorf("List(l) = %q, %v", l, err)
	}
	if _, err := a.List("n"); err == nil {
		t.Error("List of a number succeeded")
	}
	if l, err := a.List("missing"); l != nil || err != nil {
		t.Errorf("List(missing) = %q, %v", l, err)
	}
	c := a.Clone()
	c.SetList("l", nil)
	if string(c["l"]) != "[]" || string(a["l"]) != `["a","b"]` {
		t.Errorf("Clone/SetList: %s %s", c["l"], a["l"])
	}
	if Attributes(nil).Clone() != nil {
		t.Error("Clone(nil) != nil")
	}
	var none Attributes
	if addrs, err := none.Addresses(); addrs != nil || err != nil {
		t.Errorf("nil Addresses() = %v, %v", addrs, err)
	}
	if exp, err := none.Expires(); !exp.IsZero() || err != nil {
		t.Errorf("nil Expires() = %v, %v", exp, err)
	}
	if from, err := none.From(); from != nil || err != nil {
		t.Errorf("nil From() = %v, %v", from, err)
	}
	bad := Attributes{"expires": json.RawMessage(`"2030-01-31"`)}
	if _, err := bad.Expires(); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("Expires(date) = %v", err)
	}
	if p, err := ParsePrefixes([]string{"10.0.0.0/8", "::ffff:10.0.0.1", "fe80::1"}); err != nil || p[0].String() != "10.0.0.0/8" || p[1].String() != "10.0.0.1/32" || p[2].Bits() != 128 {
		t.Errorf("ParsePrefixes = %v, %v", p, err)
	}
	if _, err := ParsePrefixes([]string{"10.0.0.0/33"}); err == nil {
		t.Error("ParsePrefixes(10.0.0.0/33) succeeded")
	}
}
