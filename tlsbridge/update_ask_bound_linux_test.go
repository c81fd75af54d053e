package tlsbridge

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// ptyScreen reads what is written to a pseudo-terminal from its master,
// as a user's screen shows it, and types reply there each time a question
// ends in "? ": a user who answers every question yes.
type ptyScreen struct {
	mu     sync.Mutex
	screen strings.Builder
	asked  int
	done   chan struct{}
}

func readPty(master *os.File, reply string) *ptyScreen {
	s := &ptyScreen{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			s.mu.Lock()
			s.screen.Write(buf[:n])
			ask := strings.Count(s.screen.String(), "? ") > s.asked
			if ask {
				s.asked++
			}
			s.mu.Unlock()
			if ask {
				_, _ = master.WriteString(reply)
			}
			if err != nil || strings.Contains(s.String(), ptyEnd) {
				return
			}
		}
	}()
	return s
}

// ptyEnd is written to the terminal last: readPty stops once it shows.
const ptyEnd = "-- end of the test --\n"

func (s *ptyScreen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.ReplaceAll(s.screen.String(), "\r\n", "\n")
}

// TestUpdateHostKeysAskNotOfferedAtTheBound: under --update-host-keys
// ask, a pinned host announcing a next key while its address already
// holds its bound of pins (its key and MaxAnnounced next ones) is not
// asked about: the terminal (a real pseudo-terminal, its user typing yes
// at every question) says the key is not offered and why, naming the
// address and the keys, no file; nothing is pinned, and the client's
// pins are as they were. Before (found by review, 2026-12-05): the user
// was asked, said yes, and AddKeyAtMost refused the key for the bound
// (*knownhosts.TooManyKeysError) — a question whose yes was refused. With
// one pin fewer the question is asked, and the yes pins the key.
func TestUpdateHostKeysAskNotOfferedAtTheBound(t *testing.T) {
	next := mustGenerate(t, jwk.EC256)
	srv, ts := announcingServer(t, next)
	cl := newHome(t, jwk.EC256)
	srv.authorize(t, "c", cl.id.Key)
	addr := ts.addr()
	cl.pin(t, addr, srv.id.Key)
	var others []string
	for range MaxAnnounced {
		f, err := cl.host.AddKey(addr, mustGenerate(t, jwk.EC256).PublicKey(), knownhosts.AddAnother)
		if err != nil {
			t.Fatal(err)
		}
		others = append(others, f)
	}
	if n := cl.host.KeysPinnedAt(addr); n != 1+MaxAnnounced {
		t.Fatalf("%d keys pinned, want %d", n, 1+MaxAnnounced)
	}

	learn := func() (screen, log string) {
		return learnAtTerminal(t, cl, ClientOptions{UpdateHostKeys: UpdateAsk}, addr)
	}

	screen, log := learn()
	if strings.Contains(screen, "Pin the next key too") {
		t.Errorf("asked about a key the bound refuses:\n%s\nlog:\n%s", screen, log)
	}
	if !strings.Contains(screen, next.Fingerprint()) || !strings.Contains(screen, "not offered for pinning: 5 keys are pinned for '"+addr+"' already") {
		t.Errorf("the terminal does not say the next key is not offered, and why:\n%s", screen)
	}
	if strings.Contains(screen, cl.dir) || strings.Contains(screen, "trusted_hosts") {
		t.Errorf("the terminal names a file:\n%s", screen)
	}
	cl.host.Reload()
	if cl.host.Decide(addr, next.SPKIHash()).Verdict == knownhosts.Pinned || cl.host.KeysPinnedAt(addr) != 1+MaxAnnounced {
		t.Fatalf("pinned: %d keys for the address", cl.host.KeysPinnedAt(addr))
	}

	// Room for one: asked, and the yes pins it.
	if err := os.Remove(others[0]); err != nil {
		t.Fatal(err)
	}
	cl.host.Reload()
	screen, log = learn()
	if !strings.Contains(screen, "Pin the next key too") {
		t.Errorf("not asked, with room for the key:\n%s\nlog:\n%s", screen, log)
	}
	cl.host.Reload()
	if cl.host.Decide(addr, next.SPKIHash()).Verdict != knownhosts.Pinned {
		t.Errorf("the yes did not pin the next key:\n%s\nlog:\n%s", screen, log)
	}
}

// learnAtTerminal makes one handshake of a client of cl with the options
// given, its prompt a real pseudo-terminal whose user types yes at every
// question, and returns what the terminal showed and what was logged.
func learnAtTerminal(t *testing.T, cl *home, opts ClientOptions, addr string) (screen, log string) {
	t.Helper()
	master, term := openPty(t)
	if err := term.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	pty := readPty(master, "yes\n")
	var buf testlog.Buffer
	opts.Prompt = Terminal{In: term, Out: term}
	opts.Logger = buf.Logger()
	client := cl.client(t, opts)
	if err := learnTrip(t, client, addr); err != nil {
		t.Fatal(err)
	}
	// What the terminal was written reaches the master a moment later,
	// in order: read up to a last line written now (the master is
	// blocking, so a deadline cannot end the read).
	if _, err := term.WriteString(ptyEnd); err != nil {
		t.Fatal(err)
	}
	<-pty.done
	return pty.String(), buf.String()
}

// TestUpdateHostKeysAskOffersAKeyPinnedForOtherPurposes: at the address's
// bound of pins, a next key the address pins already for other purposes
// adds no key to the count, so it is asked about, and the yes pins it for
// the connection's purpose — the rule AddKeyAtMost enforces
// (knownhosts.Store.RoomNow). Before: the question counted the address's
// keys only (KeysPinnedNow), told the user the key was not offered, and
// pinned nothing, where AddKeyAtMost would have pinned it.
func TestUpdateHostKeysAskOffersAKeyPinnedForOtherPurposes(t *testing.T) {
	next := mustGenerate(t, jwk.EC256)
	srv, ts := announcingServer(t, next)
	cl := newHome(t, jwk.EC256)
	srv.authorize(t, "c", cl.id.Key)
	addr := ts.addr()
	pinFor(t, cl, addr, srv.id.Key, "ldap")
	pinFor(t, cl, addr, next, "pool")
	for range MaxAnnounced - 1 {
		if _, err := cl.host.AddKey(addr, mustGenerate(t, jwk.EC256).PublicKey(), knownhosts.AddAnother); err != nil {
			t.Fatal(err)
		}
	}
	if n := cl.host.KeysPinnedAt(addr); n != 1+MaxAnnounced {
		t.Fatalf("%d keys pinned, want %d", n, 1+MaxAnnounced)
	}
	if cl.host.DecidePurpose(addr, "ldap", next.SPKIHash()).Verdict == knownhosts.Pinned {
		t.Fatal("the next key is pinned for ldap before the test")
	}

	screen, log := learnAtTerminal(t, cl, ClientOptions{Purpose: "ldap", UpdateHostKeys: UpdateAsk}, addr)
	if !strings.Contains(screen, "Pin the next key too") || strings.Contains(screen, "not offered") {
		t.Errorf("not asked about a key the address pins already for another purpose:\n%s\nlog:\n%s", screen, log)
	}
	cl.host.Reload()
	if cl.host.DecidePurpose(addr, "ldap", next.SPKIHash()).Verdict != knownhosts.Pinned {
		t.Errorf("the yes did not pin the next key for ldap:\n%s\nlog:\n%s", screen, log)
	}
	if n := cl.host.KeysPinnedAt(addr); n != 1+MaxAnnounced {
		t.Errorf("%d keys pinned after, want %d", n, 1+MaxAnnounced)
	}
}
