package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestClientAnswersARefusedLaterRequestInItsTurn: a client that sends
// its requests one after the other without waiting for the answers
// (HTTP/1.1 pipelining) reads them in the order it sent them, so a 403
// for its second request must follow the whole answer to its first.
// Before, the gate wrote the 403 to the local side the moment it
// refused the second head, while the target was still answering the
// first: the client took the 403 for the first request's answer, or
// read it in the middle of that answer's body. Now a refused later
// request ends what goes to the target there (half-closed, as a client
// that sends no more), the target's answers to the requests before it
// pass whole, and the 403 comes last, before the close.
func TestClientAnswersARefusedLaterRequestInItsTurn(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // the 403 is decided long before this answer
		_, _ = io.WriteString(w, "first answer, whole\n")
	}))
	t.Cleanup(slow.Close)
	addr := clientProxyTo(t, strings.TrimPrefix(slow.URL, "http://"), ClientOptions{})

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
	const ok1 = "GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n"
	const evil = "GET /steal HTTP/1.1\r\nHost: localhost\r\nOrigin: https://attacker.example\r\n\r\n"
	if _, err := io.WriteString(conn, ok1+evil); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	first, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the first request's answer: %v", err)
	}
	body, err := io.ReadAll(first.Body)
	if first.StatusCode != http.StatusOK || string(body) != "first answer, whole\n" || err != nil {
		t.Fatalf("the first request was answered %d %q (%v), want 200 and its body: the refusal of the second came first", first.StatusCode, body, err)
	}
	second, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the second request's answer: %v", err)
	}
	body, _ = io.ReadAll(second.Body)
	if second.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "https://attacker.example") {
		t.Fatalf("the second request was answered %d %q, want 403 naming the page's origin", second.StatusCode, body)
	}
	if rest, err := io.ReadAll(br); len(rest) > 0 {
		t.Fatalf("after the 403: %q (%v), want the connection closed", rest, err)
	}
}
