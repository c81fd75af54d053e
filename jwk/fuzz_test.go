package jwk

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Fuzz targets: go test -run '^$' -fuzz '^FuzzParse$' ./jwk (and the
// others). Seeds are the shared test vectors, the Docker files and keys of
// every type in every format; testdata/fuzz holds the corpus the long runs
// built (docs/security.md, fourth series), past crashers included, so that
// every go test replays what they reached.

// addFileSeeds adds every file under testdata/vectors and testdata/docker,
// subdirectories included (a directory among them once failed every
// fuzzing worker at its start).
func addFileSeeds(f *testing.F) {
	for _, dir := range []string{"vectors", "docker"} {
		root := filepath.Join("..", "testdata", dir)
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, ".md") {
				return err
			}
			data, err := os.ReadFile(path)
			f.Add(data)
			return err
		})
		if err != nil {
			f.Fatal(err)
		}
	}
}

func addKeySeeds(f *testing.F) {
	for _, typ := range testTypes {
		k := testKey(f, typ)
		a := withAttrs(k, fullAttrs(k))
		for _, fm := range []Format{JWK, PEM} {
			f.Add(mustMarshal(f, k, fm, true))
			f.Add(mustMarshal(f, a, fm, false))
		}
		f.Add(bytes.TrimSpace(mustMarshalSSH(f, k)))
	}
	big := bigRSA(f) // larger than go-jose reads: keytool's own decoding
	f.Add(mustMarshal(f, big, JWK, true))
	f.Add(mustMarshal(f, big, JWK, false))
	set, _ := MarshalPublicSet([]*Key{testKey(f, EC256), testKey(f, Ed25519)}, JWK)
	f.Add(set)
	ssh := string(mustMarshalSSH(f, testKey(f, Ed25519)))
	f.Add([]byte("# comment\n" + `from="10.0.0.0/8" ` + ssh + "\n\n" + ssh))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `","kid":"1"},"x"]}`))
	f.Add([]byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nhosts: a,b\nkid: x\n\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nuse: enc\n\nAAAA\n-----END PUBLIC KEY-----\n"))
	// An RSA private key marked for signing (its public half is marked
	// for verifying: publicKeyOps), and one without dq and qi.
	rsaPriv := withAttrs(testKey(f, RSA2048), Attributes{"key_ops": []byte(`["sign"]`)})
	f.Add(mustMarshal(f, rsaPriv, JWK, true))
	f.Add([]byte(strings.Replace(strings.Replace(string(mustMarshal(f, testKey(f, RSA2048), JWK, true)), `"dq"`, `"x-dq"`, 1), `"qi"`, `"x-qi"`, 1)))
	f.Add([]byte("\xef\xbb\xbf{}"))
	addEncodingSeeds(f)
}

// addEncodingSeeds adds each key type in the PEM encodings keytool reads
// but does not write (PKCS #1, SEC 1, certificates, OpenSSH private keys),
// encrypted blocks, and a bundle of them: a fuzzer does not easily turn
// one block type into another with valid DER inside, so without these
// seeds it never reaches their code.
func addEncodingSeeds(f *testing.F) {
	var bundle []byte
	for _, typ := range testTypes {
		k := testKey(f, typ)
		signer := k.Signer()
		var blocks []*pem.Block
		switch priv := signer.(type) {
		case *rsa.PrivateKey:
			blocks = append(blocks,
				&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)},
				&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&priv.PublicKey)})
		case *ecdsa.PrivateKey:
			der, err := x509.MarshalECPrivateKey(priv)
			if err != nil {
				f.Fatal(err)
			}
			blocks = append(blocks, &pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "seed"},
			NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<31, 0)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
		if err != nil {
			f.Fatal(err)
		}
		blocks = append(blocks, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		if b, err := ssh.MarshalPrivateKey(signer, "seed"); err == nil {
			blocks = append(blocks, b)
		}
		for _, b := range blocks {
			data := pem.EncodeToMemory(b)
			f.Add(data)
			bundle = append(bundle, data...)
		}
	}
	f.Add(bundle)
	// Attribute values in their less common forms: a string where a list
	// is usual, escapes, wrong types.
	ec := `"kty":"EC","crv":"P-256","x":"` + vecX + `","y":"` + vecY + `"`
	for _, attrs := range []string{
		`"address":"h1:1, h2:2","from":"10.0.0.0/8, ::1"`,
		`"hosts":["h\u0031:1"],"comment":"a\nb","expires":"2030-01-31T00:00:00\u005a"`,
		`"from":["x"]`, `"address":5`, `"expires":"soon"`, `"kid":{}`,
		`"use":"sig","key_ops":["verify"]`, `"use":"enc"`, `"key_ops":["sign"]`, `"key_ops":["verify","verify"]`,
	} {
		f.Add([]byte("{" + ec + "," + attrs + "}"))
	}
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00000000000000000000000000000000\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"))
}

func mustMarshalSSH(t testing.TB, k *Key) []byte {
	t.Helper()
	p := mustSSHPub(t, k)
	return append(bytes.TrimSpace(sshMarshalAuthorized(p)), " user@host\n"...)
}

func FuzzParse(f *testing.F) {
	addFileSeeds(f)
	addKeySeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := Parse(data)
		if err != nil {
			if keys != nil {
				t.Fatal("keys and an error")
			}
			asParseError(t, err)
			return
		}
		if len(keys) == 0 {
			t.Fatal("no keys and no error")
		}
		for _, k := range keys {
			if k.Fingerprint() == "" || len(k.KeyID()) != 59 || k.Thumbprint() == "" || k.Type() == "" && !strings.HasPrefix(k.Algorithm(), "RSA") {
				t.Fatalf("names: %q %q %q %q", k.Fingerprint(), k.KeyID(), k.Thumbprint(), k.Algorithm())
			}
			pub, err := k.MarshalPublic(JWK)
			if err != nil {
				t.Fatalf("MarshalPublic(JWK) of a parsed key: %v", err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(pub, &m); err != nil {
				t.Fatalf("MarshalPublic wrote invalid JSON: %v\n%s", err, pub)
			}
			for a := range m {
				for b := range m {
					if a < b && strings.EqualFold(a, b) {
						t.Fatalf("MarshalPublic wrote %q and %q, one member to encoding/json:\n%s", a, b, pub)
					}
				}
			}
			for _, name := range privateMembers {
				if _, ok := m[name]; ok {
					t.Fatalf("public JWK holds %q:\n%s", name, pub)
				}
			}
			back, err := Parse(pub)
			if err != nil {
				t.Fatalf("re-parse of MarshalPublic(JWK): %v\n%s", err, pub)
			}
			if len(back) != 1 || back[0].SPKIHash() != k.SPKIHash() || back[0].IsPrivate() {
				t.Fatalf("re-parse gave another key")
			}
			if again, err := back[0].MarshalPublic(JWK); err != nil || !bytes.Equal(again, pub) {
				t.Fatalf("second MarshalPublic differs: %v\n%s\n%s", err, pub, again)
			}
			if pemOut, err := k.MarshalPublic(PEM); err == nil {
				back, err := Parse(pemOut)
				if err != nil || len(back) != 1 || back[0].SPKIHash() != k.SPKIHash() {
					t.Fatalf("re-parse of MarshalPublic(PEM): %v\n%s", err, pemOut)
				}
			}
			if k.IsPrivate() {
				priv, err := k.MarshalPrivate(JWK)
				if err != nil {
					t.Fatal(err)
				}
				back, err := Parse(priv)
				if err != nil || len(back) != 1 || back[0].SPKIHash() != k.SPKIHash() || !back[0].IsPrivate() {
					t.Fatalf("re-parse of MarshalPrivate(JWK): %v", err)
				}
			}
		}
	})
}

func FuzzParseFingerprint(f *testing.F) {
	k := testKey(f, EC256)
	for s := range fingerprintForms(k) {
		f.Add(s)
	}
	if s, ok := k.SSHFingerprint(); ok {
		f.Add(s)
	}
	for _, s := range []string{"", "SHA256:", "sha256//=", "ABCD:EFGH", "00:11", k.KeyID() + ":", "sha256:" + strings.Repeat("/", 43), "SHA256:" + strings.Repeat("A", 42) + "B"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			if !strings.Contains(err.Error(), "SHA256:") {
				t.Fatalf("error does not list the forms: %v", err)
			}
			return
		}
		if fp.String() != strings.TrimSpace(s) {
			t.Fatalf("String() = %q", fp.String())
		}
		matched := fp.Match(k)
		if fp.MatchSums(k.Sums()) != matched {
			t.Fatalf("%q: MatchSums %v, Match %v", s, !matched, matched)
		}
		if got := NewFingerprintSet([]Fingerprint{fp}).Matching(nil, k.Sums()); (len(got) == 1) != matched || len(got) > 1 {
			t.Fatalf("%q: FingerprintSet.Matching %v, Match %v", s, got, matched)
		}
		h := k.SPKIHash()
		sum, full := fp.SPKIHash()
		bySPKI := full && sum == h || !full && strings.EqualFold(FormatKeyID(h), fp.String())
		if got := NewFingerprintSet([]Fingerprint{fp}).BySPKI(nil, h); (len(got) == 1) != bySPKI || len(got) > 1 {
			t.Fatalf("%q: FingerprintSet.BySPKI %v, want %v", s, got, bySPKI)
		}
		again, err := ParseFingerprint(fp.String())
		if err != nil || again.Match(k) != matched {
			t.Fatalf("re-parse of %q: %v", fp.String(), err)
		}
		if sum, ok := fp.SPKIHash(); ok {
			// One spelling per hash: the base64 forms accepted are the
			// canonical encoding, padded at most exactly.
			canonical := strings.TrimPrefix(FormatFingerprint(sum), "SHA256:")
			for _, prefix := range []string{"SHA256:", "sha256:", "sha256//"} {
				if b64, ok := strings.CutPrefix(fp.String(), prefix); ok && strings.TrimSuffix(b64, "=") != canonical {
					t.Fatalf("%q accepted for %s", fp.String(), FormatFingerprint(sum))
				}
			}
			back, err := ParseFingerprint(FormatFingerprint(sum))
			if err != nil {
				t.Fatal(err)
			}
			if s2, ok2 := back.SPKIHash(); !ok2 || s2 != sum {
				t.Fatalf("SPKIHash does not survive formatting")
			}
			if sum == k.SPKIHash() && !matched {
				t.Fatalf("SPKIHash equals the key's, but Match is false")
			}
		}
	})
}

// FuzzJSONScanner checks the member scanner against encoding/json: what the
// scanner accepts is valid JSON with the same members, and valid JSON that
// it refuses is refused only for depth or a duplicate member (equal names,
// or names equal but for case, which encoding/json takes for one).
func FuzzJSONScanner(f *testing.F) {
	addFileSeeds(f)
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":[1,2,{"b":null}],"c":"\u00e9\n"}`, `{"a":-0.5e+10}`, `{"a":01}`, `{"a":"\ud800"}`, `{"a":1,"a":2}`, `{"a":1,"A":2}`, "{\"k\":1,\"\u212a\":2}", `{"a":tru}`, ` {"a" : true } `, `[1]`, `{"a":1}x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := jsonScanner{data: data}
		members := map[string]string{}
		var order []string
		ms, err := s.members(0, nil)
		for _, m := range ms {
			members[string(m.name)] = string(m.raw)
			order = append(order, string(m.name))
		}
		if err == nil {
			err = s.end()
		}
		valid := json.Valid(data)
		if err != nil {
			msg := err.Error()
			if valid && bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) &&
				!strings.Contains(msg, "nested deeper") && !strings.Contains(msg, "appears twice") && !strings.Contains(msg, "duplicate of member") {
				t.Fatalf("valid JSON object refused: %v\n%q", err, data)
			}
			if line := jsonErrorLine(data, err); line < 1 {
				t.Fatalf("syntax error without a line: %v", err)
			}
			return
		}
		if !valid {
			t.Fatalf("invalid JSON accepted: %q", data)
		}
		if !utf8.Valid(data) {
			return // encoding/json replaces invalid UTF-8 in names
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		if len(m) != len(order) {
			t.Fatalf("scanner saw %d members, encoding/json %d", len(order), len(m))
		}
		for i, a := range order {
			for _, b := range order[:i] {
				if strings.EqualFold(a, b) {
					t.Fatalf("members %q and %q, one name to encoding/json, accepted", b, a)
				}
			}
		}
		for name, raw := range members {
			want, ok := m[name]
			if !ok {
				t.Fatalf("member %q unknown to encoding/json", name)
			}
			var a, b bytes.Buffer
			if json.Compact(&a, []byte(raw)) != nil || json.Compact(&b, want) != nil || a.String() != b.String() {
				t.Fatalf("member %q: scanner %s, encoding/json %s", name, raw, want)
			}
		}
	})
}
