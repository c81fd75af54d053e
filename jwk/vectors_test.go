package jwk

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// vector is one entry of testdata/vectors/expected.json: a known-answer
// key from the JOSE RFCs with its names, computed independently.
type vector struct {
	File        string            `json:"file"`
	What        string            `json:"what"`
	Private     bool              `json:"private"`
	Algorithm   string            `json:"algorithm"`
	Fingerprint string            `json:"fingerprint"`
	KeyID       string            `json:"key_id"`
	Thumbprint  string            `json:"thumbprint"`
	Attrs       map[string]string `json:"attrs"`
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	var vs []vector
	if err := json.Unmarshal(repoFile(t, "vectors/expected.json"), &vs); err != nil {
		t.Fatalf("vectors/expected.json: %v", err)
	}
	if len(vs) == 0 {
		t.Fatal("vectors/expected.json holds no vectors")
	}
	return vs
}

// vectorKey reads the key of a vector. RFC 7517's example key is marked
// "use":"enc", for encryption, which keytool refuses (use.go): that is
// checked, and the key's names are then checked on the same key without
// its "use", which they do not depend on (nor does v.Attrs any more).
func vectorKey(t *testing.T, v *vector) *Key {
	t.Helper()
	data := repoFile(t, "vectors/"+v.File)
	if use, ok := v.Attrs["use"]; ok && use != "sig" {
		_, err := ParseOne(data)
		var ue *UseError
		if pe := asParseError(t, err); !errors.As(err, &ue) || pe.Member != "use" {
			t.Fatalf("a key for %q: %v, want a *UseError on use", use, err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "use")
		delete(v.Attrs, "use")
		if data, err = json.Marshal(m); err != nil {
			t.Fatal(err)
		}
	}
	k, err := ParseOne(data)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.File, func(t *testing.T) {
			k := vectorKey(t, &v)
			if got := k.Fingerprint(); got != v.Fingerprint {
				t.Errorf("Fingerprint() = %s, want %s", got, v.Fingerprint)
			}
			if got := k.KeyID(); got != v.KeyID {
				t.Errorf("KeyID() = %s, want %s", got, v.KeyID)
			}
			if got := k.Thumbprint(); got != v.Thumbprint {
				t.Errorf("Thumbprint() = %s, want %s", got, v.Thumbprint)
			}
			if got := k.Algorithm(); got != v.Algorithm {
				t.Errorf("Algorithm() = %s, want %s", got, v.Algorithm)
			}
			if k.IsPrivate() != v.Private || (k.Signer() != nil) != v.Private {
				t.Errorf("IsPrivate() = %v, Signer() = %T; want private %v", k.IsPrivate(), k.Signer(), v.Private)
			}
			for name, want := range v.Attrs {
				if got, err := k.Attrs.String(name); err != nil || got != want {
					t.Errorf("attribute %q = %q, %v; want %q", name, got, err, want)
				}
			}
			if len(k.Attrs) != len(v.Attrs) {
				t.Errorf("attributes %v, want exactly %v", k.Attrs, v.Attrs)
			}

			// The fingerprint is also a valid input, in every form.
			for _, s := range []string{v.Fingerprint, v.KeyID, v.Thumbprint} {
				fp, err := ParseFingerprint(s)
				if err != nil || !fp.Match(k) {
					t.Errorf("ParseFingerprint(%q) = %v, %v; does not match the key", s, fp, err)
				}
			}

			// The public export of any vector, private or not, holds no
			// private member, and reads back as the same key.
			for _, f := range []Format{JWK, PEM} {
				pub, err := k.MarshalPublic(f)
				if err != nil {
					t.Fatal(err)
				}
				if f == JWK {
					noPrivateMembers(t, jsonObject(t, pub))
				} else if bytes.Contains(pub, []byte("PRIVATE")) {
					t.Errorf("public PEM is a private key:\n%s", pub)
				}
				back, err := ParseOne(pub)
				if err != nil {
					t.Fatalf("%s: %v\n%s", f, err, pub)
				}
				if back.IsPrivate() || back.Fingerprint() != v.Fingerprint {
					t.Errorf("%s: read back as private=%v %s", f, back.IsPrivate(), back.Fingerprint())
				}
			}
			noPrivateMembers(t, jsonObject(t, mustMarshal(t, k.PublicKey(), JWK, false)))
			if k.PublicKey().IsPrivate() {
				t.Error("PublicKey() is private")
			}
		})
	}
}

// The thumbprint of RFC 7517 A.2's private key is that of its public half,
// A.1: a thumbprint names the key, not the file.
func TestVectorsPrivateAndPublicAgree(t *testing.T) {
	var pub, priv *Key
	for _, v := range loadVectors(t) {
		switch v.File {
		case "rfc7517-a1-ec-public.json":
			pub = vectorKey(t, &v)
		case "rfc7517-a2-ec-private.json":
			priv = vectorKey(t, &v)
		}
	}
	if pub.Thumbprint() != priv.Thumbprint() || pub.SPKIHash() != priv.SPKIHash() || !pub.Equal(priv) || !priv.Equal(pub) {
		t.Errorf("A.1 and A.2 differ: %s %s / %s %s", pub.Fingerprint(), pub.Thumbprint(), priv.Fingerprint(), priv.Thumbprint())
	}
	if !priv.IsPrivate() || pub.IsPrivate() {
		t.Errorf("IsPrivate: A.1 %v, A.2 %v", pub.IsPrivate(), priv.IsPrivate())
	}
	if priv.Equal(nil) {
		t.Error("Equal(nil) = true")
	}
}

func mustMarshal(t testing.TB, k *Key, f Format, private bool) []byte {
	t.Helper()
	var (
		b   []byte
		err error
	)
	if private {
		b, err = k.MarshalPrivate(f)
	} else {
		b, err = k.MarshalPublic(f)
	}
	if err != nil {
		t.Fatalf("marshal %s (private %v): %v", f, private, err)
	}
	return b
}
