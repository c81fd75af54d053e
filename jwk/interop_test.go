package jwk

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Interoperability with the real tools. CI installs openssl and ssh-keygen;
// the tests skip only when the binary is missing.

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
}

// run runs a command in dir and returns its standard output.
func run(t *testing.T, dir string, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// opensslFingerprint computes the fingerprint of the key in file (any
// form `openssl pkey` reads; pubin for a public key) with openssl alone:
// openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64.
func opensslFingerprint(t *testing.T, dir, file string, pubin bool) string {
	t.Helper()
	args := []string{"pkey", "-in", file, "-outform", "DER"}
	if pubin {
		args = append(args, "-pubin")
	} else {
		args = append(args, "-pubout")
	}
	der := run(t, dir, nil, "openssl", args...)
	der = run(t, dir, der, "openssl", "pkey", "-pubin", "-inform", "DER", "-outform", "DER")
	sum := run(t, dir, der, "openssl", "dgst", "-sha256", "-binary")
	b64 := run(t, dir, sum, "openssl", "base64", "-A")
	return "SHA256:" + strings.TrimRight(strings.TrimSpace(string(b64)), "=")
}

type opensslType struct {
	name    string
	genpkey []string // openssl genpkey arguments (PKCS #8)
	legacy  []string // a command writing a traditional private key to legacy.pem
	rsa     bool
}

var opensslTypes = []opensslType{
	{"P-256", []string{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"}, []string{"ecparam", "-name", "prime256v1", "-genkey", "-out", "legacy.pem"}, false},
	{"P-384", []string{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"}, []string{"ecparam", "-name", "secp384r1", "-genkey", "-out", "legacy.pem"}, false},
	{"P-521", []string{"-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"}, []string{"ecparam", "-name", "secp521r1", "-genkey", "-out", "legacy.pem"}, false},
	{"RSA-2048", []string{"-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"}, []string{"genrsa", "-traditional", "-out", "legacy.pem", "2048"}, true},
	{"Ed25519", []string{"-algorithm", "ED25519"}, nil, false},
}

type opensslFile struct {
	name, block string
	private     bool
}

// Keys written by openssl in every PEM encoding parse, and keytool names
// them as openssl does.
func TestOpenSSLKeys(t *testing.T) {
	needTool(t, "openssl")
	for _, ty := range opensslTypes {
		t.Run(ty.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			run(t, dir, nil, "openssl", append(append([]string{"genpkey"}, ty.genpkey...), "-out", "pkcs8.pem")...)
			want := opensslFingerprint(t, dir, "pkcs8.pem", false)
			run(t, dir, nil, "openssl", "pkey", "-in", "pkcs8.pem", "-pubout", "-out", "pub.pem")
			run(t, dir, nil, "openssl", "req", "-x509", "-new", "-key", "pkcs8.pem", "-subj", "/CN=keytool test", "-days", "1", "-out", "cert.pem")
			files := []opensslFile{
				{"pkcs8.pem", "PRIVATE KEY", true},
				{"pub.pem", "PUBLIC KEY", false},
				{"cert.pem", "CERTIFICATE", false},
			}
			if ty.rsa {
				run(t, dir, nil, "openssl", "rsa", "-in", "pkcs8.pem", "-RSAPublicKey_out", "-out", "pkcs1pub.pem")
				run(t, dir, nil, "openssl", "rsa", "-in", "pkcs8.pem", "-traditional", "-out", "pkcs1.pem")
				files = append(files,
					opensslFile{"pkcs1pub.pem", "RSA PUBLIC KEY", false},
					opensslFile{"pkcs1.pem", "RSA PRIVATE KEY", true})
			}
			for _, f := range files {
				data, err := os.ReadFile(filepath.Join(dir, f.name))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(data, []byte("-----BEGIN "+f.block+"-----")) {
					t.Fatalf("%s is not a %s block:\n%s", f.name, f.block, data)
				}
				k, err := ParseOne(data)
				if err != nil {
					t.Fatalf("%s: %v", f.name, err)
				}
				if k.Fingerprint() != want {
					t.Errorf("%s: keytool %s, openssl %s", f.name, k.Fingerprint(), want)
				}
				if k.IsPrivate() != f.private {
					t.Errorf("%s: IsPrivate() = %v", f.name, k.IsPrivate())
				}
				if len(k.Attrs) != 0 {
					t.Errorf("%s: attributes %v from a file without headers", f.name, k.Attrs)
				}
			}

			// A traditional private key: SEC 1 "EC PRIVATE KEY" after an
			// "EC PARAMETERS" block, or PKCS #1 "RSA PRIVATE KEY".
			if ty.legacy == nil {
				return
			}
			run(t, dir, nil, "openssl", ty.legacy...)
			data, err := os.ReadFile(filepath.Join(dir, "legacy.pem"))
			if err != nil {
				t.Fatal(err)
			}
			block := "RSA PRIVATE KEY"
			if !ty.rsa {
				block = "EC PRIVATE KEY"
				if !bytes.Contains(data, []byte("-----BEGIN EC PARAMETERS-----")) {
					t.Errorf("openssl ecparam wrote no EC PARAMETERS block:\n%s", data)
				}
			}
			if !bytes.Contains(data, []byte("-----BEGIN "+block+"-----")) {
				t.Fatalf("legacy.pem is not a %s:\n%s", block, data)
			}
			k, err := ParseOne(data)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := k.Fingerprint(), opensslFingerprint(t, dir, "legacy.pem", false); got != want || !k.IsPrivate() {
				t.Errorf("legacy.pem: keytool %s (private %v), openssl %s", got, k.IsPrivate(), want)
			}
		})
	}
}

// keytool's PEM output, without attributes, is what openssl reads.
func TestOpenSSLReadsKeytoolPEM(t *testing.T) {
	needTool(t, "openssl")
	for _, typ := range testTypes {
		t.Run(string(typ), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			k := testKey(t, typ)
			writeFile(t, dir, "pub.pem", mustMarshal(t, k, PEM, false), 0o644)
			writeFile(t, dir, "priv.pem", mustMarshal(t, k, PEM, true), 0o600)
			if got := opensslFingerprint(t, dir, "pub.pem", true); got != k.Fingerprint() {
				t.Errorf("openssl pkey -pubin: %s, keytool %s", got, k.Fingerprint())
			}
			if got := opensslFingerprint(t, dir, "priv.pem", false); got != k.Fingerprint() {
				t.Errorf("openssl pkey: %s, keytool %s", got, k.Fingerprint())
			}
			// openssl checks the private key's consistency too.
			run(t, dir, nil, "openssl", "pkey", "-in", "priv.pem", "-check", "-noout")
		})
	}
}

// Encrypted private keys are refused with ErrEncrypted, not misread.
func TestOpenSSLEncrypted(t *testing.T) {
	needTool(t, "openssl")
	dir := t.TempDir()
	run(t, dir, nil, "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes256", "-pass", "pass:secret", "-out", "pkcs8.pem")
	run(t, dir, nil, "openssl", "ec", "-in", "pkcs8.pem", "-passin", "pass:secret", "-aes256", "-passout", "pass:secret", "-out", "sec1.pem")
	for _, name := range []string{"pkcs8.pem", "sec1.pem"} {
		path := filepath.Join(dir, name)
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ReadFile(path)
		pe := asParseError(t, err)
		if !errors.Is(err, ErrEncrypted) || pe.File != path || pe.Line != 1 {
			t.Errorf("%s: %v (file %q, line %d), want ErrEncrypted at %s:1", name, err, pe.File, pe.Line, path)
		}
	}
}

var sshTypes = []struct {
	name string
	args []string
	alg  string
}{
	{"ed25519", []string{"-t", "ed25519"}, "Ed25519"},
	{"ecdsa", []string{"-t", "ecdsa"}, "ECDSA P-256"},
	{"ecdsa384", []string{"-t", "ecdsa", "-b", "384"}, "ECDSA P-384"},
	{"ecdsa521", []string{"-t", "ecdsa", "-b", "521"}, "ECDSA P-521"},
	{"rsa", []string{"-t", "rsa", "-b", "2048"}, "RSA 2048"},
}

func TestSSHKeygen(t *testing.T) {
	needTool(t, "ssh-keygen")
	for _, ty := range sshTypes {
		t.Run(ty.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			run(t, dir, nil, "ssh-keygen", append(ty.args, "-q", "-N", "", "-C", "alice@laptop", "-f", "id")...)
			priv, err := ReadFile(filepath.Join(dir, "id")) // ssh-keygen writes 0600
			if err != nil {
				t.Fatal(err)
			}
			pubLine, err := os.ReadFile(filepath.Join(dir, "id.pub"))
			if err != nil {
				t.Fatal(err)
			}
			pub, err := ReadFile(filepath.Join(dir, "id.pub"))
			if err != nil {
				t.Fatal(err)
			}
			if len(priv) != 1 || len(pub) != 1 {
				t.Fatalf("got %d and %d keys", len(priv), len(pub))
			}
			if !priv[0].IsPrivate() || pub[0].IsPrivate() {
				t.Errorf("private %v / public %v", priv[0].IsPrivate(), pub[0].IsPrivate())
			}
			if priv[0].Fingerprint() != pub[0].Fingerprint() {
				t.Errorf("private key %s, .pub line %s", priv[0].Fingerprint(), pub[0].Fingerprint())
			}
			if priv[0].Algorithm() != ty.alg {
				t.Errorf("Algorithm() = %s, want %s", priv[0].Algorithm(), ty.alg)
			}
			if c := pub[0].Attrs.Comment(); c != "alice@laptop" {
				t.Errorf("comment %q, want alice@laptop (attrs %v)", c, pub[0].Attrs)
			}
			if len(pub[0].Attrs) != 1 {
				t.Errorf("attributes %v, want only the comment", pub[0].Attrs)
			}

			// The same key as openssl sees it, where ssh-keygen can export it.
			if ty.name != "ed25519" {
				if _, err := exec.LookPath("openssl"); err == nil {
					pem := run(t, dir, nil, "ssh-keygen", "-e", "-m", "PKCS8", "-f", "id.pub")
					writeFile(t, dir, "pkcs8.pem", pem, 0o644)
					if want := opensslFingerprint(t, dir, "pkcs8.pem", true); pub[0].Fingerprint() != want {
						t.Errorf("keytool %s, openssl %s", pub[0].Fingerprint(), want)
					}
				}
			}

			// from="CIDR" becomes the from attribute.
			line := append([]byte(`from="10.0.0.0/8,192.168.1.7" `), pubLine...)
			ks, err := Parse(line)
			if err != nil {
				t.Fatal(err)
			}
			from, err := ks[0].Attrs.List(AttrFrom)
			if err != nil || strings.Join(from, " ") != "10.0.0.0/8 192.168.1.7" {
				t.Errorf("from = %q, %v", from, err)
			}
			if nets, err := ks[0].Attrs.From(); err != nil || len(nets) != 2 || nets[1].Bits() != 32 {
				t.Errorf("From() = %v, %v", nets, err)
			}
			if ks[0].Attrs.Comment() != "alice@laptop" || ks[0].Fingerprint() != pub[0].Fingerprint() {
				t.Errorf("with from=: %s %v", ks[0].Fingerprint(), ks[0].Attrs)
			}

			// Any other option would be dropped silently, granting more than
			// the line says: refused.
			for _, opt := range []string{`command="/bin/true"`, `no-pty`, `from="*.example.com"`, `from="10.0.0.0/8",no-pty`} {
				_, err := Parse(append([]byte(opt+" "), pubLine...))
				pe := asParseError(t, err)
				if pe.Line != 1 {
					t.Errorf("%s: line %d, want 1", opt, pe.Line)
				}
				wantSubstrings(t, err.Error(), "option")
			}
		})
	}
}

func TestSSHKeygenEncrypted(t *testing.T) {
	needTool(t, "ssh-keygen")
	dir := t.TempDir()
	run(t, dir, nil, "ssh-keygen", "-t", "ed25519", "-q", "-N", "secret", "-f", "id")
	path := filepath.Join(dir, "id")
	_, err := ReadFile(path)
	pe := asParseError(t, err)
	if !errors.Is(err, ErrEncrypted) || pe.File != path {
		t.Errorf("got %v, want ErrEncrypted naming %s", err, path)
	}
	wantSubstrings(t, err.Error(), "ssh-keygen -p")
}

// An OPENSSH PRIVATE KEY pairing one key's seed with another key's public
// half is refused (golang.org/x/crypto/ssh does not check Ed25519 keys).
func TestOpenSSHEd25519Mismatch(t *testing.T) {
	a := testKey(t, Ed25519)
	b := mustGenerate(t, Ed25519)
	pa, pb := a.SPKI()[len(spkiEd25519):], b.SPKI()[len(spkiEd25519):]
	blk, err := sshMarshalPrivate(a)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(blk.Bytes, pa) < 3 {
		t.Fatalf("public key found %d times in the OpenSSH key", bytes.Count(blk.Bytes, pa))
	}
	blk.Bytes = bytes.ReplaceAll(blk.Bytes, pa, pb)
	_, err = Parse(pemEncode(blk))
	pe := asParseError(t, err)
	wantSubstrings(t, pe.Error(), "OPENSSH PRIVATE KEY", "Ed25519")
}
