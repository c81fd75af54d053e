package jwk

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestDetectFormat(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Format
		err  error
	}{
		{`{"kty":"EC"}`, JWK, nil},
		{"\xef\xbb\xbf\r\n  {", JWK, nil},
		{"Certificate:\n    Data: ...\n-----BEGIN CERTIFICATE-----\n", PEM, nil},
		{"ssh-ed25519 AAAA", OpenSSH, nil},
		{"anything else", OpenSSH, nil},
		{"", "", ErrNoKey},
		{"\xef\xbb\xbf \n", "", ErrNoKey},
		{"ssh-ed25519 \x00", "", ErrUnknownFormat},
		{"\xff\xfe{", "", ErrUnknownFormat},
	} {
		got, err := DetectFormat([]byte(c.in))
		if got != c.want || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("DetectFormat(%q) = %q, %v; want %q, %v", c.in, got, err, c.want, c.err)
		}
	}
}

// Files edited on Windows, with a byte order mark and CRLF line ends, and
// files with text around the PEM blocks (openssl x509 -text) read as
// usual, with the same line numbers.
func TestParseTolerance(t *testing.T) {
	ec, ed := testKey(t, EC256), testKey(t, Ed25519)
	crlf := func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }
	bom := func(b []byte) []byte { return append([]byte("\xef\xbb\xbf"), b...) }
	jwkOut := mustMarshal(t, withAttrs(ec, Attributes{"comment": []byte(`"c"`)}), JWK, false)
	bundle, _ := MarshalPublicSet([]*Key{ec, ed}, PEM)
	sshLines := string(mustMarshalSSH(t, ec)) + "\n# a comment\n   \n" + string(mustMarshalSSH(t, ed))
	for name, data := range map[string][]byte{
		"JWK CRLF BOM":            bom(crlf(jwkOut)),
		"PEM CRLF":                crlf(bundle),
		"PEM BOM":                 bom(bundle),
		"PEM with text":           append(append([]byte("Subject: CN=x\nSome text -----\n"), bundle...), "trailing words\n"...),
		"OpenSSH CRLF":            crlf([]byte(sshLines)),
		"OpenSSH BOM":             bom([]byte(sshLines)),
		"OpenSSH indented":        []byte("  " + strings.ReplaceAll(sshLines, "\n", "\n\t")),
		"JWK Set CRLF":            crlf(must(MarshalPublicSet([]*Key{ec, ed}, JWK))),
		"JWK Set compact":         []byte(`{"keys":[` + string(mustMarshal(t, ec, JWK, false)) + "," + string(mustMarshal(t, ed, JWK, false)) + `]}`),
		"JWK Set with other data": []byte(`{"x-note":{"a":[1]},"keys":[` + string(mustMarshal(t, ec, JWK, false)) + "," + string(mustMarshal(t, ed, JWK, false)) + `]}`),
	} {
		keys, err := Parse(data)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if strings.HasPrefix(name, "JWK ") && !strings.HasPrefix(name, "JWK Set") {
			sameKeys(t, keys, []*Key{ec})
			if keys[0].Attrs.Comment() != "c" {
				t.Errorf("%s: comment %q", name, keys[0].Attrs.Comment())
			}
			continue
		}
		sameKeys(t, keys, []*Key{ec, ed})
	}

	// Line numbers count CRLF lines too.
	bad := crlf([]byte(sshLines + "\nssh-ed25519 AAAAbroken\n"))
	if pe := asParseError(t, func() error { _, err := Parse(bad); return err }()); pe.Line != 7 {
		t.Errorf("CRLF OpenSSH: line %d, want 7", pe.Line)
	}
	bad = crlf(append(bytes.Clone(bundle), "-----BEGIN PUBLIC KEY-----\nAAAA\n"...))
	if pe := asParseError(t, func() error { _, err := Parse(bad); return err }()); pe.Line != bytes.Count(bundle, []byte("\n"))+1 {
		t.Errorf("CRLF PEM: line %d, want %d", pe.Line, bytes.Count(bundle, []byte("\n"))+1)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// OpenSSH comments keep their spaces; keys without one have no attributes.
func TestOpenSSHComments(t *testing.T) {
	line := strings.TrimSpace(string(mustMarshalSSH(t, testKey(t, EC256))))
	line = strings.TrimSuffix(line, " user@host")
	for in, want := range map[string]string{
		line:                             "",
		line + " alice":                  "alice",
		line + " alice  on  laptop ":     "alice  on  laptop",
		`from="10.0.0.1" ` + line:        "",
		`FROM="10.0.0.1" ` + line + " x": "x",
	} {
		k, err := ParseOne([]byte(in))
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if k.Attrs.Comment() != want {
			t.Errorf("%q: comment %q, want %q", in, k.Attrs.Comment(), want)
		}
		if want == "" && !strings.Contains(strings.ToLower(in), "from=") && k.Attrs != nil {
			t.Errorf("%q: attributes %v", in, k.Attrs)
		}
	}
}

func TestParseOne(t *testing.T) {
	set := must(MarshalPublicSet([]*Key{testKey(t, EC256), testKey(t, Ed25519)}, JWK))
	_, err := ParseOne(set)
	pe := asParseError(t, err)
	wantSubstrings(t, pe.Error(), "2 keys")
	if _, err := ParseOne(nil); !errors.Is(err, ErrNoKey) {
		t.Errorf("ParseOne(nil) = %v", err)
	}
}
