package tlsbridge

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// checkOneIdentity checks that home holds exactly key.json (0600) and
// pub_key.json (0644) — and the lock of their writers —, no temporary file, and that both hold the key
// with fingerprint fp.
func checkOneIdentity(t *testing.T, home, fp string) {
	t.Helper()
	if _, err := os.Stat(home); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(home); !slices.Equal(names, []string{"key.json", "pub_key.json"}) {
		t.Fatalf("home holds %v, want only key.json and pub_key.json", names)
	}
	for name, mode := range map[string]os.FileMode{"key.json": 0o600, "pub_key.json": 0o644} {
		path := filepath.Join(home, name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %04o, want %04o", name, fi.Mode().Perm(), mode)
		}
		keys, err := jwk.ReadFile(path)
		if err != nil || len(keys) != 1 || keys[0].Fingerprint() != fp {
			t.Errorf("%s: %v, %v; want the one key %s", name, keys, err, fp)
		}
	}
	if fi, err := os.Stat(home); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("home: %v, %v; want a directory only its owner may use", fi, err)
	}
}

func TestLoadOrGenerateHomeIdentity(t *testing.T) {
	home := filepath.Join(t.TempDir(), "keytool") // created by the first run
	id, generated, err := LoadOrGenerateHomeIdentity(home, jwk.Ed25519, CertOptions{DNSNames: []string{"a.example"}})
	if err != nil || !generated {
		t.Fatalf("first run: %v, generated %v", err, generated)
	}
	if id.Key.Algorithm() != testKeyAlgorithm(t, jwk.Ed25519) || id.Certificate.Leaf.DNSNames[0] != "a.example" {
		t.Fatalf("identity %s with names %v", id.Key.Algorithm(), id.Certificate.Leaf.DNSNames)
	}
	checkOneIdentity(t, home, id.Key.Fingerprint())
	// Later runs load the same key and write nothing.
	before, _ := os.Stat(filepath.Join(home, "key.json"))
	again, generated, err := LoadOrGenerateHomeIdentity(home, jwk.EC256, CertOptions{})
	if err != nil || generated || again.Key.Fingerprint() != id.Key.Fingerprint() {
		t.Fatalf("second run: %v, generated %v, key %s want %s", err, generated, again.Key.Fingerprint(), id.Key.Fingerprint())
	}
	if after, _ := os.Stat(filepath.Join(home, "key.json")); !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Error("key.json was rewritten by a run that found it")
	}
	checkOneIdentity(t, home, id.Key.Fingerprint())
}

// testKeyAlgorithm names the algorithm of a key of type typ.
func testKeyAlgorithm(t *testing.T, typ jwk.Type) string {
	k, err := jwk.Generate(typ)
	if err != nil {
		t.Fatal(err)
	}
	return k.Algorithm()
}

// An identity that exists but does not load is an error, never replaced
// by a new key.
func TestLoadOrGenerateNeverReplacesAnIdentity(t *testing.T) {
	for name, setup := range map[string]func(home string){
		"open mode": func(home string) {
			k, _ := jwk.Generate(jwk.EC256)
			if err := jwk.WritePrivateKeyFile(filepath.Join(home, "key.json"), k, jwk.JWK, jwk.CreateNew); err != nil {
				t.Fatal(err)
			}
			os.Chmod(filepath.Join(home, "key.json"), 0o644)
		},
		"garbage": func(home string) { os.WriteFile(filepath.Join(home, "key.pem"), []byte("junk\n"), 0o600) },
		"two": func(home string) {
			for _, n := range []string{"key.json", "key.pem"} {
				k, _ := jwk.Generate(jwk.EC256)
				f := jwk.JWK
				if strings.HasSuffix(n, ".pem") {
					f = jwk.PEM
				}
				if err := jwk.WritePrivateKeyFile(filepath.Join(home, n), k, f, jwk.CreateNew); err != nil {
					t.Fatal(err)
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			home := t.TempDir()
			setup(home)
			before, _ := os.ReadDir(home)
			id, generated, err := LoadOrGenerateHomeIdentity(home, jwk.EC256, CertOptions{})
			var none *jwk.NoIdentityError
			if err == nil || id != nil || generated || errors.As(err, &none) {
				t.Fatalf("%v, generated %v: want the identity's own error", err, generated)
			}
			if after, _ := os.ReadDir(home); len(after) != len(before) {
				t.Fatalf("files %v became %v", before, after)
			}
		})
	}
}

// Eight goroutines start on one empty home at once: one makes the key,
// the others load it; all end with the same key, and the home with one.
func TestLoadOrGenerateConcurrentGoroutines(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	fps, made := raceFirstKey(t, home, 8)
	for i, fp := range fps {
		if fp != fps[0] {
			t.Fatalf("goroutine %d has key %s, goroutine 0 %s", i, fp, fps[0])
		}
	}
	if made != 1 {
		t.Fatalf("%d goroutines made a key, want 1", made)
	}
	checkOneIdentity(t, home, fps[0])
}

// firstRunEnv makes the test binary a process that starts on a home:
// TestFirstRunProcess, run with it set, waits for the file "go" in the
// directory it names, calls LoadOrGenerateHomeIdentity on home in it and
// prints the key's fingerprint and whether it made it.
const firstRunEnv = "KEYTOOL_TEST_FIRST_RUN_DIR"

func TestFirstRunProcess(t *testing.T) {
	dir := os.Getenv(firstRunEnv)
	if dir == "" {
		t.Skip("a helper process of TestLoadOrGenerateConcurrentProcesses")
	}
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("ready.%d", os.Getpid())), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go")); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	id, generated, err := LoadOrGenerateHomeIdentity(filepath.Join(dir, "home"), jwk.EC256, CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("FIRSTRUN %s %v\n", id.Key.Fingerprint(), generated)
}

// Several real processes start on one empty home at once, released
// together once all are running: they all end with the same key, one of
// them made it, and the home holds one key.json (0600) and no temporary
// file.
func TestLoadOrGenerateConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		dir := t.TempDir()
		const n = 6
		cmds := make([]*exec.Cmd, n)
		outs := make([]strings.Builder, n)
		for i := range cmds {
			cmds[i] = exec.Command(exe, "-test.run=^TestFirstRunProcess$", "-test.count=1")
			cmds[i].Env = append(os.Environ(), firstRunEnv+"="+dir)
			cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
			if err := cmds[i].Start(); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			ready, _ := filepath.Glob(filepath.Join(dir, "ready.*"))
			if len(ready) == n {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d of %d processes ready", round, len(ready), n)
			}
			time.Sleep(time.Millisecond)
		}
		if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		var fps []string
		made := 0
		for i, c := range cmds {
			if err := c.Wait(); err != nil {
				t.Fatalf("round %d, process %d: %v\n%s", round, i, err, outs[i].String())
			}
			var fp string
			var gen bool
			line := outs[i].String()
			j := strings.Index(line, "FIRSTRUN ")
			if j < 0 {
				t.Fatalf("round %d, process %d printed %q", round, i, line)
			}
			if _, err := fmt.Sscanf(line[j:], "FIRSTRUN %s %t", &fp, &gen); err != nil {
				t.Fatalf("round %d, process %d printed %q: %v", round, i, line, err)
			}
			fps = append(fps, fp)
			if gen {
				made++
			}
		}
		for i, fp := range fps {
			if fp != fps[0] {
				t.Fatalf("round %d: process %d has key %s, process 0 %s", round, i, fp, fps[0])
			}
		}
		if made != 1 {
			t.Fatalf("round %d: %d processes made a key, want 1", round, made)
		}
		checkOneIdentity(t, filepath.Join(dir, "home"), fps[0])
	}
}
