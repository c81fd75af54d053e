package cli

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/keytool/keytool/enroll"
)

// TestJoinRaceTwoServerProcesses: two keytool proxy --enroll processes
// serve one home, and two keytool join processes present one token at
// once, each through another server — the race between the check of an
// invitation and its use, across processes on both sides, with no memory
// shared but the files. Exactly one wins each round; the other is told the
// invitation is used (or being used), pins nothing, and the home holds one
// key per invitation. What decides is the claim, a hard link of the
// pending file that only one link(2) can make (docs/enrollment.md, "Single
// use"); the rate limits, each process's own, play no part.
func TestJoinRaceTwoServerProcesses(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	srvHome := joinHome(t)
	_, addr1 := pxProxy(t, srvHome, "--enroll", "--target", target.Addr().String())
	_, addr2 := pxProxy(t, srvHome, "--enroll", "--target", target.Addr().String())
	const rounds = 4
	for round := range rounds {
		tok := inviteToken(t, srvHome, "--name", "race-"+string(rune('a'+round)), "--address", addr1, "--address", addr2)
		other, err := enroll.DecodeToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		slices.Reverse(other.Addresses) // the second client asks the second server first
		tok2, err := other.Encode()
		if err != nil {
			t.Fatal(err)
		}
		homes := []string{joinHome(t), joinHome(t)}
		outs := make([]strings.Builder, len(homes))
		errs := make([]error, len(homes))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, token := range []string{tok, tok2} {
			cmd := exec.Command("keytool", "-H", homes[i], "join", "-")
			cmd.Stdin = strings.NewReader(token)
			cmd.Stderr = &outs[i]
			noTerminal(cmd)
			wg.Go(func() {
				<-start
				errs[i] = cmd.Run()
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			if err == nil {
				wins++
				continue
			}
			if !strings.Contains(outs[i].String(), "(already_used)") {
				t.Errorf("round %d, loser %d: %v\n%s", round, i, err, outs[i].String())
			}
			if _, err := os.Stat(filepath.Join(homes[i], "trusted_hosts.d")); err == nil {
				t.Errorf("round %d: loser %d pinned the server", round, i)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d clients enrolled with one token\n%s\n%s", round, wins, outs[0].String(), outs[1].String())
		}
	}
	entries, err := keyDirEntries(filepath.Join(srvHome, "authorized_keys.d"))
	if err != nil || len(entries) != rounds {
		t.Fatalf("authorized_keys.d holds %d files, want %d: %v", len(entries), rounds, err)
	}
}
