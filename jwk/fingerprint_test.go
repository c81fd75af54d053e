package jwk

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// fingerprintForms returns every way a user can name k, with whether the
// form carries the full SPKI hash.
func fingerprintForms(k *Key) map[string]bool {
	sum := k.SPKIHash()
	hexLower := hex.EncodeToString(sum[:])
	var pairs []string
	for i := 0; i < len(hexLower); i += 2 {
		pairs = append(pairs, hexLower[i:i+2])
	}
	std := base64.StdEncoding.EncodeToString(sum[:])
	return map[string]bool{
		k.Fingerprint(): true,
		"sha256:" + strings.TrimPrefix(k.Fingerprint(), "SHA256:"): true,
		"SHA256:" + std:                           true, // with padding
		"sha256//" + std:                          true, // curl --pinnedpubkey
		"sha256//" + strings.TrimRight(std, "="):  true,
		hexLower:                                  true,
		strings.ToUpper(hexLower):                 true,
		strings.Join(pairs, ":"):                  true,
		strings.ToUpper(strings.Join(pairs, ":")): true,
		"  " + k.Fingerprint() + "\n":             true,
		k.KeyID():                                 false,
		strings.ToLower(k.KeyID()):                false,
		k.Thumbprint():                            false,
	}
}

func TestParseFingerprint(t *testing.T) {
	for _, typ := range testTypes {
		k := testKey(t, typ)
		other := testKey(t, testTypes[(indexOf(typ)+1)%len(testTypes)])
		for s, full := range fingerprintForms(k) {
			fp, err := ParseFingerprint(s)
			if err != nil {
				t.Errorf("%s: ParseFingerprint(%q): %v", typ, s, err)
				continue
			}
			if !fp.Match(k) {
				t.Errorf("%s: %q does not match its key", typ, s)
			}
			if fp.Match(other) {
				t.Errorf("%s: %q matches another key", typ, s)
			}
			if fp.String() != strings.TrimSpace(s) {
				t.Errorf("String() = %q, want %q", fp.String(), strings.TrimSpace(s))
			}
			sum, ok := fp.SPKIHash()
			if full && (!ok || sum != k.SPKIHash()) {
				t.Errorf("%s: SPKIHash() of %q = %x, %v", typ, s, sum, ok)
			}
			if s == k.KeyID() && ok {
				t.Errorf("SPKIHash() of a key ID claims a full hash")
			}
		}
	}
}

func indexOf(typ Type) int {
	for i, t := range testTypes {
		if t == typ {
			return i
		}
	}
	return -1
}

// A thumbprint names the key by a different hash: it must not be taken as
// an SPKI hash of the same key, nor the other way round.
func TestFingerprintFormsAreDistinct(t *testing.T) {
	k := testKey(t, EC256)
	thumb, _ := base64.RawURLEncoding.DecodeString(k.Thumbprint())
	sum := k.SPKIHash()
	if string(thumb) == string(sum[:]) {
		t.Fatal("thumbprint equals SPKI hash")
	}
	// The SPKI hash written as a bare base64url string is not a
	// thumbprint of this key.
	fp, err := ParseFingerprint(base64.RawURLEncoding.EncodeToString(thumb[:16]) + base64.RawURLEncoding.EncodeToString(sum[16:]))
	if err == nil && fp.Match(k) {
		t.Error("a mix of thumbprint and hash matched")
	}
	// The vector thumbprint (from the RFC) matches, as do the SPKI forms.
	v, err := ParseOne(repoFile(t, "vectors/rfc7638-rsa-public.json"))
	if err != nil {
		t.Fatal(err)
	}
	fp, err = ParseFingerprint("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
	if err != nil || !fp.Match(v) || fp.Match(k) {
		t.Errorf("RFC 7638 thumbprint: %v", err)
	}
}

func TestParseFingerprintErrors(t *testing.T) {
	k := testKey(t, EC256)
	for _, s := range []string{
		"",
		"   ",
		"SHA256:",
		"SHA256:abc",
		"SHA256:" + strings.Repeat("A", 44),
		"sha256//!!!!",
		"sha256//" + base64.StdEncoding.EncodeToString(make([]byte, 31)),
		"MD5:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff",
		"ABCD:EFGH",
		"ABC1:EFGH:IJKL:MNOP:QRST:UVWX:YZ23:4567:ABCD:EFGH:IJKL:MNOP", // '1' is not base32
		k.KeyID() + ":ABCD",
		k.KeyID()[:len(k.KeyID())-1],
		hex.EncodeToString(make([]byte, 31)),
		hex.EncodeToString(make([]byte, 33)),
		strings.Repeat("zz", 32),
		"00:11",
		"hello world",
		k.Thumbprint()[:42],
		// The same 32 bytes, spelled otherwise than canonically: unused
		// low bits set in the last character, or padding not exact.
		"SHA256:" + offCanonical(strings.TrimPrefix(k.Fingerprint(), "SHA256:"), stdAlphabet),
		"sha256//" + offCanonical(strings.TrimPrefix(k.Fingerprint(), "SHA256:"), stdAlphabet) + "=",
		k.Fingerprint() + "==",
		offCanonical(k.Thumbprint(), urlAlphabet),
	} {
		fp, err := ParseFingerprint(s)
		if err == nil {
			t.Errorf("ParseFingerprint(%q) = %v, want an error", s, fp)
			continue
		}
		wantSubstrings(t, err.Error(), "SHA256:", "ABCD:EFGH", "sha256//", "hex")
		if s != "" && strings.TrimSpace(s) != "" {
			wantSubstrings(t, err.Error(), strings.TrimSpace(s))
		}
		if fp.Match(k) {
			t.Errorf("the zero Fingerprint from %q matches a key", s)
		}
	}
}

const (
	stdAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	urlAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// offCanonical sets the lowest unused bit of the last character of the
// unpadded base64 of 32 bytes (43 characters, 2 bits unused): a lenient
// decoder reads the same bytes from it.
func offCanonical(b64, alphabet string) string {
	last := strings.IndexByte(alphabet, b64[len(b64)-1])
	return b64[:len(b64)-1] + string(alphabet[last|1])
}

// TestParseFingerprintRefusesOffCanonical: the spelling refused by
// TestParseFingerprintErrors is refused for being one, not by chance — a
// lenient decoder reads the key's own bytes from it.
func TestParseFingerprintRefusesOffCanonical(t *testing.T) {
	k := testKey(t, EC256)
	sum := k.SPKIHash()
	off := offCanonical(strings.TrimPrefix(k.Fingerprint(), "SHA256:"), stdAlphabet)
	if b, err := base64.RawStdEncoding.DecodeString(off); err != nil || !bytes.Equal(b, sum[:]) {
		t.Fatalf("%q does not decode leniently to the key's hash: %v", off, err)
	}
	// The decoders skip line breaks too.
	broken := k.Fingerprint()[:20] + "\r\n" + k.Fingerprint()[20:]
	for _, s := range []string{"SHA256:" + off, broken} {
		_, err := ParseFingerprint(s)
		if err == nil || !strings.Contains(err.Error(), "canonical") {
			t.Errorf("%q: %v, want a refusal saying it is not canonical", s, err)
		}
	}
}

// SPKIHash answers only when the typed form is certainly an SPKI hash: a
// bare base64 string may be a thumbprint, and a key ID is a prefix.
func TestFingerprintSPKIHashOnlyWhenCertain(t *testing.T) {
	k := testKey(t, EC256)
	sum := k.SPKIHash()
	for _, s := range []string{k.Fingerprint(), "sha256//" + base64.StdEncoding.EncodeToString(sum[:]), hex.EncodeToString(sum[:])} {
		fp, err := ParseFingerprint(s)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := fp.SPKIHash(); !ok || got != sum {
			t.Errorf("%s: SPKIHash = %x, %v", s, got, ok)
		}
	}
	// A bare base64 string is ambiguous only without '+' and '/', like
	// every thumbprint (base64url has '-' and '_' instead).
	for _, s := range []string{k.KeyID(), k.Thumbprint(), strings.Repeat("A", 43)} {
		fp, err := ParseFingerprint(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fp.SPKIHash(); ok {
			t.Errorf("%s: SPKIHash claims a full SPKI hash", s)
		}
	}
}

// ssh-keygen's SHA256:… fingerprint hashes the key's SSH wire encoding,
// not its SPKI: the same form names the key by another hash, and Match
// takes either.
func TestSSHFingerprint(t *testing.T) {
	for i, typ := range testTypes {
		k := testKey(t, typ)
		other := testKey(t, testTypes[(i+1)%len(testTypes)])
		got, ok := k.SSHFingerprint()
		if !ok {
			t.Fatalf("%s: no SSH fingerprint", typ)
		}
		if want := ssh.FingerprintSHA256(mustSSHPub(t, k)); got != want {
			t.Errorf("%s: SSHFingerprint() = %s, want %s", typ, got, want)
		}
		if got == k.Fingerprint() {
			t.Errorf("%s: the SSH and SPKI fingerprints are the same", typ)
		}
		for _, s := range []string{got, "sha256:" + strings.TrimPrefix(got, "SHA256:"), got + "=", " " + got + "\n"} {
			fp, err := ParseFingerprint(s)
			if err != nil {
				t.Fatalf("%s: ParseFingerprint(%q): %v", typ, s, err)
			}
			if !fp.Match(k) || !fp.Match(k.PublicKey()) {
				t.Errorf("%s: %q does not match its key", typ, s)
			}
			if fp.Match(other) {
				t.Errorf("%s: %q matches another key", typ, s)
			}
			// Still an SPKI hash, as far as its form tells; of no key here.
			if sum, ok := fp.SPKIHash(); !ok || sum == k.SPKIHash() {
				t.Errorf("%s: SPKIHash() of %q = %x, %v", typ, s, sum, ok)
			}
		}
		// Only the SHA256: form is ssh-keygen's: the same hash as curl's
		// pin or in hex names no key.
		sum, _ := ParseFingerprint(got)
		h, _ := sum.SPKIHash()
		for _, s := range []string{"sha256//" + base64.StdEncoding.EncodeToString(h[:]), hex.EncodeToString(h[:])} {
			if fp, err := ParseFingerprint(s); err != nil || fp.Match(k) {
				t.Errorf("%s: %q: match %v, %v", typ, s, err == nil && fp.Match(k), err)
			}
		}
	}
}

// The fingerprint the real ssh-keygen -l prints for a key matches it, for
// a key keytool made and for one ssh-keygen made.
func TestSSHKeygenFingerprint(t *testing.T) {
	needTool(t, "ssh-keygen")
	dir := t.TempDir()
	keygenFP := func(file string) string {
		t.Helper()
		// "256 SHA256:… comment (ED25519)"
		out := strings.Fields(string(run(t, dir, nil, "ssh-keygen", "-E", "sha256", "-lf", file)))
		if len(out) < 2 || !strings.HasPrefix(out[1], "SHA256:") {
			t.Fatalf("ssh-keygen -lf %s: %q", file, out)
		}
		return out[1]
	}
	for _, typ := range testTypes {
		k := testKey(t, typ)
		file := string(typ) + ".pub"
		writeFile(t, dir, file, mustMarshalSSH(t, k), 0o644)
		want := keygenFP(file)
		if got, _ := k.SSHFingerprint(); got != want {
			t.Errorf("%s: SSHFingerprint() = %s, ssh-keygen %s", typ, got, want)
		}
		fp, err := ParseFingerprint(want)
		if err != nil || !fp.Match(k) {
			t.Errorf("%s: ssh-keygen's %s does not match the key: %v", typ, want, err)
		}
	}
	run(t, dir, nil, "ssh-keygen", "-t", "ed25519", "-q", "-N", "", "-C", "", "-f", "id")
	want := keygenFP("id.pub")
	keys, err := ReadFile(filepath.Join(dir, "id"))
	if err != nil {
		t.Fatal(err)
	}
	if fp, err := ParseFingerprint(want); err != nil || !fp.Match(keys[0]) {
		t.Errorf("ssh-keygen's %s does not match the key it made: %v", want, err)
	}
}

// MatchSums on a key's Sums is Match, for every form of every key's
// fingerprints (ssh-keygen's too) against every key: what lets a store
// match many fingerprints against each key of a file read once.
func TestMatchSumsIsMatch(t *testing.T) {
	var keys []*Key
	for _, typ := range []Type{EC256, EC384, EC521, RSA2048, Ed25519} {
		keys = append(keys, testKey(t, typ))
	}
	for _, k := range keys {
		forms := fingerprintForms(k)
		if s, ok := k.SSHFingerprint(); ok {
			forms[s] = true
		}
		for s := range forms {
			fp, err := ParseFingerprint(s)
			if err != nil {
				t.Fatal(err)
			}
			for _, other := range keys {
				if got, want := fp.MatchSums(other.Sums()), fp.Match(other); got != want {
					t.Errorf("%q against %s: MatchSums %v, Match %v", s, other.Algorithm(), got, want)
				}
			}
		}
	}
}

// A FingerprintSet's lookups are MatchSums of each fingerprint (Matching)
// and Find's rule for a key's SPKI hash alone — the hash in full, or the
// key ID it begins with (BySPKI) — for every form of every key's
// fingerprints, listed twice and in any order, against every key.
func TestFingerprintSetIsMatchOfEach(t *testing.T) {
	var keys []*Key
	for _, typ := range []Type{EC256, EC384, EC521, RSA2048, Ed25519} {
		keys = append(keys, testKey(t, typ))
	}
	var fps []Fingerprint
	for _, k := range keys {
		forms := fingerprintForms(k)
		if s, ok := k.SSHFingerprint(); ok {
			forms[s] = true
		}
		sum := k.SPKIHash()
		forms[base64.RawStdEncoding.EncodeToString(sum[:])] = true // a SPKI hash, or a thumbprint where it has no + or /
		for s := range forms {
			fp, err := ParseFingerprint(s)
			if err != nil {
				t.Fatal(err)
			}
			fps = append(fps, fp, fp)
		}
	}
	rand.Shuffle(len(fps), func(i, j int) { fps[i], fps[j] = fps[j], fps[i] })
	set := NewFingerprintSet(fps)
	for _, k := range keys {
		var matching, bySPKI []int
		h := k.SPKIHash()
		for i, fp := range fps {
			if fp.MatchSums(k.Sums()) {
				matching = append(matching, i)
			}
			if sum, full := fp.SPKIHash(); full && sum == h || !full && strings.EqualFold(FormatKeyID(h), fp.String()) {
				bySPKI = append(bySPKI, i)
			}
		}
		if got := set.Matching([]int{-1}, k.Sums()); !slices.Equal(got, append([]int{-1}, matching...)) {
			t.Errorf("%s: Matching = %v, want %v", k.Algorithm(), got[1:], matching)
		}
		if got := set.BySPKI(nil, h); !slices.Equal(got, bySPKI) {
			t.Errorf("%s: BySPKI = %v, want %v", k.Algorithm(), got, bySPKI)
		}
		if len(matching) == 0 || len(bySPKI) == 0 {
			t.Errorf("%s: no fingerprint matched (%d, %d): the test tests nothing", k.Algorithm(), len(matching), len(bySPKI))
		}
	}
}
