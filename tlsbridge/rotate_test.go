package tlsbridge

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// RotateHome makes the next key the identity, keeps the old one as
// key.old.*, and leaves one identity and one public half, also when the
// next key has another format.
func TestRotateHome(t *testing.T) {
	dir := t.TempDir()
	old, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.Ed25519)
	writeKey(t, filepath.Join(dir, "key.json"), old, 0o600)
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, "pub_key.json"), old, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePrivateKeyFile(filepath.Join(dir, "key.next.pem"), next, jwk.PEM, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, "pub_key.next.pem"), next, jwk.PEM, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	id, err := LoadHomeIdentity(dir, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a := id.Announced(); len(a) != 1 || !a[0].Equal(next) {
		t.Fatalf("before: announces %v", a)
	}
	r, err := RotateHome(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Old.Equal(old) || !r.New.Equal(next) || r.KeyFile != filepath.Join(dir, "key.pem") || !strings.HasPrefix(filepath.Base(r.OldFile), "key.old.") || filepath.Ext(r.OldFile) != ".json" {
		t.Fatalf("rotation %+v", r)
	}
	id, err = LoadHomeIdentity(dir, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !id.Key.Equal(next) || len(id.Announced()) != 0 {
		t.Fatal("after: not the next key, or still announcing")
	}
	kept, err := jwk.ReadPrivateKeyFile(r.OldFile)
	if err != nil || !kept.Equal(old) {
		t.Fatalf("the old key: %v", err)
	}
	if fi, _ := os.Stat(r.OldFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("the old key has mode %v", fi.Mode())
	}
	names := dirNames(dir)
	if strings.Join(names, " ") != "key.old."+strings.TrimPrefix(filepath.Base(r.OldFile), "key.old.")+" key.pem pub_key.pem" {
		t.Errorf("the home holds %v", names)
	}
	var none *NoNextKeyError
	if _, err := RotateHome(dir); !errors.As(err, &none) {
		t.Fatalf("a second rotation: %v", err)
	}
}

// A CA-issued cert.pem that is not for the next key stops the rotation
// before anything moves: the rotated identity would not load.
func TestRotateHomeRefusesCertForOtherKey(t *testing.T) {
	dir := t.TempDir()
	old, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	writeKey(t, filepath.Join(dir, "key.json"), old, 0o600)
	writeKey(t, filepath.Join(dir, "key.next.json"), next, 0o600)
	oldID, err := NewIdentity(old, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "cert.pem"), oldID.CertificatePEM(), 0o644)
	if _, err := RotateHome(dir); err == nil || !strings.Contains(err.Error(), "not rotating") {
		t.Fatalf("rotation with the old key's cert.pem: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "key.next.json")); err != nil {
		t.Fatal("the next key moved")
	}
	nextID, err := NewIdentity(next, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "cert.pem"), nextID.CertificatePEM(), 0o644)
	if _, err := RotateHome(dir); err != nil {
		t.Fatal(err)
	}
	if id, err := LoadHomeIdentity(dir, CertOptions{}); err != nil || !id.Key.Equal(next) {
		t.Fatalf("after: %v", err)
	}
}

// replaceOnRead makes every read of a home key (readHomeKeyFile) call
// replace with the file's path right after it, as the home's owner
// replacing a key file between RotateHome's read and its move would.
func replaceOnRead(t *testing.T, replace func(path string)) {
	read := readHomeKeyFile
	t.Cleanup(func() { readHomeKeyFile = read })
	readHomeKeyFile = func(r trustfile.Rule, path string) ([]byte, fs.FileInfo, error) {
		data, fi, err := read(r, path)
		replace(path)
		return data, fi, err
	}
}

// rotationHome makes a home whose identity is key.json, old, with its
// public half, and whose next key is key.next<ext>, next, with its own.
func rotationHome(t *testing.T, old, next *jwk.Key, ext string) string {
	dir := t.TempDir()
	writeKey(t, filepath.Join(dir, "key.json"), old, 0o600)
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, "pub_key.json"), old, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	f := formatOf(ext)
	if err := jwk.WritePrivateKeyFile(filepath.Join(dir, "key.next"+ext), next, f, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, "pub_key.next"+ext), next, f, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	return dir
}

func formatOf(ext string) jwk.Format {
	if ext == ".pem" {
		return jwk.PEM
	}
	return jwk.JWK
}

// homeHolds fails unless dir holds exactly the files names, and each
// private key file in keys holds that key.
func homeHolds(t *testing.T, dir string, names string, keys map[string]*jwk.Key) {
	t.Helper()
	got := dirNames(dir)
	if strings.Join(got, " ") != names {
		t.Errorf("the home holds %v, want %s", got, names)
	}
	for name, want := range keys {
		if k, err := jwk.ReadPrivateKeyFile(filepath.Join(dir, name)); err != nil || !k.Equal(want) {
			t.Errorf("%s: %v, want the key %s", name, err, want.Fingerprint())
		}
	}
}

// TestRotateHomeNextKeyReplaced: the next key RotateHome makes the
// identity is the one it read and checked. It renamed key.next.* by name
// after reading it: a next key replaced in between (here right after the
// read, by another key of the home's owner) became the identity, while
// pub_key.* got the public half of the key read and the rotation reported
// that key. The rotation now stops with a *ReplacedError naming both keys
// and puts the home back: the old identity, the new next key (which the
// identity then announces), nothing kept as key.old.*. Rotating again
// rotates to the key on disk.
func TestRotateHomeNextKeyReplaced(t *testing.T) {
	for _, ext := range []string{".json", ".pem"} {
		t.Run(ext, func(t *testing.T) {
			old, next, other := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.Ed25519)
			dir := rotationHome(t, old, next, ext)
			nextFile := filepath.Join(dir, "key.next"+ext)
			replaced := false
			replaceOnRead(t, func(path string) {
				if path == nextFile && !replaced {
					replaced = true
					writeNextAsGen(t, dir, ext, other)
				}
			})
			r, err := RotateHome(dir)
			var re *ReplacedError
			if !errors.As(err, &re) {
				t.Fatalf("RotateHome with %s replaced after its read: %+v, %v; want a *ReplacedError", nextFile, r, err)
			}
			// Moved to the identity's own name, key.json, whatever its
			// format: the rotation holds one identity at every moment
			// (TestRotateHomeOneIdentityAtEveryMoment).
			if re.File != nextFile || re.Moved != filepath.Join(dir, "key.json") || re.Read != next.Fingerprint() || re.Found != other.Fingerprint() || re.Undo != nil ||
				!strings.HasPrefix(err.Error(), "tlsbridge: not rotating: "+nextFile+" was replaced") || !strings.Contains(err.Error(), "the home is as it was") || strings.Contains(err.Error(), "\n") {
				t.Errorf("the error: %+v: %v", re, err)
			}
			homeHolds(t, dir, "key.json key.next"+ext+" pub_key.json pub_key.next"+ext,
				map[string]*jwk.Key{"key.json": old, "key.next" + ext: other})
			id, err := LoadHomeIdentity(dir, CertOptions{})
			if err != nil || !id.Key.Equal(old) || len(id.Announced()) != 1 || !id.Announced()[0].Equal(other) {
				t.Fatalf("after: %v, want the old identity announcing the key found", err)
			}
			if r, err := RotateHome(dir); err != nil || !r.New.Equal(other) {
				t.Fatalf("rotating again: %v", err)
			}
			if id, err := LoadHomeIdentity(dir, CertOptions{}); err != nil || !id.Key.Equal(other) {
				t.Fatalf("after rotating again: %v", err)
			}
		})
	}
}

// TestRotateHomeIdentityReplaced: the identity RotateHome keeps as
// key.old.* is the one it read (Rotation.Old). It hard-linked key.json by
// name: one replaced after the read was kept instead, and the key read,
// reported as kept, was in no file. The rotation now stops before the
// next key moves, and removes the link it made.
func TestRotateHomeIdentityReplaced(t *testing.T) {
	old, next, other := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	dir := rotationHome(t, old, next, ".json")
	keyFile := filepath.Join(dir, "key.json")
	replaced := false
	replaceOnRead(t, func(path string) {
		if path == keyFile && !replaced {
			replaced = true
			writeKey(t, keyFile, other, 0o600)
		}
	})
	r, err := RotateHome(dir)
	var re *ReplacedError
	if !errors.As(err, &re) {
		t.Fatalf("RotateHome with key.json replaced after its read: %+v, %v; want a *ReplacedError", r, err)
	}
	if re.File != keyFile || !strings.HasPrefix(filepath.Base(re.Moved), "key.old.") || re.Read != old.Fingerprint() || re.Found != other.Fingerprint() || re.Undo != nil {
		t.Errorf("the error: %+v: %v", re, err)
	}
	homeHolds(t, dir, "key.json key.next.json pub_key.json pub_key.next.json",
		map[string]*jwk.Key{"key.json": other, "key.next.json": next})
}

// TestRotateHomePutBackKeepsTheKeyFound: when the key found under the
// identity's name cannot go back to key.next.* — a next key was made again
// while the replaced one was being checked, which putting it back must not
// overwrite — the put-back said "move key.old.* back to key.*" (or, with
// the next key in another format, "remove key.pem"): done as written, it
// deleted the only copy of the key found, a key its owner had made. The
// key found is now kept as key.found.*, the previous identity put back,
// and the advice, followed to the letter, loses no key: the key found's
// bytes are in a file it names, the previous identity is the identity and
// the newest next key stays in place.
func TestRotateHomePutBackKeepsTheKeyFound(t *testing.T) {
	for _, ext := range []string{".json", ".pem"} {
		t.Run(ext, func(t *testing.T) {
			dir, old, other, newest := putBackCollision(t, ext)
			nextFile := filepath.Join(dir, "key.next"+ext)
			_, err := RotateHome(dir)
			var re *ReplacedError
			if !errors.As(err, &re) || !errors.Is(re.Undo, fs.ErrExist) {
				t.Fatalf("RotateHome: %v, want a *ReplacedError whose undo found a next key", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("the error is more than a line: %v", err)
			}
			named := followAdvice(t, dir, re.Fix)
			if !holdsBytes(named, other) {
				t.Errorf("after following %q, no file it names holds the key found (the home holds %v)", re.Fix, dirNames(dir))
			}
			found := ""
			for _, f := range named {
				if strings.HasPrefix(filepath.Base(f), "key.found.") {
					found = f
				}
			}
			if fi, err := os.Stat(found); err != nil || fi.Mode().Perm() != 0o600 || filepath.Ext(found) != ext {
				t.Errorf("the key found is kept as %q: %v, want mode 0600 and the extension %s", found, err, ext)
			}
			if !bytes.Equal(readFileOr(nextFile), newest) {
				t.Errorf("%s no longer holds the newest next key", nextFile)
			}
			id, err := LoadHomeIdentity(dir, CertOptions{})
			if err != nil || !id.Key.Equal(old) {
				t.Fatalf("after: %v, want the previous identity", err)
			}
		})
	}
}

// When even key.found.* cannot be made, the key found has one copy, the
// file RotateHome renamed the next key to: the advice has it moved to a
// name of its own before anything is moved over it or removed.
func TestRotateHomePutBackCannotKeepTheKeyFound(t *testing.T) {
	for _, ext := range []string{".json", ".pem"} {
		t.Run(ext, func(t *testing.T) {
			dir, old, other, newest := putBackCollision(t, ext)
			stamp := foundStamp
			t.Cleanup(func() { foundStamp = stamp })
			foundStamp = func() string { return "taken" }
			writeFile(t, filepath.Join(dir, "key.found.taken"+ext), []byte("another file"), 0o600)
			_, err := RotateHome(dir)
			var re *ReplacedError
			if !errors.As(err, &re) || !errors.Is(re.Undo, fs.ErrExist) {
				t.Fatalf("RotateHome: %v, want a *ReplacedError whose undo found a next key", err)
			}
			named := followAdvice(t, dir, re.Fix)
			if !holdsBytes(named, other) {
				t.Errorf("after following %q, no file it names holds the key found (the home holds %v)", re.Fix, dirNames(dir))
			}
			if !bytes.Equal(readFileOr(filepath.Join(dir, "key.next"+ext)), newest) {
				t.Error("the newest next key is not in place")
			}
			if id, err := LoadHomeIdentity(dir, CertOptions{}); err != nil || !id.Key.Equal(old) {
				t.Fatalf("after: %v, want the previous identity", err)
			}
		})
	}
}

// putBackCollision makes a home whose identity is key.json and whose next
// key is key.next<ext>, and has RotateHome find, under the name it renames
// the next key to, another key (other: the next key replaced right after
// its read) and, once it has read that, a newest next key in key.next<ext>,
// so that the key found cannot go back there. It returns the identity,
// and the bytes of the key found and of the newest key as written.
func putBackCollision(t *testing.T, ext string) (dir string, old *jwk.Key, other, newest []byte) {
	old = mustGenerate(t, jwk.EC256)
	dir = rotationHome(t, old, mustGenerate(t, jwk.EC256), ext)
	// The next key is renamed to the identity's own name, key.json,
	// whatever its format (TestRotateHomeOneIdentityAtEveryMoment).
	keyFile, nextFile := filepath.Join(dir, "key.json"), filepath.Join(dir, "key.next"+ext)
	otherKey, newestKey := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	other, newest = marshalKey(t, otherKey, ext), marshalKey(t, newestKey, ext)
	reads := map[string]int{}
	const want = 2 // the identity, then the key renamed to its name
	replaceOnRead(t, func(path string) {
		reads[path]++
		switch {
		case path == nextFile && reads[path] == 1:
			writeNextAsGen(t, dir, ext, otherKey)
			writeFile(t, nextFile, other, 0o600)
		case path == keyFile && reads[path] == want:
			writeNextAsGen(t, dir, ext, newestKey)
			writeFile(t, nextFile, newest, 0o600)
		}
	})
	return dir, old, other, newest
}

// writeNextAsGen makes k the home's next key of format ext as keytool gen
// --next --force writes one: its public half removed, the key written,
// then its public half (a next key whose pub_key.next.* is another key's
// does not load: TestNextPublicHalfNotTheNextKeys).
func writeNextAsGen(t *testing.T, dir, ext string, k *jwk.Key) {
	t.Helper()
	pub := filepath.Join(dir, "pub_key.next"+ext)
	if err := os.Remove(pub); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := jwk.WritePrivateKeyFile(filepath.Join(dir, "key.next"+ext), k, formatOf(ext), jwk.Overwrite); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(pub, k, formatOf(ext), jwk.Overwrite); err != nil {
		t.Fatal(err)
	}
}

func marshalKey(t *testing.T, k *jwk.Key, ext string) []byte {
	t.Helper()
	data, err := k.MarshalPrivate(formatOf(ext))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// followAdvice does what fix, advice of a *ReplacedError, says to do with
// the files of dir, in order and to the letter: "move A back to B" and
// "move A to B" rename ("it" is the file named last before), "move A to
// a name of its own" renames A to A.mine, "remove A" and "remove A and
// B" remove. It returns the files of dir the advice names, and those it
// had files moved to.
func followAdvice(t *testing.T, dir, fix string) []string {
	t.Helper()
	path := regexp.QuoteMeta(dir+string(filepath.Separator)) + `[^\s,;:()]+`
	named := regexp.MustCompile(path).FindAllString(fix, -1)
	step := regexp.MustCompile(`move (it|` + path + `) (?:back )?to (` + path + `|a name of its own)|remove (` + path + `)(?: and (` + path + `))?`)
	for _, ix := range step.FindAllStringSubmatchIndex(fix, -1) {
		m := func(i int) string {
			if ix[2*i] < 0 {
				return ""
			}
			return fix[ix[2*i]:ix[2*i+1]]
		}
		if m(1) == "" {
			for _, f := range []string{m(3), m(4)} {
				if f != "" {
					if err := os.Remove(f); err != nil {
						t.Errorf("following %q: %v", m(0), err)
					}
				}
			}
			continue
		}
		from, to := m(1), m(2)
		if from == "it" {
			before := regexp.MustCompile(path).FindAllString(fix[:ix[0]], -1)
			if len(before) == 0 {
				t.Fatalf("%q: no file before %q", fix, m(0))
			}
			from = before[len(before)-1]
		}
		if to == "a name of its own" {
			to = from + ".mine"
			named = append(named, to)
		}
		if err := os.Rename(from, to); err != nil {
			t.Errorf("following %q: %v", m(0), err)
		}
	}
	return named
}

// holdsBytes reports whether one of files holds data.
func holdsBytes(files []string, data []byte) bool {
	for _, f := range files {
		if bytes.Equal(readFileOr(f), data) {
			return true
		}
	}
	return false
}

func readFileOr(path string) []byte {
	data, _ := os.ReadFile(path)
	return data
}

// dirNames is the names of the files in dir, but the lock file of the
// identity's writers (LockIdentity), made by the first.
func dirNames(dir string) []string {
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != ".keytool.lock" {
			names = append(names, e.Name())
		}
	}
	return names
}
