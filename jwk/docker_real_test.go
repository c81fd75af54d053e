package jwk

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Files written by Docker's libtrust itself (testdata/docker/libtrust-*,
// made by bench/cmd/libtrustfixtures, see testdata/docker/README.md) load
// unchanged, with the key IDs and hosts that libtrust reads in them
// (libtrust-expected.json, written by the same program from libtrust's own
// loaders).

const (
	libtrustPrefix  = "libtrust-"
	libtrustExpFile = libtrustPrefix + "expected.json"
)

// libtrustExpected is libtrust-expected.json.
type libtrustExpected struct {
	Libtrust string `json:"libtrust"`
	Files    []struct {
		Name    string `json:"name"`
		Private bool   `json:"private"`
		Keys    []struct {
			KeyID string   `json:"kid"`
			Kty   string   `json:"kty"`
			Curve string   `json:"crv"`
			Bits  int      `json:"bits"`
			Hosts []string `json:"hosts"`
		} `json:"keys"`
	} `json:"files"`
}

func readLibtrustExpected(t *testing.T) libtrustExpected {
	t.Helper()
	var exp libtrustExpected
	if err := json.Unmarshal(repoFile(t, "docker/"+libtrustExpFile), &exp); err != nil {
		t.Fatalf("%s: %v", libtrustExpFile, err)
	}
	if len(exp.Files) == 0 {
		t.Fatalf("%s lists no files", libtrustExpFile)
	}
	return exp
}

// libtrustType is keytool's name for a key libtrust describes.
func libtrustType(kty, crv string, bits int) Type {
	switch {
	case kty == "EC" && crv == "P-256":
		return EC256
	case kty == "EC" && crv == "P-384":
		return EC384
	case kty == "EC" && crv == "P-521":
		return EC521
	case kty == "RSA" && bits == 2048:
		return RSA2048
	case kty == "RSA" && bits == 3072:
		return RSA3072
	case kty == "RSA" && bits == 4096:
		return RSA4096
	}
	return Type(kty + " " + crv)
}

// libtrustIDAttrs are the members in which libtrust writes a key's ID: "kid"
// in JWK and public PEM blocks, "keyID" in private PEM blocks (and in a
// JWK saved after the key's PEM block was made).
var libtrustIDAttrs = []string{AttrKeyID, "keyID"}

// TestLibtrustFixturesListed makes sure libtrust-expected.json describes
// every libtrust- file, and was written by the libtrust that bench requires.
func TestLibtrustFixturesListed(t *testing.T) {
	exp := readLibtrustExpected(t)
	entries, err := os.ReadDir(filepath.Join("..", "testdata", "docker"))
	if err != nil {
		t.Fatal(err)
	}
	var onDisk, listed []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), libtrustPrefix) && e.Name() != libtrustExpFile {
			onDisk = append(onDisk, e.Name())
		}
	}
	for _, f := range exp.Files {
		listed = append(listed, f.Name)
	}
	slices.Sort(listed)
	if !slices.Equal(onDisk, listed) {
		t.Errorf("files %q, %s lists %q", onDisk, libtrustExpFile, listed)
	}
	mod, err := os.ReadFile(filepath.Join("..", "bench", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(exp.Libtrust, "github.com/docker/libtrust ") || !strings.Contains(string(mod), "\t"+exp.Libtrust+"\n") {
		t.Errorf("fixtures written by %q, which bench/go.mod does not require: regenerate them (testdata/docker/README.md)", exp.Libtrust)
	}
}

func TestLibtrustRealFiles(t *testing.T) {
	exp := readLibtrustExpected(t)
	loaded := make(map[string][]*Key)
	for _, ef := range exp.Files {
		t.Run(ef.Name, func(t *testing.T) {
			data := repoFile(t, "docker/"+ef.Name)
			// libtrust saves private keys with mode 0600, which git does
			// not keep: the copy gets it back.
			mode := os.FileMode(0o644)
			if ef.Private {
				mode = 0o600
			}
			path := writeFile(t, t.TempDir(), ef.Name, data, mode)
			keys, err := ReadFile(path)
			if err != nil {
				t.Fatalf("keytool cannot read libtrust's %s: %v", ef.Name, err)
			}
			if len(keys) != len(ef.Keys) {
				t.Fatalf("%d keys, libtrust reads %d", len(keys), len(ef.Keys))
			}
			for i, k := range keys {
				want := ef.Keys[i]
				if k.KeyID() != want.KeyID {
					t.Errorf("key %d: key ID %s, libtrust's KeyID() %s", i, k.KeyID(), want.KeyID)
				}
				if typ := libtrustType(want.Kty, want.Curve, want.Bits); k.Type() != typ {
					t.Errorf("key %d: type %s, want %s", i, k.Type(), typ)
				}
				if k.IsPrivate() != ef.Private {
					t.Errorf("key %d: private %v, want %v", i, k.IsPrivate(), ef.Private)
				}
				checkLibtrustAttrs(t, fmt.Sprintf("key %d", i), k, want.KeyID, want.Hosts)

				// The public half, written by keytool and read again in
				// either format, keeps its ID, its kid and its hosts.
				for _, f := range []Format{JWK, PEM} {
					out, err := k.MarshalPublic(f)
					if err != nil {
						t.Fatalf("key %d: MarshalPublic(%s): %v", i, f, err)
					}
					if f == JWK {
						noPrivateMembers(t, jsonObject(t, out))
					}
					again, err := ParseOne(out)
					if err != nil {
						t.Fatalf("key %d: public %s rewrite does not parse: %v\n%s", i, f, err, out)
					}
					if again.IsPrivate() || !again.Equal(k) || again.KeyID() != want.KeyID {
						t.Errorf("key %d: public %s rewrite: private %v, key ID %s, want %s", i, f, again.IsPrivate(), again.KeyID(), want.KeyID)
					}
					checkLibtrustAttrs(t, fmt.Sprintf("key %d, public %s rewrite", i, f), again, want.KeyID, want.Hosts)
				}
			}

			if ef.Private {
				// As the identity of a keytool home: key.json or key.pem.
				home := t.TempDir()
				idPath := writeFile(t, home, "key"+filepath.Ext(ef.Name), data, 0o600)
				found, err := FindIdentity(home)
				if err != nil || found != idPath {
					t.Fatalf("FindIdentity = %q, %v; want %q", found, err, idPath)
				}
				k, err := ReadPrivateKeyFile(found)
				if err != nil {
					t.Fatalf("ReadPrivateKeyFile: %v", err)
				}
				if k.KeyID() != ef.Keys[0].KeyID {
					t.Errorf("identity key ID %s, want %s", k.KeyID(), ef.Keys[0].KeyID)
				}
				// The private rewrite reads back as the same private key.
				out, err := k.MarshalPrivate(JWK)
				if err != nil {
					t.Fatal(err)
				}
				if again, err := ParseOne(out); err != nil || !again.IsPrivate() || again.KeyID() != k.KeyID() {
					t.Errorf("private JWK rewrite: %v", err)
				}
				// As checked out by git, without mode 0600, it is refused.
				open := writeFile(t, t.TempDir(), ef.Name, data, 0o644)
				var pe *PermissionError
				if _, err := ReadFile(open); !errors.As(err, &pe) {
					t.Errorf("mode 0644: got %v, want a *PermissionError", err)
				}
			} else if len(keys) > 1 {
				// A key set written back by keytool, in either format,
				// keeps every key's ID and hosts.
				for _, f := range []Format{JWK, PEM} {
					out, err := MarshalPublicSet(keys, f)
					if err != nil {
						t.Fatal(err)
					}
					again, err := Parse(out)
					if err != nil {
						t.Fatalf("%s rewrite of the set does not parse: %v\n%s", f, err, out)
					}
					sameKeys(t, again, keys)
					for i, k := range again {
						if i < len(ef.Keys) {
							checkLibtrustAttrs(t, fmt.Sprintf("key %d, %s rewrite of the set", i, f), k, ef.Keys[i].KeyID, ef.Keys[i].Hosts)
						}
					}
				}
			}
			loaded[ef.Name] = keys
		})
	}

	// Files that libtrust wrote from the same key hold the same key.
	for _, pair := range [][2]string{
		{"key.json", "public-key.json"},
		{"rsa-key.pem", "rsa-key.json"},
		{"known-hosts.json", "known-hosts.pem"},
	} {
		a, b := loaded[libtrustPrefix+pair[0]], loaded[libtrustPrefix+pair[1]]
		if a == nil || b == nil {
			continue // failed above, or not generated
		}
		sameKeys(t, b, a)
	}
}

// checkLibtrustAttrs checks what keytool kept of libtrust's members: every
// key ID member libtrust wrote (at least one) is kid, and hosts are
// hosts, also as Addresses.
func checkLibtrustAttrs(t *testing.T, what string, k *Key, kid string, hosts []string) {
	t.Helper()
	ids := 0
	for _, name := range libtrustIDAttrs {
		if _, ok := k.Attrs[name]; !ok {
			continue
		}
		ids++
		if v, err := k.Attrs.String(name); err != nil || v != kid {
			t.Errorf("%s: %s %q (%v), want %s", what, name, v, err, kid)
		}
	}
	attrs, _ := json.Marshal(k.Attrs)
	if ids == 0 {
		t.Errorf("%s: no kid or keyID member kept: %s", what, attrs)
	}
	got, err := k.Attrs.List(AttrHosts)
	if err != nil || !slices.Equal(got, hosts) {
		t.Errorf("%s: hosts %q (%v), want %q", what, got, err, hosts)
	}
	if _, ok := k.Attrs[AttrHosts]; ok != (hosts != nil) {
		t.Errorf("%s: hosts member present %v, want %v: %s", what, ok, hosts != nil, attrs)
	}
	if addrs, err := k.Attrs.Addresses(); err != nil || !slices.Equal(addrs, hosts) {
		t.Errorf("%s: Addresses() = %q, %v; want %q", what, addrs, err, hosts)
	}
}
