package enroll

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/knownhosts"
)

// TestJoinPinsOnlyWhereTheKeyWasSeen: a token may name addresses its
// maker does not serve (invite --address evil --address db.corp…). Join
// pins the server's key only where a completed handshake showed it: the
// address it enrolled through, and another address of the same server it
// reached afterwards. An address that was down, and one where another key
// answers, are reported unverified and get no pin file.
func TestJoinPinsOnlyWhereTheKeyWasSeen(t *testing.T) {
	srvHome, cli, other := newHome(t), newHome(t), newHome(t)
	srv := startServer(t, srvHome, serverConfig{})
	again := startServer(t, srvHome, serverConfig{}) // the same server's key at a second address
	impostor := startServer(t, other, serverConfig{})
	down := closedAddr(t)
	tok := srvHome.invite(t, "laptop", down, srv.addr, impostor.addr, again.addr)

	res, err := cli.join(t, tok)
	if err != nil {
		t.Fatal(err)
	}
	if res.Addr != srv.addr {
		t.Fatalf("enrolled through %s, want %s", res.Addr, srv.addr)
	}
	var pinned []string
	for _, p := range res.Pins {
		pinned = append(pinned, p.Addr)
	}
	if strings.Join(pinned, " ") != srv.addr+" "+again.addr {
		t.Fatalf("pinned %v, want %s and %s", pinned, srv.addr, again.addr)
	}
	if len(res.Unverified) != 2 || res.Unverified[0].Addr != down || res.Unverified[1].Addr != impostor.addr {
		t.Fatalf("unverified %+v, want %s then %s", res.Unverified, down, impostor.addr)
	}
	var ie *InterceptionError
	if !errors.As(res.Unverified[1].Err, &ie) || ie.Got != other.key().Fingerprint() {
		t.Errorf("the impostor's address: %v, want an *InterceptionError naming its key", res.Unverified[1].Err)
	}

	hosts := cli.hosts(t)
	for _, a := range []string{srv.addr, again.addr} {
		if err := hosts.Check(a, srvHome.key()); err != nil {
			t.Errorf("%s is not pinned: %v", a, err)
		}
	}
	for _, a := range []string{down, impostor.addr} {
		if d := hosts.Decide(a, srvHome.key().SPKIHash()); d.Verdict != knownhosts.Unknown {
			t.Errorf("%s: verdict %v, want unknown (not pinned)", a, d.Verdict)
		}
		name, err := knownhosts.FileName(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(cli.dir, "trusted_hosts.d", name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a pin file exists for the unverified %s: %v", a, err)
		}
	}
}
