package proxy

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestHTTPIdleConnectionClosed: in HTTP mode a connection with no
// request in flight is closed once IdleTimeout has passed with nothing
// from the client — HTTP/1.1 a keep-alive connection after its answer,
// HTTP/2 one with no stream open, with a GOAWAY first — and the proxy's
// handler for it ends ("closed"). It was held for ever. HandshakeTimeout,
// which bounds a request's head, is longer than the test's bound on a
// hang: only the idle timeout can close these connections in time.
func TestHTTPIdleConnectionClosed(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello")
	}))
	defer target.Close()
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	_, addr, logs, _ := startServer(t, srv, strings.TrimPrefix(target.URL, "http://"),
		ServerOptions{HTTP: true, IdleTimeout: 300 * time.Millisecond, HandshakeTimeout: time.Minute})
	alice.pin(t, addr, srv)
	closed := func(t *testing.T, conn *tls.Conn) {
		t.Helper()
		local := regexp.QuoteMeta(conn.LocalAddr().String())
		logs.waitFor(t, `level=INFO msg=closed remote=`+local+` fingerprint=\S+ name=alice bytes_in=\d+ bytes_out=\d+ duration=`)
	}

	t.Run("HTTP/1.1", func(t *testing.T) {
		conn := dialTLS(t, alice, addr) // 30 s: a bound on a hang
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: app\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil || string(body) != "hello" || resp.Close {
			t.Fatalf("the answer: %q, %v, close %v; want hello on a connection kept alive", body, err, resp.Close)
		}
		// Nothing more is sent: the proxy closes the connection.
		if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
			t.Fatalf("an idle keep-alive connection: %q, %v; want it closed by the proxy (EOF)", rest, err)
		}
		closed(t, conn)
	})

	t.Run("HTTP/2", func(t *testing.T) {
		conn, settings, rest := h2Open(t, alice, addr)
		if got := settings[h2SettingMaxConcurrentStreams]; got != maxHTTP2Streams {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want %d: %v", got, maxHTTP2Streams, settings)
		}
		// No stream is opened: the proxy sends GOAWAY, then closes.
		var goaway bool
		for {
			typ, _, err := h2ReadFrame(rest)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("an idle HTTP/2 connection: %v; want GOAWAY, then closed by the proxy (EOF)", err)
			}
			goaway = goaway || typ == 7
		}
		if !goaway {
			t.Error("an idle HTTP/2 connection was closed without a GOAWAY")
		}
		closed(t, conn)
	})
}

// TestHTTP2StreamsAdvertised: the SETTINGS frame the proxy opens an
// HTTP/2 connection with caps the client's concurrent streams at
// maxHTTP2Streams (Go's server defaults to 250), with the default
// options.
func TestHTTP2StreamsAdvertised(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	_, addr, _, _ := startServer(t, srv, "127.0.0.1:9", ServerOptions{HTTP: true})
	alice.pin(t, addr, srv)
	_, settings, _ := h2Open(t, alice, addr)
	if got := settings[h2SettingMaxConcurrentStreams]; got != 100 {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want 100: %v", got, settings)
	}
}

// h2SettingMaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS (RFC
// 9113, section 6.5.2).
const h2SettingMaxConcurrentStreams = 3

// h2Open connects as alice with ALPN h2, sends the client preface and an
// empty SETTINGS frame, and reads the server's first frame, which RFC
// 9113 makes its SETTINGS: it returns the connection, those settings by
// identifier, and the reader of the frames that follow.
func h2Open(t *testing.T, alice *side, addr string) (*tls.Conn, map[uint16]uint32, *bufio.Reader) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, h2Config(t, alice, addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a bound on a hang
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN: %q, want h2", p)
	}
	if _, err := io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	typ, p, err := h2ReadFrame(br)
	if err != nil || typ != 4 || len(p)%6 != 0 {
		t.Fatalf("the server's first frame: type %d, %d bytes, %v; want SETTINGS", typ, len(p), err)
	}
	settings := map[uint16]uint32{}
	for ; len(p) > 0; p = p[6:] {
		settings[binary.BigEndian.Uint16(p)] = binary.BigEndian.Uint32(p[2:])
	}
	return conn, settings, br
}

// h2Frame is an HTTP/2 frame of type typ, with flags, on stream, carrying
// payload (RFC 9113, section 4.1).
func h2Frame(typ, flags byte, stream uint32, payload []byte) []byte {
	f := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(f[5:], stream)
	return append(f, payload...)
}

// h2Literals is a header block of fields as HPACK literals without
// indexing, new names, no Huffman coding: every name and value must be
// shorter than 127 bytes.
func h2Literals(fields [][2]string) []byte {
	var block []byte
	for _, hf := range fields {
		block = append(block, 0, byte(len(hf[0])))
		block = append(block, hf[0]...)
		block = append(block, byte(len(hf[1])))
		block = append(block, hf[1]...)
	}
	return block
}

// h2ReadFrame reads one HTTP/2 frame: its type and payload; io.EOF at
// the end of the connection between frames.
func h2ReadFrame(br *bufio.Reader) (typ byte, payload []byte, err error) {
	var h [9]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, nil, err
	}
	payload = make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2]))
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	return h[3], payload, nil
}
