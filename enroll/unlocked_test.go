package enroll

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A lock file of authorized_keys.d that others may open (mode 0644) is
// not taken: the server enrolls the client all the same, unlocked, and
// its log says why, once however many clients it enrolls
// (docs/design.md, "Concurrent writers").
func TestEnrollUnlockedLogged(t *testing.T) {
	srvHome := newHome(t)
	dir := filepath.Join(srvHome.dir, "authorized_keys.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(dir, ".keytool.lock")
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lock, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, srvHome, serverConfig{})
	for _, name := range []string{"laptop", "phone"} {
		cli := newHome(t)
		if _, err := cli.join(t, srvHome.invite(t, name, srv.addr)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if e, err := srvHome.clients(t).LookupKey(cli.key(), netip.Addr{}); err != nil || e.Name != name {
			t.Fatalf("%s: authorized entry %+v, %v", name, e, err)
		}
	}
	log := srv.log.String()
	want := "lock file " + lock + " may be opened by group or others (mode 0644)"
	if strings.Count(log, "adding clients without the directory's lock") != 1 || !strings.Contains(log, want) {
		t.Errorf("server log: want one warning holding %q:\n%s", want, log)
	}
}
