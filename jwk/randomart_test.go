package jwk

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// A key and the picture ssh-keygen 9.2 drew for it (ssh-keygen -lv), kept
// so that the algorithm is checked where ssh-keygen is not installed.
const (
	goldenSSHKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbLnqDqQXyUUyIybmSqSAripWcUJZvGTmZJsS8P0D6s x"
	goldenArt    = `+--[ED25519 256]--+
|            .+ .E|
|          ..+.= o|
|          +=.=o+ |
|       . + oBBo. |
|        S o.+*=. |
|         o ++==o.|
|          o *o++o|
|           = +o .|
|          . oo.. |
+----[SHA256]-----+`
)

func TestRandomartGolden(t *testing.T) {
	k, err := ParseOne([]byte(goldenSSHKey))
	if err != nil {
		t.Fatal(err)
	}
	art, ok := k.SSHRandomart()
	if !ok || art != goldenArt {
		t.Fatalf("got\n%s\nwant\n%s", art, goldenArt)
	}
}

// TestRandomartSSHKeygen draws the picture of many keys of every type and
// compares it, byte for byte, with the one the real ssh-keygen -lv draws
// for the same key: walks that hit every wall, and the headers of every
// key size.
func TestRandomartSSHKeygen(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed")
	}
	dir := t.TempDir()
	var keys []*Key
	for _, typ := range []Type{Ed25519, EC256, EC384, EC521} {
		for range 8 {
			k, err := Generate(typ)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
	}
	keys = append(keys, testKey(t, RSA2048))
	// One key ssh-keygen made itself, of a size keytool does not generate.
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "rsa", "-b", "2560", "-N", "", "-C", "", "-f", filepath.Join(dir, "rsa")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "rsa.pub"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseOne(data)
	if err != nil {
		t.Fatal(err)
	}
	keys = append(keys, k)

	for i, k := range keys {
		pub, err := ssh.NewPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "key.pub")
		if err := os.WriteFile(file, ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ssh-keygen", "-lv", "-f", file).Output()
		if err != nil {
			t.Fatalf("ssh-keygen -lv: %v", err)
		}
		first, want, _ := strings.Cut(strings.TrimSuffix(string(out), "\n"), "\n")
		art, ok := k.SSHRandomart()
		if !ok || art != want {
			t.Errorf("key %d (%s, %s): got\n%s\nssh-keygen drew\n%s", i, k.Algorithm(), first, art, want)
		}
		if fp, _ := k.SSHFingerprint(); !strings.Contains(first, " "+fp+" ") {
			t.Errorf("key %d: ssh-keygen printed %q, not %s", i, first, fp)
		}
	}
}

// TestRandomartSPKI: the key's own picture is drawn over its SPKI hash,
// says so at the bottom, and differs from ssh-keygen's.
func TestRandomartSPKI(t *testing.T) {
	for _, typ := range testTypes {
		k := testKey(t, typ)
		sum := k.SPKIHash()
		name, bits := k.artTitle()
		art := k.Randomart()
		if art != Randomart(sum[:], name, bits, "SPKI SHA256") {
			t.Errorf("%s: Randomart is not the picture of the SPKI hash", typ)
		}
		lines := strings.Split(art, "\n")
		if len(lines) != 11 || lines[10] != "+--[SPKI SHA256]--+" {
			t.Errorf("%s: %q", typ, lines)
		}
		if ssh, _ := k.SSHRandomart(); ssh == art {
			t.Errorf("%s: the SPKI picture is ssh-keygen's", typ)
		}
	}
}

// TestRandomartLabels: labels are centred with the odd dash on the right,
// a title too long for the border loses its size, and anything longer is
// cut as OpenSSH's snprintf cuts it; a walk stays inside the field.
func TestRandomartLabels(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		bits int
		top  string
	}{
		{"RSA", 3072, "+---[RSA 3072]----+"},
		{"ECDSA", 256, "+---[ECDSA 256]---+"},
		{"ECDSA-SK", 256, "+-[ECDSA-SK 256]--+"},
		{"ED25519-CERT", 256, "+-[ED25519-CERT]--+"},
		{"ABCDEFGHIJKLMNOPQRST", 1, "+[ABCDEFGHIJKLMNO-+"},
	} {
		art := Randomart(make([]byte, 32), tc.typ, tc.bits, "SHA256")
		if top, _, _ := strings.Cut(art, "\n"); top != tc.top {
			t.Errorf("%s %d: %q, want %q", tc.typ, tc.bits, top, tc.top)
		}
	}
	// 0x00 moves up-left every step: the walk ends in the corner.
	art := Randomart(make([]byte, 32), "X", 1, "H")
	lines := strings.Split(art, "\n")
	if lines[1] != "|E....            |" || lines[5] != "|        S        |" {
		t.Errorf("%s", art)
	}
}
