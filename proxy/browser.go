package proxy

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// maxBrowserHead bounds the bytes a client-mode proxy reads of a local
// connection's first HTTP/1.x request head before it decides on it. A
// browser's head is a few KiB; one longer is refused, since passing it
// unread would let a page pass anything by making its URL long.
const maxBrowserHead = 64 << 10

// tokenWait is how long a connection's first bytes may be a word alone
// (letters and the like, no space, no end of line) before they are
// passed on as not HTTP: a browser sends its method and the space after
// it at once, and a protocol whose client sends a word and waits for an
// answer must not wait for ever.
const tokenWait = 500 * time.Millisecond

// BrowserRequestError is a local connection a client-mode proxy refused
// because its first bytes are a web browser's request made for a page of
// another site: a name that is not this machine's in Host (DNS
// rebinding: the page's own name, resolved to 127.0.0.1, lets it read
// the answer), an Origin of another site (a WebSocket, a form, a fetch),
// or Sec-Fetch-Site: cross-site on anything but a top-level navigation.
// The proxy answered 403 and sent nothing of it to the target. Reason
// says which.
type BrowserRequestError struct {
	Reason string
}

func (e *BrowserRequestError) Error() string {
	return "proxy: refused a browser's cross-site request: " + e.Reason
}

// browserGate is a local connection of a client-mode proxy, whose first
// bytes are looked at before any is passed on. The proxy presents its
// key for whoever connects to its port, and every web page its user's
// browser opens can connect to a loopback port: a page of another site
// must not act with that key (found by review, 2026-12-05). Bytes that
// are not an HTTP/1.x request line pass at once, unchanged: other
// protocols, TLS, HTTP/2 with prior knowledge (which browsers never
// speak in clear). Only the first request of a connection is looked at:
// a browser does not send one origin's requests on a connection it
// opened for another's.
type browserGate struct {
	net.Conn
	accept  []string // names allowed besides localhost, lower case, no final dot
	buf     []byte   // read while deciding, not yet given to Read
	decided bool
	err     error                // a read error that came while deciding, for after buf
	refused *BrowserRequestError // set when the first request was refused
}

func (g *browserGate) Read(p []byte) (int, error) {
	if !g.decided {
		g.decided = true
		if err := g.decide(); err != nil {
			return 0, err
		}
	}
	if len(g.buf) > 0 {
		n := copy(p, g.buf)
		g.buf = g.buf[n:]
		return n, nil
	}
	if g.err != nil {
		return 0, g.err
	}
	return g.Conn.Read(p)
}

// CloseWrite half-closes the connection under the gate, as pipe does
// with a connection that can (halfCloser).
func (g *browserGate) CloseWrite() error {
	if hc, ok := g.Conn.(halfCloser); ok {
		return hc.CloseWrite()
	}
	return errNoHalfClose
}

// decide reads until the first bytes are known not to be an HTTP/1.x
// request, or its head has come (or the stream ended), and refuses a
// cross-site one: it answers 403 and returns a *BrowserRequestError. A
// read error is returned once the bytes read before it are given back.
func (g *browserGate) decide() error {
	chunk := make([]byte, 4<<10)
	for {
		http, head, done := requestHead(g.buf)
		if done && (!http || head != nil) {
			if http {
				return g.check(head)
			}
			return nil
		}
		if len(g.buf) >= maxBrowserHead {
			return g.refuse(fmt.Sprintf("a request head longer than %d KiB", maxBrowserHead>>10))
		}
		// A word alone so far; not nothing: a protocol whose server
		// speaks first has its client wait, and a browser may open a
		// connection before it has a request to send on it (preconnect).
		word := !http && !done && len(g.buf) > 0
		if word {
			_ = g.Conn.SetReadDeadline(time.Now().Add(tokenWait))
		}
		n, err := g.Conn.Read(chunk[:min(len(chunk), maxBrowserHead-len(g.buf))])
		g.buf = append(g.buf, chunk[:n]...)
		if word {
			_ = g.Conn.SetReadDeadline(time.Time{})
			if isTimeoutErr(err) {
				return nil // not a browser's: passed on as it is
			}
		}
		if err != nil {
			if http, head, _ := requestHead(g.buf); http && head == nil {
				// The stream ended inside a request's head: what came is
				// decided on as it is.
				if err := g.check(g.buf); err != nil {
					return err
				}
			}
			if len(g.buf) == 0 {
				return err
			}
			g.err = err // after the bytes read before it
			return nil
		}
	}
}

// requestHead looks at b, the first bytes of a connection: http says
// that they are, or begin, an HTTP/1.x request line; head is the request
// head up to and without its empty line, once it has come; done says
// that http is known (and, if it is true, the head has come: head is
// not nil).
func requestHead(b []byte) (http bool, head []byte, done bool) {
	// method SP request-target SP HTTP/1.x CRLF: a token, then visible
	// ASCII, then the version. Any other byte says: not HTTP/1.x.
	i := 0
	for i < len(b) && isTokenChar(b[i]) {
		i++
	}
	if i == len(b) {
		return false, nil, false
	}
	if i == 0 || b[i] != ' ' {
		return false, nil, true
	}
	i++
	start := i
	for i < len(b) && b[i] > ' ' && b[i] < 0x7f {
		i++
	}
	if i == len(b) {
		return true, nil, false // a request-target still coming: HTTP so far
	}
	if i == start || b[i] != ' ' {
		return false, nil, true
	}
	rest := b[i+1:]
	for _, v := range []string{"HTTP/1.1\r\n", "HTTP/1.0\r\n", "HTTP/1.1\n", "HTTP/1.0\n"} {
		switch {
		case bytes.HasPrefix(rest, []byte(v)):
			if end := bytes.Index(b, []byte("\r\n\r\n")); end >= 0 {
				return true, b[:end], true
			}
			if end := bytes.Index(b, []byte("\n\n")); end >= 0 {
				return true, b[:end], true
			}
			return true, nil, false
		case len(rest) < len(v) && strings.HasPrefix(v, string(rest)):
			return true, nil, false
		}
	}
	return false, nil, true
}

// isTokenChar is RFC 9110's tchar: what a method is made of.
func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// check decides on a request head (without its empty line).
func (g *browserGate) check(head []byte) error {
	lines := strings.Split(string(head), "\n")
	method, target, _ := strings.Cut(strings.TrimSpace(lines[0]), " ")
	target, _, _ = strings.Cut(target, " ")
	var hosts, origins []string
	var site, mode, dest string
	if !strings.HasPrefix(target, "/") && target != "*" {
		// The absolute form, which a server takes over Host.
		if u, err := url.Parse(target); err == nil && u.Host != "" {
			hosts = append(hosts, u.Host)
		}
	}
	for _, line := range lines[1:] {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "host":
			hosts = append(hosts, value)
		case "origin":
			origins = append(origins, value)
		case "sec-fetch-site":
			site = strings.ToLower(value)
		case "sec-fetch-mode":
			mode = strings.ToLower(value)
		case "sec-fetch-dest":
			dest = strings.ToLower(value)
		}
	}
	for _, h := range hosts {
		if name := hostOf(h); name != "" && net.ParseIP(name) == nil && !g.local(name) {
			return g.refuse(fmt.Sprintf("the request names the host %s, not localhost or an IP address: a web page's own name resolved to this machine (DNS rebinding) would read what the target answers", quoteName(name)))
		}
	}
	for _, o := range origins {
		if !g.sameOrLocal(o, hosts) {
			return g.refuse(fmt.Sprintf("the request comes from %s, a page of another site", quoteName(o)))
		}
	}
	// A link followed from another site is a top-level navigation, as
	// SameSite=Lax cookies allow: the page that had the link reads
	// nothing of the answer.
	navigation := (method == "GET" || method == "HEAD") && mode == "navigate" && dest == "document"
	if site == "cross-site" && !navigation {
		return g.refuse("the browser says Sec-Fetch-Site: cross-site (a page of another site made it)")
	}
	return nil
}

// sameOrLocal says whether origin, an Origin header, is the request's
// own (its host:port is the Host), or a page of this machine: localhost,
// a loopback address, or a name allowed.
func (g *browserGate) sameOrLocal(origin string, hosts []string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false // "null" (a sandboxed page, a file), or nothing a browser sends
	}
	for _, h := range hosts {
		if strings.EqualFold(u.Host, h) {
			return true
		}
	}
	name := hostOf(u.Host)
	if ip := net.ParseIP(name); ip != nil {
		return ip.IsLoopback()
	}
	return g.local(name)
}

// local says whether name (lower case, no final dot) is localhost — a
// name browsers resolve to the loopback interface themselves, never
// through DNS — or a name allowed.
func (g *browserGate) local(name string) bool {
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	for _, a := range g.accept {
		if name == a {
			return true
		}
	}
	return false
}

// hostOf is the host of a Host header's value (host, host:port,
// [v6]:port), in lower case without a final dot.
func hostOf(v string) string {
	host := v
	if h, _, err := net.SplitHostPort(v); err == nil {
		host = h
	}
	host = strings.TrimPrefix(strings.TrimSuffix(host, "]"), "[")
	return strings.TrimSuffix(strings.ToLower(host), ".")
}

// quoteName quotes what a request said, for the log: it is the
// browser's, or anyone's.
func quoteName(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	q := fmt.Sprintf("%q", s)
	return q[1 : len(q)-1]
}

// refuse answers the request 403, saying why, and returns the error.
func (g *browserGate) refuse(reason string) error {
	g.refused = &BrowserRequestError{Reason: reason}
	body := g.refused.Error() + "\n"
	_, _ = fmt.Fprintf(g.Conn, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	g.buf = nil
	return g.refused
}
