package tlsbridge

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// An identity whose key is marked for anything but signing ("use":"enc",
// a key_ops without "sign") is not used to sign handshakes: loading it is
// jwk's *UseError, and the key is never replaced by a new one.
func TestIdentityNotForSigningRefused(t *testing.T) {
	for name, attrs := range map[string]jwk.Attributes{
		"use enc":        {"use": []byte(`"enc"`)},
		"key_ops verify": {"key_ops": []byte(`["verify"]`)},
	} {
		home := t.TempDir()
		k, err := jwk.Generate(jwk.EC256)
		if err != nil {
			t.Fatal(err)
		}
		k.Attrs = attrs
		keyFile := filepath.Join(home, "key.json")
		if err := jwk.WritePrivateKeyFile(keyFile, k, jwk.JWK, jwk.CreateNew); err != nil {
			t.Fatal(err)
		}
		before, err := os.ReadFile(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		_, generated, err := LoadOrGenerateHomeIdentity(home, "", CertOptions{})
		var ue *jwk.UseError
		if !errors.As(err, &ue) || generated {
			t.Errorf("%s: %v (generated %v), want a *jwk.UseError", name, err, generated)
		}
		if after, _ := os.ReadFile(keyFile); !bytes.Equal(before, after) {
			t.Errorf("%s: key.json was replaced", name)
		}
	}
	// Marked for signing, it is used.
	home := t.TempDir()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	k.Attrs = jwk.Attributes{"use": []byte(`"sig"`), "key_ops": []byte(`["sign"]`)}
	if err := jwk.WritePrivateKeyFile(filepath.Join(home, "key.json"), k, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if id, err := LoadHomeIdentity(home, CertOptions{}); err != nil || !id.Key.Equal(k) {
		t.Fatalf("identity marked for signing: %v", err)
	}
}
