package tlsbridge

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
)

// TestDialBudgetStopsWhileAsking: the time a person spends on the
// first-use question is not DialContext's to count. Its bound was a
// net.Dialer's Timeout, which crypto/tls applies to the whole handshake,
// the question (asked from VerifyConnection) included: an answer given
// after it had run came too late, the handshake already given up — in
// trust-host, which gives a person two minutes, after 30 seconds. Here
// the person takes three budgets to answer, and the connection is made.
func TestDialBudgetStopsWhileAsking(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	_, ts := serverFor(t, cli)
	asked := false
	c := cli.client(t, ClientOptions{Policy: Ask, HandshakeTimeout: time.Second, Prompt: PromptFunc(func(UnknownHost) (Answer, error) {
		asked = true
		time.Sleep(3 * time.Second) // a person comparing the fingerprint
		return Once, nil
	})})
	conn, err := c.DialContext(context.Background(), "tcp", ts.addr())
	if err != nil {
		t.Fatalf("DialContext, answered after three times its budget: %v", err)
	}
	conn.Close()
	if !asked {
		t.Fatal("the prompt was not asked")
	}
}

// TestDialBudgetSilentServer: a port that accepts and never answers ends
// the dial once the budget (ClientOptions.HandshakeTimeout) has run, with
// a *HandshakeTimeoutError that says so — the budget it had, not the
// caller's longer context's, and that the connection was made.
func TestDialBudgetSilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testnet.ServeEach(t, ln, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	cli := newHome(t, jwk.EC256)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err = cli.client(t, ClientOptions{Policy: Strict, HandshakeTimeout: 200 * time.Millisecond}).DialContext(ctx, "tcp", ln.Addr().String())
	var te *HandshakeTimeoutError
	if !errors.As(err, &te) || te.Addr != ln.Addr().String() || te.Within != 200*time.Millisecond || !te.Connected {
		t.Fatalf("DialContext to a silent port: %v (%#v), want a *HandshakeTimeoutError for %s within 200ms, connected", err, te, ln.Addr())
	}
	if want := "tlsbridge: no TLS handshake with " + ln.Addr().String() + " within 200ms"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if ctx.Err() != nil {
		t.Fatal("the caller's context ended first")
	}
}

// TestDialBudgetSpentAsksNobody: a question that comes once the budget
// has run is not put: the connection is being closed, and a yes would
// pin a key for a dial that fails (found by review).
func TestDialBudgetSpentAsksNobody(t *testing.T) {
	ctx, stop := withDialBudget(context.Background(), "db:443", time.Nanosecond)
	defer stop()
	<-ctx.Done()
	err := pausingDial(ctx, func() error {
		t.Error("asked after the budget ran out")
		return nil
	})
	var te *HandshakeTimeoutError
	if !errors.As(err, &te) || te.Addr != "db:443" {
		t.Fatalf("pausingDial once the budget ran out: %v, want a *HandshakeTimeoutError", err)
	}
}

// TestDialBudgetNoConnection: when the TCP connection itself is not made
// within the budget, the error says so (Connected false) — a wrong
// address or a host down, not a server that is not TLS. A listener whose
// backlog is full stands for a host that drops the SYN: the kernel on
// 127.0.0.1 leaves further connections unanswered.
func TestDialBudgetNoConnection(t *testing.T) {
	addr := testnet.FullBacklog(t)
	cli := newHome(t, jwk.EC256)
	_, err := cli.client(t, ClientOptions{Policy: Strict, HandshakeTimeout: 300 * time.Millisecond}).DialContext(context.Background(), "tcp", addr)
	var te *HandshakeTimeoutError
	if !errors.As(err, &te) || te.Connected || te.Within != 300*time.Millisecond {
		t.Fatalf("DialContext to a port that does not accept: %v (%#v), want a *HandshakeTimeoutError, not connected", err, te)
	}
	if want := "tlsbridge: could not connect to " + addr + " within 300ms"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

// TestHandshakeTimeoutNegative: a negative budget is a caller's mistake,
// refused when the client is made rather than failing every dial at once.
func TestHandshakeTimeoutNegative(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	if _, err := NewClient(cli.id, ClientOptions{Hosts: cli.host, HandshakeTimeout: -time.Second}); err == nil || !strings.Contains(err.Error(), "HandshakeTimeout is negative") {
		t.Fatalf("NewClient with a negative HandshakeTimeout: %v", err)
	}
}
