package tlsbridge

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// crashedRotation makes a home as RotateHome leaves it when it is killed
// (or the machine lost) after it renamed the next key over the identity
// and before it wrote the public half: old kept as key.old.*, the next key
// the identity, pub_key.json still old's and pub_key.next<ext> next's.
// With a next key of another format, renamed says whether the second
// rename, to key<ext>, was made. It returns the home.
func crashedRotation(t *testing.T, old, next *jwk.Key, ext string, renamed bool) string {
	t.Helper()
	dir := rotationHome(t, old, next, ext)
	if err := os.Link(filepath.Join(dir, "key.json"), filepath.Join(dir, "key.old.20261205T000000Z.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "key.next"+ext), filepath.Join(dir, "key.json")); err != nil {
		t.Fatal(err)
	}
	if renamed && ext != ".json" {
		if err := os.Rename(filepath.Join(dir, "key.json"), filepath.Join(dir, "key"+ext)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// publicHolds fails unless the public file path holds k alone, mode 0644.
func publicHolds(t *testing.T, path string, k *jwk.Key) {
	t.Helper()
	keys, err := jwk.ReadFile(path)
	if err != nil || len(keys) != 1 || !keys[0].Equal(k) {
		t.Errorf("%s: %v, want the key %s", filepath.Base(path), err, k.Fingerprint())
		return
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("%s: mode %v, %v; want 0644", filepath.Base(path), fi.Mode().Perm(), err)
	}
}

// TestRotateCrashBeforePublicHalf: a rotation killed between its rename
// of the next key over the identity and its write of the public half left
// pub_key.* the previous identity's — the file users copy to their peers
// naming the key rotated away (perhaps because it leaked), the identity
// another — and every command, and a server's restart, loaded the home as
// it was (found by review, 2026-12-05). The first load finishes the
// rotation as RotateHome would have: pub_key<ext> of the identity's file
// is the identity's public half (0644), and the public halves that are
// not (pub_key.next.*, another format's pub_key.*) are gone. So it is
// when the crash left the next key of another format under the identity's
// name (key.json holding PEM), or under its own (key.pem), and when
// pub_key.next.* was removed too (the previous identity kept as key.old.*
// tells the state); and after a rotation of a home whose identity was
// removed (promoteNext), where pub_key.json is the removed identity's and
// no key.old.* is left, pub_key.next.* holding the identity says it.
func TestRotateCrashBeforePublicHalf(t *testing.T) {
	for _, tc := range []struct {
		name, ext string
		renamed   bool // the next key of another format moved to key<ext>
		noNextPub bool // pub_key.next.* removed too
		want      string
	}{
		{name: "one format", ext: ".json", want: "key.json key.old.20261205T000000Z.json pub_key.json"},
		{name: "another format, under the identity's name", ext: ".pem", want: "key.json key.old.20261205T000000Z.json pub_key.json"},
		{name: "another format, under its own name", ext: ".pem", renamed: true, want: "key.old.20261205T000000Z.json key.pem pub_key.pem"},
		{name: "no pub_key.next", ext: ".json", noNextPub: true, want: "key.json key.old.20261205T000000Z.json pub_key.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
			dir := crashedRotation(t, old, next, tc.ext, tc.renamed)
			if tc.noNextPub {
				if err := os.Remove(filepath.Join(dir, "pub_key.next"+tc.ext)); err != nil {
					t.Fatal(err)
				}
			}
			id, err := LoadHomeIdentity(dir, CertOptions{})
			if err != nil || !id.Key.Equal(next) {
				t.Fatalf("LoadHomeIdentity: %v; want the next key, the identity now", err)
			}
			homeHolds(t, dir, tc.want, nil)
			keyFile, _ := jwk.FindIdentity(dir)
			publicHolds(t, filepath.Join(dir, "pub_key"+filepath.Ext(keyFile)), next)
		})
	}
	t.Run("no identity before", func(t *testing.T) {
		removed, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
		dir := rotationHome(t, removed, next, ".json")
		// promoteNext's link, then its removal of the next key's name.
		if err := os.Rename(filepath.Join(dir, "key.next.json"), filepath.Join(dir, "key.json")); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadHomeIdentity(dir, CertOptions{}); err != nil {
			t.Fatal(err)
		}
		homeHolds(t, dir, "key.json pub_key.json", nil)
		publicHolds(t, filepath.Join(dir, "pub_key.json"), next)
	})
	t.Run("rotate again", func(t *testing.T) {
		old, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
		dir := crashedRotation(t, old, next, ".json", false)
		r, err := RotateHome(dir)
		if err != nil || !r.Finished || r.Old != nil || !r.New.Equal(next) || r.PublicFile != filepath.Join(dir, "pub_key.json") {
			t.Fatalf("RotateHome: %+v, %v; want the rotation cut short finished", r, err)
		}
		homeHolds(t, dir, "key.json key.old.20261205T000000Z.json pub_key.json", map[string]*jwk.Key{"key.json": next})
		publicHolds(t, filepath.Join(dir, "pub_key.json"), next)
		// Once finished, there is no next key to rotate to.
		var none *NoNextKeyError
		if _, err := RotateHome(dir); !errors.As(err, &none) {
			t.Fatalf("RotateHome again: %v, want *NoNextKeyError", err)
		}
	})
	t.Run("a server's first run", func(t *testing.T) {
		old, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
		dir := crashedRotation(t, old, next, ".json", false)
		id, generated, err := LoadOrGenerateHomeIdentity(dir, "", CertOptions{})
		if err != nil || generated || !id.Key.Equal(next) {
			t.Fatalf("LoadOrGenerateHomeIdentity: generated %v, %v", generated, err)
		}
		publicHolds(t, filepath.Join(dir, "pub_key.json"), next)
	})
}

// TestPublicHalfNotTheIdentitys: a pub_key.* that is no rotation's
// leftover and holds another key than the identity — a hand edit,
// another home's pub_key.json copied in, a key.json replaced without its
// public half — or no key at all is not rewritten, and the home does not
// load: *PublicKeyError names the file, the key it holds and the
// identity's, and the file is left byte for byte. keytool never writes
// such a file, so which of the two is meant is the owner's to say; loaded
// as it was, it had peers authorize a key the home never presents. A
// home with a next key, pub_key.next.* its public half, loads as it is.
func TestPublicHalfNotTheIdentitys(t *testing.T) {
	cur, next := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	dir := rotationHome(t, cur, next, ".json")
	if _, err := LoadHomeIdentity(dir, CertOptions{}); err != nil {
		t.Fatalf("a home with a next key: %v", err)
	}
	homeHolds(t, dir, "key.json key.next.json pub_key.json pub_key.next.json", nil)
	pub := filepath.Join(dir, "pub_key.json")
	other := mustGenerate(t, jwk.EC256)
	for name, data := range map[string][]byte{
		"another key": marshalPublic(t, other),
		"no key":      []byte("{\n"),
		"two keys":    append(marshalPublic(t, cur), marshalPublic(t, other)...),
	} {
		t.Run(name, func(t *testing.T) {
			writeFile(t, pub, data, 0o644)
			_, err := LoadHomeIdentity(dir, CertOptions{})
			var pe *PublicKeyError
			if !errors.As(err, &pe) || pe.File != pub || pe.Key != cur.Fingerprint() || pe.KeyFile != filepath.Join(dir, "key.json") || pe.Rotated {
				t.Fatalf("LoadHomeIdentity: %v, want *PublicKeyError naming %s", err, pub)
			}
			if wantFound := ""; name == "another key" {
				wantFound = other.Fingerprint()
				if pe.Found != wantFound {
					t.Errorf("found %q, want %q", pe.Found, wantFound)
				}
			} else if pe.Found != "" || pe.Err == nil {
				t.Errorf("found %q (%v), want no key and why", pe.Found, pe.Err)
			}
			if got, _ := os.ReadFile(pub); !bytes.Equal(got, data) {
				t.Error("pub_key.json was rewritten")
			}
		})
	}
	// The fix the error gives: the identity's public half written there.
	if err := jwk.WritePublicKeyFile(pub, cur, jwk.JWK, jwk.Overwrite); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHomeIdentity(dir, CertOptions{}); err != nil {
		t.Fatal(err)
	}
}

func marshalPublic(t *testing.T, k *jwk.Key) []byte {
	t.Helper()
	data, err := k.PublicHalf().MarshalPublic(jwk.JWK)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestPublicHalfCheckWaitsForTheWriters: a load that meets a key written
// and its public half not yet — a keytool gen --force between its two
// writes, under the lock of the identity's writers — waits for that lock
// and looks again, rather than refuse the home (a watching server would
// have refused the reload, and kept presenting the replaced key).
func TestPublicHalfCheckWaitsForTheWriters(t *testing.T) {
	old, replaced := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	dir := rotationHome(t, old, mustGenerate(t, jwk.EC256), ".json")
	unlock, unlocked, err := LockIdentity(dir)
	if err != nil || unlocked != nil {
		t.Fatalf("LockIdentity: %v, %v", unlocked, err)
	}
	writeKey(t, filepath.Join(dir, "key.json"), replaced, 0o600)
	loaded := make(chan error, 1)
	go func() {
		id, err := LoadHomeIdentity(dir, CertOptions{})
		if err == nil && !id.Key.Equal(replaced) {
			err = errors.New("loaded another key than the one written")
		}
		loaded <- err
	}()
	select {
	case err := <-loaded:
		t.Fatalf("loaded while the writer held the lock: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := jwk.WritePublicKeyFile(filepath.Join(dir, "pub_key.json"), replaced, jwk.JWK, jwk.Overwrite); err != nil {
		t.Fatal(err)
	}
	unlock()
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
}
