// Command libtrustfixtures writes key files with Docker's libtrust itself,
// for keytool's tests to read: real libtrust output rather than imitations.
//
//	cd bench && go run ./cmd/libtrustfixtures ../testdata/docker
//
// It writes, into the directory given (created if needed), files whose
// names start with "libtrust-" (so that they sit beside the hand-made ones
// without replacing them; jwk's fuzz targets take every file of
// testdata/docker as a seed and want no subdirectory there):
//
//	libtrust-key.json          EC P-256 private key, libtrust.SaveKey (Docker's daemon key)
//	libtrust-public-key.json   its public half, libtrust.SavePublicKey
//	libtrust-rsa-key.pem       RSA 2048 private key, libtrust.SaveKey to .pem
//	libtrust-rsa-key.json      the same key, libtrust.SaveKey to .json afterwards
//	libtrust-ec-key.pem        EC P-256 private key, libtrust.SaveKey to .pem
//	libtrust-known-hosts.json  JSON key set, libtrust.AddKeySetFile once per key
//	libtrust-known-hosts.pem   the same keys as a PEM key set, libtrust.AddKeySetFile
//	libtrust-expected.json     for each file: its keys' libtrust KeyID(), type and hosts
//
// The order matters, because libtrust's PEMBlock records the key ID in the
// key's own extended fields ("keyID" for a private key, "kid" for a public
// one) and every later encoding of that key writes them too: rsa-key.json,
// saved after rsa-key.pem, carries a "keyID" member beside "kid", as a real
// Docker key saved both ways would.
//
// Every file is read back with libtrust's own loaders, and expected.json is
// made from what they return, so that it says what libtrust sees in the
// files. Keys are fresh on every run; the private keys protect nothing.
package main

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"

	"github.com/docker/libtrust"
)

// prefix starts the name of every file written.
const prefix = "libtrust-"

// Expected is the content of expected.json.
type Expected struct {
	Libtrust string         `json:"libtrust"` // module version that wrote the files
	Files    []ExpectedFile `json:"files"`
}

// ExpectedFile describes one generated file.
type ExpectedFile struct {
	Name    string        `json:"name"`    // with the prefix
	Private bool          `json:"private"` // holds a private key
	Keys    []ExpectedKey `json:"keys"`    // in file order
}

// ExpectedKey is what libtrust reads of one key.
type ExpectedKey struct {
	KeyID string   `json:"kid"`             // libtrust's KeyID()
	Kty   string   `json:"kty"`             // libtrust's KeyType(): EC or RSA
	Curve string   `json:"crv,omitempty"`   // EC: P-256, P-384, P-521
	Bits  int      `json:"bits,omitempty"`  // RSA: modulus size
	Hosts []string `json:"hosts,omitempty"` // the "hosts" extended field
}

// setHosts are the hosts of the key set's keys, in order; nil is a key
// without hosts, as in the trusted clients file (authorized-keys.json)
// that libtrust's ClientKeyManager reads.
var setHosts = [][]string{
	{"docker1.example.com:2376", "10.0.0.5:2376"},
	{"*.swarm.example.com"},
	{"[2001:db8::1]:2376"},
	nil,
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("libtrustfixtures: ")
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: libtrustfixtures DIR")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		log.Fatal(err)
	}
}

func run(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := func(name string) string { return filepath.Join(dir, prefix+name) }
	// AddKeySetFile appends: start the sets afresh.
	for _, name := range []string{"known-hosts.json", "known-hosts.pem"} {
		if err := os.Remove(path(name)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}

	// Docker's daemon key and its public half.
	daemon, err := libtrust.GenerateECP256PrivateKey()
	if err != nil {
		return err
	}
	if err := libtrust.SaveKey(path("key.json"), daemon); err != nil {
		return err
	}
	if err := libtrust.SavePublicKey(path("public-key.json"), daemon.PublicKey()); err != nil {
		return err
	}

	// An RSA key saved as PEM, then as JSON.
	rsaKey, err := libtrust.GenerateRSA2048PrivateKey()
	if err != nil {
		return err
	}
	if err := libtrust.SaveKey(path("rsa-key.pem"), rsaKey); err != nil {
		return err
	}
	if err := libtrust.SaveKey(path("rsa-key.json"), rsaKey); err != nil {
		return err
	}

	// An EC key as PEM.
	ecKey, err := libtrust.GenerateECP256PrivateKey()
	if err != nil {
		return err
	}
	if err := libtrust.SaveKey(path("ec-key.pem"), ecKey); err != nil {
		return err
	}

	// The key sets: the same public keys, with hosts, in both formats.
	gens := []func() (libtrust.PrivateKey, error){
		libtrust.GenerateECP256PrivateKey,
		libtrust.GenerateECP384PrivateKey,
		libtrust.GenerateRSA2048PrivateKey,
		libtrust.GenerateECP256PrivateKey,
	}
	for i, gen := range gens {
		k, err := gen()
		if err != nil {
			return err
		}
		pub := k.PublicKey()
		if setHosts[i] != nil {
			pub.AddExtendedField("hosts", setHosts[i])
		}
		for _, name := range []string{"known-hosts.json", "known-hosts.pem"} {
			if err := libtrust.AddKeySetFile(path(name), pub); err != nil {
				return err
			}
		}
	}

	// Read everything back with libtrust.
	exp := Expected{Libtrust: libtrustVersion()}
	for _, name := range []string{"key.json", "public-key.json", "rsa-key.pem", "rsa-key.json", "ec-key.pem", "known-hosts.json", "known-hosts.pem"} {
		f := ExpectedFile{Name: name}
		var keys []libtrust.PublicKey
		switch name {
		case "public-key.json":
			var k libtrust.PublicKey
			k, err = libtrust.LoadPublicKeyFile(path(name))
			keys = append(keys, k)
		case "known-hosts.json", "known-hosts.pem":
			keys, err = libtrust.LoadKeySetFile(path(name))
		default:
			var k libtrust.PrivateKey
			k, err = libtrust.LoadKeyFile(path(name))
			keys = append(keys, k)
			f.Private = true
		}
		if err != nil {
			return fmt.Errorf("libtrust cannot read back %s: %v", path(name), err)
		}
		for _, k := range keys {
			f.Keys = append(f.Keys, expectedKey(k))
		}
		exp.Files = append(exp.Files, f)
	}

	// Sanity: what libtrust read back is what was written.
	check := func(name string, got, want string) error {
		if got != want {
			return fmt.Errorf("%s: libtrust read key ID %s, wrote %s", name, got, want)
		}
		return nil
	}
	ids := map[string]string{
		"key.json":        daemon.KeyID(),
		"public-key.json": daemon.KeyID(),
		"rsa-key.pem":     rsaKey.KeyID(),
		"rsa-key.json":    rsaKey.KeyID(),
		"ec-key.pem":      ecKey.KeyID(),
	}
	for _, f := range exp.Files {
		if want, ok := ids[f.Name]; ok {
			if err := check(f.Name, f.Keys[0].KeyID, want); err != nil {
				return err
			}
			continue
		}
		if len(f.Keys) != len(setHosts) {
			return fmt.Errorf("%s: libtrust read %d keys, wrote %d", f.Name, len(f.Keys), len(setHosts))
		}
		for i, k := range f.Keys {
			if !slices.Equal(k.Hosts, setHosts[i]) {
				return fmt.Errorf("%s: key %d: libtrust read hosts %q, wrote %q", f.Name, i, k.Hosts, setHosts[i])
			}
		}
	}
	js, pem := exp.Files[len(exp.Files)-2], exp.Files[len(exp.Files)-1]
	for i := range js.Keys {
		if err := check(pem.Name, pem.Keys[i].KeyID, js.Keys[i].KeyID); err != nil {
			return err
		}
	}

	for i := range exp.Files {
		exp.Files[i].Name = prefix + exp.Files[i].Name
	}
	out, err := json.MarshalIndent(exp, "", "    ")
	if err != nil {
		return err
	}
	return os.WriteFile(path("expected.json"), append(out, '\n'), 0o644)
}

// expectedKey describes k as libtrust sees it.
func expectedKey(k libtrust.PublicKey) ExpectedKey {
	e := ExpectedKey{KeyID: k.KeyID(), Kty: k.KeyType()}
	switch c := k.CryptoPublicKey().(type) {
	case *ecdsa.PublicKey:
		e.Curve = c.Params().Name
	case *rsa.PublicKey:
		e.Bits = c.N.BitLen()
	}
	// A key set read from JSON gives []interface{}, from PEM []string.
	switch h := k.GetExtendedField("hosts").(type) {
	case []string:
		e.Hosts = h
	case []interface{}:
		for _, v := range h {
			s, _ := v.(string)
			e.Hosts = append(e.Hosts, s)
		}
	}
	return e
}

// libtrustVersion returns the libtrust module version this program was
// built with.
func libtrustVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/docker/libtrust" {
				if m.Replace != nil {
					m = m.Replace
				}
				return m.Path + " " + m.Version
			}
		}
	}
	return "github.com/docker/libtrust (unknown version)"
}
