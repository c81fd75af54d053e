package tlsbridge

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// TestNextPublicHalfNotTheNextKeys: the public half of the home's next
// key, pub_key.next.*, is what users copy to peers to authorize or pin
// the next key before a rotation; one holding another key (another
// home's copied over it, a hand edit, a next key replaced without it), no
// key or several is refused as a pub_key.* that is not the identity's is
// — *PublicKeyError with Next set, naming the file, the key it holds and
// the next key's — and left byte for byte; so is one holding another key
// than the identity in a home with no next key (a public half of no key
// of the home). Before (found by review, 2026-12-05): checked against
// nothing, the home loaded, and announced a next key whose public half,
// as users had it, was another key. The identity's key in
// pub_key.next.* of a home with no next key is a rotation's leftover,
// finished (TestRotateCrashBeforePublicHalf); a missing pub_key.next.*
// is no error.
func TestNextPublicHalfNotTheNextKeys(t *testing.T) {
	cur, next, other := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	dir := rotationHome(t, cur, next, ".json")
	nextPub, nextFile := filepath.Join(dir, "pub_key.next.json"), filepath.Join(dir, "key.next.json")
	for name, data := range map[string][]byte{
		"another key":      marshalPublic(t, other),
		"the identity's":   marshalPublic(t, cur),
		"no key":           []byte("{\n"),
		"two keys":         append(marshalPublic(t, next), marshalPublic(t, other)...),
		"another format's": marshalPublic(t, other),
	} {
		t.Run(name, func(t *testing.T) {
			file := nextPub
			if name == "another format's" {
				// pub_key.next.json right, and pub_key.next.pem beside it
				// another key's.
				file = filepath.Join(dir, "pub_key.next.pem")
				t.Cleanup(func() { os.Remove(file) })
			}
			writeFile(t, file, data, 0o644)
			t.Cleanup(func() { writeFile(t, nextPub, marshalPublic(t, next), 0o644) })
			_, err := LoadHomeIdentity(dir, CertOptions{})
			var pe *PublicKeyError
			if !errors.As(err, &pe) || !pe.Next || pe.File != file || pe.KeyFile != nextFile || pe.Key != next.Fingerprint() || pe.Rotated {
				t.Fatalf("LoadHomeIdentity: %v (%+v), want *PublicKeyError naming %s and the next key", err, pe, file)
			}
			switch name {
			case "another key", "another format's":
				if pe.Found != other.Fingerprint() {
					t.Errorf("found %q, want %q", pe.Found, other.Fingerprint())
				}
			case "the identity's":
				if pe.Found != cur.Fingerprint() {
					t.Errorf("found %q, want the identity's %q", pe.Found, cur.Fingerprint())
				}
			default:
				if pe.Found != "" || pe.Err == nil {
					t.Errorf("found %q (%v), want no key and why", pe.Found, pe.Err)
				}
			}
			if got, _ := os.ReadFile(file); !bytes.Equal(got, data) {
				t.Errorf("%s was rewritten", filepath.Base(file))
			}
		})
	}
	if _, err := LoadHomeIdentity(dir, CertOptions{}); err != nil {
		t.Fatalf("the next key's own public half: %v", err)
	}
	// Missing: no error.
	if err := os.Remove(nextPub); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHomeIdentity(dir, CertOptions{}); err != nil {
		t.Fatalf("no pub_key.next.json: %v", err)
	}

	// No next key: a pub_key.next.* holding another key than the identity
	// is the public half of no key of the home.
	if err := os.Remove(nextFile); err != nil {
		t.Fatal(err)
	}
	writeFile(t, nextPub, marshalPublic(t, other), 0o644)
	_, err := LoadHomeIdentity(dir, CertOptions{})
	var pe *PublicKeyError
	if !errors.As(err, &pe) || !pe.Next || pe.File != nextPub || pe.KeyFile != "" || pe.Found != other.Fingerprint() {
		t.Fatalf("LoadHomeIdentity with no next key: %v, want *PublicKeyError naming %s and no next key", err, nextPub)
	}
	if keys, err := jwk.ReadFile(nextPub); err != nil || len(keys) != 1 || !keys[0].Equal(other) {
		t.Errorf("%s was rewritten or removed: %v", nextPub, err)
	}
}

// TestPublicHalfBesideANamedKey: a key loaded by its file name
// (LoadIdentity, keytool -i FILE) whose public half beside it — the
// pub_NAME.* keytool gen -i writes there — holds another key, none or
// several is refused (*PublicKeyError naming both files), as a home's
// pub_key.* is, and left as it is; its own public half, or none, loads.
// Before (found by review, 2026-12-05): the file was not looked at, and
// the public half handed to peers for authorized_keys named a key the
// identity never presented.
func TestPublicHalfBesideANamedKey(t *testing.T) {
	k, other := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "server.key")
	if err := jwk.WritePrivateKeyFile(keyFile, k, jwk.PEM, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(keyFile, "", CertOptions{}); err != nil {
		t.Fatalf("no public half beside it: %v", err)
	}
	pub := filepath.Join(dir, "pub_server.pem")
	if err := jwk.WritePublicKeyFile(pub, k, jwk.PEM, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(keyFile, "", CertOptions{}); err != nil {
		t.Fatalf("its own public half beside it: %v", err)
	}
	for name, data := range map[string][]byte{
		"another key": marshalPublic(t, other),
		"no key":      []byte("{\n"),
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, "pub_server.json") // another format's, beside pub_server.pem
			writeFile(t, file, data, 0o644)
			defer os.Remove(file)
			_, err := LoadIdentity(keyFile, "", CertOptions{})
			var pe *PublicKeyError
			if !errors.As(err, &pe) || pe.File != file || pe.KeyFile != keyFile || pe.Key != k.Fingerprint() || pe.Next {
				t.Fatalf("LoadIdentity: %v, want *PublicKeyError naming %s", err, file)
			}
			if name == "another key" && pe.Found != other.Fingerprint() {
				t.Errorf("found %q, want %q", pe.Found, other.Fingerprint())
			}
			if got, _ := os.ReadFile(file); !bytes.Equal(got, data) {
				t.Errorf("%s was rewritten", file)
			}
		})
	}
}
