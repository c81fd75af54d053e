package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeersSmoke runs ../../peers/run in its smoke mode (one short round
// at 1 and 100 keys): the script, the fixtures, every server's
// configuration and the load client still work, and every server is
// measured. The full comparison (minutes) is run by hand; see
// docs/benchmarks.md, "Peers".
func TestPeersSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIPPED, NOT PASSED: -short; the peers smoke run takes about 10 s")
	}
	for _, p := range []struct{ name, debian string }{
		{"nginx", "nginx libnginx-mod-stream"}, {"haproxy", "haproxy"}, {"stunnel4", "stunnel4"}, {"taskset", "util-linux"},
	} {
		if _, err := os.Stat(lookSbin(p.name)); err != nil {
			t.Skipf("SKIPPED, NOT PASSED: %s is not installed (Debian: apt-get install %s); the peers comparison is untested", p.name, p.debian)
		}
	}
	if _, err := os.Stat("/usr/share/nginx/modules/ngx_stream_module.so"); err != nil {
		if _, err := os.Stat("/usr/lib/nginx/modules/ngx_stream_module.so"); err != nil {
			t.Skip("SKIPPED, NOT PASSED: nginx's stream module is not installed (Debian: apt-get install libnginx-mod-stream)")
		}
	}
	out := t.TempDir()
	cmd := exec.Command("../../peers/run")
	cmd.Env = append(os.Environ(), "PEERS_SMOKE=1", "PEERS_OUT="+out)
	got, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("peers/run: %v\n%s", err, got)
	}
	servers := []string{"keytool", "stdlib", "nginx", "haproxy", "stunnel"}
	f, err := os.Open(filepath.Join(out, "peers.raw.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rounds, startups := map[string]round{}, map[string]startup{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"ConnPerSec"`) {
			var r round
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			rounds[r.Server] = r
		} else {
			var s startup
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				t.Fatal(err)
			}
			startups[s.Server] = s
		}
	}
	for _, s := range servers {
		r, ok := rounds[s]
		// (CPU figures may round to zero in so short a run: not checked.)
		if !ok || r.ConnPerSec <= 0 || r.ReqPerSec <= 0 || r.XferSec <= 0 || r.RSSLoadKiB <= 0 {
			t.Errorf("%s: round %+v (present %v): a figure is missing", s, r, ok)
		}
		if st := startups[s]; !st.Ready || st.Keys != 100 || st.RSSKiB <= 0 {
			t.Errorf("%s: startup at 100 keys %+v", s, st)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "peers.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "| keytool | stdlib | nginx | haproxy | stunnel |") || !strings.Contains(string(md), "↳ ÷ nginx") {
		t.Errorf("peers.md lacks the table:\n%s", md)
	}
}
