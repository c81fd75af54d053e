package enroll

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestOneKeyManyTokensAtOnce: a client holding several tokens of one
// server presents them all at once with one key. The key is authorized
// once, under one name; the other attempts are refused not_enrollable
// (the key is authorized already) — or, those whose probe comes after the
// key was added, turned away before they send their secret (probePath) —,
// their invitations left pending.
// Before: authkeys.Store.Add checks whether the key is authorized against
// what it last loaded, with no lock, so adds at once each found it
// nowhere and each wrote it — one key under several names, the client's
// identity two at once, where one after the other are refused (found by
// review).
func TestOneKeyManyTokensAtOnce(t *testing.T) {
	const tokens, rounds = 8, 3
	for round := range rounds {
		srvHome := newHome(t)
		srv := startServer(t, srvHome, serverConfig{limits: Limits{PerAddressBurst: 100, GlobalBurst: 100}})
		key := newHome(t)
		var wins, refused atomic.Int32
		var wg sync.WaitGroup
		toks := make([]Token, tokens)
		for i := range toks {
			toks[i] = srvHome.invite(t, fmt.Sprintf("name-%d", i), srv.addr)
		}
		start := make(chan struct{})
		for _, tok := range toks {
			cli := &home{dir: newHome(t).dir, id: key.id} // the same key, trusted hosts of its own
			wg.Go(func() {
				<-start
				_, err := cli.join(t, tok)
				var re *RefusedError
				var ne *NotEnrollmentError
				switch {
				case err == nil:
					wins.Add(1)
				case errors.As(err, &re) && re.Reason == ReasonNotEnrollable:
					refused.Add(1)
				case errors.As(err, &ne) && ne.Probe && ne.Status != "":
					// The key was authorized before this join's probe: its
					// requests go to the app, and the secret is not sent.
					refused.Add(1)
				default:
					t.Errorf("round %d, token %q: %v", round, tok.Name, err)
				}
			})
		}
		close(start)
		wg.Wait()
		files, err := filepath.Glob(filepath.Join(srvHome.dir, "authorized_keys.d", "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range files {
			names = append(names, strings.TrimSuffix(filepath.Base(f), ".json"))
		}
		if wins.Load() != 1 || refused.Load() != tokens-1 || len(names) != 1 {
			t.Fatalf("round %d: one key, %d tokens at once: %d enrolled, %d refused; the key is authorized as %q, want one name",
				round, tokens, wins.Load(), refused.Load(), names)
		}
		invs, _ := ListInvites(InvitesDir(srvHome.dir))
		pending := 0
		for _, inv := range invs {
			if inv.Status(inv.Created) == "pending" && inv.Claimed.IsZero() {
				pending++
			}
		}
		if pending != tokens-1 {
			t.Fatalf("round %d: %d invitations pending after the refusals, want %d", round, pending, tokens-1)
		}
	}
}
