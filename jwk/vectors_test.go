package jwk

import (
	"bytes"
	"encoding/json"
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

func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.File, func(t *testing.T) {
			k, err := ParseOne(repoFile(t, "vectors/"+v.File))
			if err != nil {
				t.Fatal(err)
			}
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
	pub, err := ParseOne(repoFile(t, "vectors/rfc7517-a1-ec-public.json"))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ParseOne(repoFile(t, "vectors/rfc7517-a2-ec-private.json"))
	if err != nil {
		t.Fatal(err)
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
