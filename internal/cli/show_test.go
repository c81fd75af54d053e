package cli

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// showJSON runs keytool show --json on files and decodes its output.
func showJSON(t *testing.T, files ...string) []map[string]any {
	t.Helper()
	out, e, code := pxRun(t, "", "keytool", append([]string{"show", "--json"}, files...)...)
	if code != 0 {
		t.Fatalf("show --json: exit %d: %s", code, e)
	}
	var infos []map[string]any
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatal(err)
	}
	return infos
}

// TestShowRandomartIsSSHKeygens: for keys ssh-keygen makes, of each type,
// keytool show prints ssh-keygen's fingerprint as ssh-keygen -l prints it,
// and show -v draws, byte for byte, the picture ssh-keygen -lv draws,
// then its own picture of the SPKI hash, which is another.
func TestShowRandomartIsSSHKeygens(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed")
	}
	dir := t.TempDir()
	for _, typ := range [][]string{{"ed25519"}, {"ecdsa", "-b", "256"}, {"ecdsa", "-b", "384"}, {"ecdsa", "-b", "521"}, {"rsa", "-b", "2048"}} {
		file := filepath.Join(dir, strings.Join(typ, ""))
		args := append([]string{"-q", "-N", "", "-C", "me@example", "-f", file, "-t"}, typ...)
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %v: %v\n%s", args, err, out)
		}
		out, err := exec.Command("ssh-keygen", "-lv", "-f", file+".pub").Output()
		if err != nil {
			t.Fatal(err)
		}
		first, art, _ := strings.Cut(strings.TrimSuffix(string(out), "\n"), "\n")
		fp := strings.Fields(first)[1]

		shown, e, code := pxRun(t, "", "keytool", "show", "-v", file+".pub")
		if code != 0 {
			t.Fatalf("show -v: exit %d: %s", code, e)
		}
		if !strings.Contains(shown, "\n  ssh-keygen   "+fp+"\n") {
			t.Errorf("%s: show lacks ssh-keygen's %s:\n%s", typ, fp, shown)
		}
		_, drawn, ok := strings.Cut(shown, "  randomart as ssh-keygen -lv draws it:\n")
		if !ok || strings.ReplaceAll(drawn, "\n  ", "\n") != "  "+art+"\n" {
			t.Errorf("%s: ssh-keygen -lv drew\n%s\nkeytool show -v:\n%s", typ, art, shown)
		}
		keys, err := jwk.ReadFile(file + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		spki := "  randomart of the fingerprint (the SPKI hash):\n  " + strings.ReplaceAll(keys[0].Randomart(), "\n", "\n  ") + "\n"
		if !strings.Contains(shown, spki) || keys[0].Randomart() == art {
			t.Errorf("%s: no SPKI picture, or it is ssh-keygen's:\n%s", typ, shown)
		}
		if got := showJSON(t, file+".pub")[0]["ssh_fingerprint"]; got != fp {
			t.Errorf("%s: ssh_fingerprint %v, want %s", typ, got, fp)
		}
	}
}

// TestShowCurlPin: the curl form keytool show prints is what the real
// curl --pinnedpubkey takes: a TLS server with the key passes the pin,
// and one with another key fails it (curl's exit 90, nothing fetched).
func TestShowCurlPin(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	dir := t.TempDir()
	pins := map[string]string{}
	var addr string
	for _, name := range []string{"server", "other"} {
		k, err := jwk.Generate(jwk.EC256)
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, name+".json")
		if err := jwk.WritePublicKeyFile(file, k, jwk.JWK, jwk.CreateNew); err != nil {
			t.Fatal(err)
		}
		info := showJSON(t, file)[0]
		pins[name], _ = info["curl"].(string)
		if _, ok := info["ssh_fingerprint"]; ok {
			t.Errorf("a JWK file shows an ssh_fingerprint: %v", info)
		}
		if name == "server" {
			addr = pinnedServer(t, k)
		}
	}
	curl := func(pin string) (string, int) {
		out, _, code := pxRun(t, "", "curl", "-sS", "--max-time", "20", "--insecure", "--pinnedpubkey", pin, "https://"+addr+"/")
		return out, code
	}
	if out, code := curl(pins["server"]); code != 0 || out != "pinned ok" {
		t.Errorf("curl --pinnedpubkey %s: exit %d, %q", pins["server"], code, out)
	}
	if out, code := curl(pins["other"]); code != 90 || out != "" {
		t.Errorf("curl --pinnedpubkey with another key's pin: exit %d, %q", code, out)
	}
}

// pinnedServer serves HTTPS with a certificate for k on 127.0.0.1.
func pinnedServer(t *testing.T, k *jwk.Key) string {
	t.Helper()
	id, err := tlsbridge.NewIdentity(k, tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{id.Certificate}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "pinned ok") })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).String()
}
