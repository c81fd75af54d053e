package jwk

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// vectorA1 is RFC 7517 A.1's key without its attributes.
const (
	vecX = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"
	vecY = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"
	vecD = "870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"
)

func ecJWK(x, y string) string {
	return `{"kty":"EC","crv":"P-256","x":"` + x + `","y":"` + y + `"}`
}

type badCase struct {
	name    string
	data    []byte
	is      error    // errors.Is target, or nil
	subs    []string // substrings of the message
	line    int      // expected ParseError.Line; -1: don't check
	member  string   // expected ParseError.Member; "-": don't check
	private bool     // write the file 0600
}

func badCases(t *testing.T) []badCase {
	ec := testKey(t, EC256)
	pubPEM := mustMarshal(t, ec, PEM, false)
	endAt := bytes.Index(pubPEM, []byte("-----END"))

	badB64 := bytes.Clone(pubPEM)
	badB64[len("-----BEGIN PUBLIC KEY-----\n")+5] = '*'

	offCurveDER := bytes.Clone(ec.SPKI())
	offCurveDER[len(offCurveDER)-1] ^= 1
	offCurvePEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: offCurveDER})

	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der1024, _ := x509.MarshalPKIXPublicKey(&rsa1024.PublicKey)
	sshPub1024, _ := ssh.NewPublicKey(&rsa1024.PublicKey)
	jwk1024 := `{"kty":"RSA","e":"AQAB","n":"` + base64.RawURLEncoding.EncodeToString(rsa1024.N.Bytes()) + `"}`

	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	x25519DER, _ := x509.MarshalPKCS8PrivateKey(x25519)

	other := mustGenerate(t, EC256)
	//lint:ignore SA1019 a JWK's "d" of another key, for the mismatch case
	otherD := b64u(other.Signer().(*ecdsa.PrivateKey).D.FillBytes(make([]byte, 32)))

	good := string(mustMarshal(t, ec, JWK, false))
	sshLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(mustSSHPub(t, ec))))

	// A security-key (FIDO) public key: sk-ssh-ed25519@openssh.com.
	var sk []byte
	for _, f := range [][]byte{[]byte("sk-ssh-ed25519@openssh.com"), make([]byte, 32), []byte("ssh:")} {
		sk = binary.BigEndian.AppendUint32(sk, uint32(len(f)))
		sk = append(sk, f...)
	}
	skLine := "sk-ssh-ed25519@openssh.com " + base64.StdEncoding.EncodeToString(sk) + " fido"

	return []badCase{
		// PEM
		{name: "truncated PEM", data: pubPEM[:endAt], subs: []string{"truncated PEM"}, line: 1, member: ""},
		// Found by FuzzParse: an SSH mpint with its top bit set is a negative modulus.
		{name: "negative RSA modulus (SSH)", data: []byte("ssh-rsa AAAAB3NzaC1yc2EAAAADA001AAABAY" + strings.Repeat("0", 342) + "\n"), subs: []string{"modulus is not a positive odd number"}, line: 1, member: ""},
		{name: "PEM cut in the middle", data: pubPEM[:endAt/2], subs: []string{"truncated PEM"}, line: 1, member: ""},
		{name: "bad base64", data: badB64, subs: []string{"bad base64"}, line: 1, member: ""},
		{name: "PEM EC point not on curve", data: offCurvePEM, subs: []string{"PUBLIC KEY block", "not on curve"}, line: 1, member: ""},
		{name: "PEM RSA 1024", data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der1024}), is: ErrUnsupportedKey, subs: []string{"1024 bits", "2048"}, line: 1, member: ""},
		{name: "PEM unknown block", data: pem.EncodeToMemory(&pem.Block{Type: "DSA PRIVATE KEY", Bytes: []byte{1}}), is: ErrUnsupportedKey, subs: []string{`"DSA PRIVATE KEY"`}, line: 1, member: ""},
		{name: "PEM X25519", data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: x25519DER}), is: ErrUnsupportedKey, subs: []string{"cannot sign (X25519"}, line: 1, private: true},
		{name: "PEM garbage DER", data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("not DER")}), subs: []string{"PUBLIC KEY block", "asn1"}, line: 1},
		{name: "PEM only EC PARAMETERS", data: pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}), is: ErrNoKey, line: 0},
		{name: "PEM second block bad", data: append(append(bytes.Clone(pubPEM), "\n# comment\n"...), pubPEM[:endAt]...), subs: []string{"truncated PEM"}, line: 7, member: ""},
		{name: "PEM first block bad, second good", data: append(append(bytes.Clone(pubPEM[:endAt]), "\n"...), mustMarshal(t, other, PEM, false)...), subs: []string{"truncated PEM"}, line: 1, member: ""},
		{name: "PEM first block bad base64, second good", data: append(bytes.Clone(badB64), mustMarshal(t, other, PEM, false)...), subs: []string{"bad base64"}, line: 1, member: ""},
		{name: "PEM bad header", data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ec.SPKI(), Headers: map[string]string{"expires": "soon"}}), subs: []string{"RFC 3339"}, line: 1, member: "expires"},

		{name: "PEM header not UTF-8", data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ec.SPKI(), Headers: map[string]string{"\xf9": "a", "\xfa": "b"}}), subs: []string{"not valid UTF-8"}, line: 1, member: ""},
		{name: "PEM header value not UTF-8", data: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ec.SPKI(), Headers: map[string]string{"comment": "caf\xe9"}}), subs: []string{"not valid UTF-8", `"comment"`}, line: 1, member: ""},

		// JWK
		{name: "JWK member name not UTF-8", data: []byte(`{"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + "\",\"\xf9\":1}"), subs: []string{"not valid UTF-8"}, line: -1, member: ""},
		{name: "JWK value not UTF-8", data: []byte(`{"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + "\",\"comment\":\"caf\xe9\"}"), subs: []string{"not valid UTF-8"}, line: -1, member: ""},
		{name: "JWK EC point not on curve", data: []byte(ecJWK(vecX, "5"+vecY[1:])), subs: []string{"not on", "curve"}, line: -1, member: "-"},
		{name: "JWK missing x", data: []byte(`{"kty":"EC","crv":"P-256","y":"` + vecY + `"}`), subs: []string{"missing"}, line: -1, member: "x"},
		{name: "JWK missing y", data: []byte(`{"kty":"EC","crv":"P-256","x":"` + vecX + `"}`), subs: []string{"missing"}, line: -1, member: "y"},
		{name: "JWK wrong-length x", data: []byte(ecJWK(vecX[:40], vecY)), subs: []string{"wrong length for x"}, line: -1, member: "x"},
		{name: "JWK kty oct", data: []byte(`{"kty":"oct","k":"c2VjcmV0"}`), is: ErrUnsupportedKey, subs: []string{`"oct"`}, line: -1, member: "kty"},
		{name: "JWK kty foo", data: []byte(`{"kty":"foo"}`), is: ErrUnsupportedKey, subs: []string{`"foo"`}, line: -1, member: "kty"},
		{name: "JWK crv P-192", data: []byte(`{"kty":"EC","crv":"P-192","x":"AA","y":"AA"}`), is: ErrUnsupportedKey, subs: []string{`"P-192"`}, line: -1, member: "crv"},
		{name: "JWK OKP X25519", data: []byte(`{"kty":"OKP","crv":"X25519","x":"` + vecX + `"}`), is: ErrUnsupportedKey, subs: []string{`"X25519"`}, line: -1, member: "-"},
		{name: "JWK RSA 1024", data: []byte(jwk1024), is: ErrUnsupportedKey, subs: []string{"1024 bits"}, line: -1, member: "-"},
		{name: "JWK duplicate member", data: []byte("{\"kty\":\"EC\",\n\"crv\":\"P-256\",\n\"x\":\"" + vecX + "\",\n\"y\":\"" + vecY + "\",\n\"x\":\"" + vecX + "\"}"), subs: []string{`"x" appears twice`}, line: 5, member: ""},
		{name: "JWK escaped duplicate", data: []byte(`{"kty":"EC","k\u0074y":"RSA"}`), subs: []string{`"kty" appears twice`}, line: 1, member: ""},
		{name: "JSON nested 1000 deep", data: []byte(`{"kty":"EC","a":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + "}"), subs: []string{"nested deeper than 32"}, line: 1, member: ""},
		{name: "JSON nested objects", data: []byte(strings.Repeat(`{"a":`, 1000) + "1" + strings.Repeat("}", 1000)), subs: []string{"nested deeper"}, line: 1, member: ""},
		{name: "trailing garbage", data: []byte(good + "garbage\n"), subs: []string{"unexpected data after the end"}, line: strings.Count(good, "\n") + 1, member: ""},
		{name: "two JSON objects", data: []byte(good + good), subs: []string{"unexpected data after the end"}, line: -1, member: ""},
		{name: "truncated JSON", data: []byte(good[:len(good)/2]), subs: []string{"invalid JSON"}, line: -1, member: ""},
		{name: "JSON without kty or keys", data: []byte(`{"x":"` + vecX + `"}`), subs: []string{`"kty"`, `"keys"`}, line: 0, member: "kty"},
		{name: "JSON kid not a string", data: []byte(`{"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `","kid":1}`), line: -1, member: "-"},
		{name: "JWK expires not RFC 3339", data: []byte(`{"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `","expires":"2030-01-31"}`), subs: []string{"RFC 3339"}, line: 0, member: "expires"},
		{name: "JWK from not a network", data: []byte(`{"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `","from":["10.0.0.0/8","example.com"]}`), subs: []string{`"example.com"`, "CIDR"}, line: 0, member: "from"},
		{name: "JWK address a number", data: []byte(`{"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `","address":5}`), subs: []string{"string or a list"}, line: 0, member: "address"},
		{name: "JWK comment a list", data: []byte(`{"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `","comment":["a"]}`), subs: []string{"want a string"}, line: 0, member: "comment"},
		{name: "JWK libtrust kid mismatch", data: []byte(`{"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `","kid":"` + ec.KeyID() + `"}`), subs: []string{ec.KeyID(), "KG4U:JTP2:KRGU:YMTT:VJV7:GUDC:LJ65:KO53:NJYX:EMTU:6U4L:DGRA"}, line: 0, member: "kid"},
		{name: "JWK EC d of another key", data: []byte(`{"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `","d":"` + otherD + `"}`), subs: []string{"not the public key"}, line: -1, member: "-", private: true},
		{name: "JWK Ed25519 x of another key", data: []byte(`{"kty":"OKP","crv":"Ed25519","x":"` + b64u(testKey(t, Ed25519).SPKI()[12:]) + `","d":"` + b64u(mustGenerate(t, Ed25519).Signer().(interface{ Seed() []byte }).Seed()) + `"}`), subs: []string{"does not match"}, line: -1, member: "-", private: true},

		// JWK Sets
		{name: "JWK Set with one bad key", data: []byte("{\"keys\": [\n" + ecJWK(vecX, vecY) + ",\n  " + ecJWK(vecX[:40], vecY) + "\n]}"), subs: []string{"wrong length for x"}, line: 3, member: "keys[1].x"},
		{name: "JWK Set with a kid mismatch", data: []byte("{\"keys\": [\n" + good + ",\n" + `{"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `","kid":"` + ec.KeyID() + `"}]}`), subs: []string{ec.KeyID()}, line: strings.Count(good, "\n") + 3, member: "keys[1].kid"},
		{name: "JWK Set element not an object", data: []byte(`{"keys":[` + ecJWK(vecX, vecY) + `,"x"]}`), subs: []string{"expected an object"}, line: 1, member: "keys[1]"},
		{name: "JWK Set keys not a list", data: []byte(`{"keys":{}}`), subs: []string{"expected an array"}, line: 1, member: "keys"},
		{name: "empty JWK Set", data: []byte(`{"keys":[]}`), is: ErrNoKey, line: -1, member: "keys"},

		// OpenSSH lines
		{name: "OpenSSH third line bad", data: []byte("# keys\n" + sshLine + " a\n\n" + sshLine[:30] + " b\n"), subs: []string{"not an OpenSSH public key line"}, line: 4, member: ""},
		{name: "OpenSSH RSA 1024", data: ssh.MarshalAuthorizedKey(sshPub1024), is: ErrUnsupportedKey, subs: []string{"1024 bits"}, line: 1, member: ""},
		{name: "OpenSSH security key", data: []byte(skLine), is: ErrUnsupportedKey, subs: []string{"security-key"}, line: 1, member: ""},
		{name: "OpenSSH command option", data: []byte(`command="/bin/sh" ` + sshLine), subs: []string{"option", "command"}, line: 1, member: ""},
		{name: "only comments", data: []byte("# nothing\n\n# here\n"), is: ErrNoKey, line: 0, member: ""},

		// Not keys at all
		{name: "binary junk", data: []byte("\x7fELF\x02\x01\x01\x00\x00\x00\xff\xfe"), is: ErrUnknownFormat, subs: []string{"binary"}, line: 0, member: ""},
		{name: "invalid UTF-8", data: []byte("ssh-ed25519 \xff\xfe"), is: ErrUnknownFormat, line: 0, member: ""},
		{name: "prose", data: []byte("Dear admin,\nplease trust my key.\n"), is: ErrUnknownFormat, line: 0, member: ""},
		{name: "empty file", data: nil, is: ErrNoKey, line: 0, member: ""},
		{name: "white space only", data: []byte(" \n\t\r\n"), is: ErrNoKey, line: 0, member: ""},
	}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustSSHPub(t testing.TB, k *Key) ssh.PublicKey {
	t.Helper()
	p, err := ssh.NewPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadInput(t *testing.T) { runBadCases(t, badCases(t)) }

// runBadCases checks that ReadFile and Parse refuse each case as it says.
func runBadCases(t *testing.T, cases []badCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mode := os.FileMode(0o644)
			if c.private {
				mode = 0o600
			}
			path := writeFile(t, t.TempDir(), "key-file", c.data, mode)
			keys, err := ReadFile(path)
			if err == nil {
				t.Fatalf("accepted %d keys from:\n%s", len(keys), c.data)
			}
			pe := asParseError(t, err)
			if pe.File != path {
				t.Errorf("File = %q, want %q", pe.File, path)
			}
			msg := err.Error()
			wantSubstrings(t, msg, path)
			wantSubstrings(t, msg, c.subs...)
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q is not %q", msg, c.is)
			}
			if c.line >= 0 && pe.Line != c.line {
				t.Errorf("Line = %d, want %d (%s)", pe.Line, c.line, msg)
			}
			if c.member != "-" && pe.Member != c.member {
				t.Errorf("Member = %q, want %q (%s)", pe.Member, c.member, msg)
			}
			// Parse says the same without a file name.
			_, err2 := Parse(c.data)
			pe2 := asParseError(t, err2)
			if pe2.File != "" || pe2.Line != pe.Line || pe2.Member != pe.Member || !strings.HasPrefix(err2.Error(), "input") {
				t.Errorf("Parse: %v, ReadFile: %v", err2, err)
			}
		})
	}
}

func TestTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.json")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxFileSize + 1); err != nil { // sparse: fast
		t.Fatal(err)
	}
	f.Close()
	_, err = ReadFile(path)
	pe := asParseError(t, err)
	if !errors.Is(err, ErrTooLarge) || pe.File != path {
		t.Errorf("got %v, want ErrTooLarge naming %s", err, path)
	}
	// Refused from its size alone, before reading it.
	wantSubstrings(t, err.Error(), "64 MiB", "67108865 bytes")

	// Exactly MaxFileSize is read (and refused for what it holds).
	if err := os.Truncate(path, MaxFileSize); err != nil {
		t.Fatal(err)
	}
	_, err = ReadFile(path)
	if errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("a file of exactly MaxFileSize: %v, want ErrUnknownFormat (zeros)", err)
	}
}

func TestReadFileNotAFile(t *testing.T) {
	dir := t.TempDir()
	_, err := ReadFile(dir)
	pe := asParseError(t, err)
	if pe.File != dir || !strings.Contains(err.Error(), "directory") {
		t.Errorf("ReadFile(dir) = %v", err)
	}
	_, err = ReadFile(filepath.Join(dir, "missing"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v, want ErrNotExist", err)
	}
}

// ParseError formats where and why.
func TestParseErrorFormat(t *testing.T) {
	for _, c := range []struct {
		e    ParseError
		want string
	}{
		{ParseError{Err: ErrNoKey}, "input: no key found"},
		{ParseError{File: "f.pem", Line: 3, Err: ErrNoKey}, "f.pem:3: no key found"},
		{ParseError{File: "f.json", Line: 2, Member: "keys[1].x", Err: ErrNoKey}, `f.json:2: member "keys[1].x": no key found`},
		{ParseError{File: "f.json", Member: "kid", Err: ErrNoKey}, `f.json: member "kid": no key found`},
	} {
		if got := c.e.Error(); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
		if !errors.Is(&c.e, ErrNoKey) {
			t.Error("Unwrap lost the cause")
		}
	}
	var pe *PermissionError = &PermissionError{File: "k.json", Mode: 0o644}
	wantSubstrings(t, pe.Error(), "jwk: ", "0644", "k.json")
	mm := &KeyIDMismatchError{Stated: "A", Computed: "B"}
	wantSubstrings(t, mm.Error(), "kid A", "key ID is B")
}
