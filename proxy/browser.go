package proxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxBrowserHead bounds the bytes a client-mode proxy reads of a local
// connection's first HTTP/1.x request head before it decides on it. A
// browser's head is a few KiB; one longer is refused, since passing it
// unread would let a page pass anything by making its URL long.
const maxBrowserHead = 64 << 10

// maxMethod bounds what is taken for a request's method: a longer word
// (a blob of hex or base64 sent at once) is another protocol's, passed
// as it is rather than refused as a request head too long (found by
// review, 2026-12-05). No browser lets a page of another site send a
// method of its own without a preflight the gate refuses.
const maxMethod = 1 << 10

// tokenWait is how long a connection's first bytes may be a word alone
// (letters and the like, no space, no end of line) before they are
// passed on as not HTTP: a browser sends its method and the space after
// it at once, and a protocol whose client sends a word and waits for an
// answer must not wait for ever.
const tokenWait = 500 * time.Millisecond

// msgBrowserRefused is the log line of a request the gate refused.
const msgBrowserRefused = "refused a browser's cross-site request"

// BrowserRequestError is a local connection a client-mode proxy refused
// because one of its requests is a web browser's made for a page of
// another site: a name that is not this machine's in Host (DNS
// rebinding: the page's own name, resolved to 127.0.0.1, lets it read
// the answer), an Origin of another site (a WebSocket, a form, a fetch),
// or Sec-Fetch-Site: cross-site on anything but a top-level navigation;
// or because its framing could be read otherwise by the target (a
// request the gate would take for a body). The proxy answered a refused
// head 403, sent nothing of it to the target, and closed the
// connection. Reason says which.
type BrowserRequestError struct {
	Reason string
}

func (e *BrowserRequestError) Error() string {
	return "proxy: refused a browser's cross-site request: " + e.Reason
}

// browserGate is a local connection of a client-mode proxy, whose
// HTTP/1.x requests are each looked at before any byte of it is passed
// on. The proxy presents its key for whoever connects to its port, and
// every web page its user's browser opens can connect to a loopback
// port: a page of another site must not act with that key (found by
// review, 2026-12-05).
//
// Bytes that are not an HTTP/1.x request line at a connection's start
// pass at once, unchanged, and so does the rest of that connection:
// other protocols, TLS, HTTP/2 with prior knowledge (which browsers
// never speak in clear). A connection that began with a request is
// followed request by request, as the target reads it (RFC 9112, section
// 6): each head is checked, each body passed by its Content-Length or
// its chunks, and the next head looked for after it, so that a request
// a page sends on a connection another page's request opened (a browser
// whose pool of connections is not split by site) is checked as the
// first was (found by review, 2026-12-05). What the two could read
// differently — framing headers that are folded, doubled with other
// values, both Content-Length and Transfer-Encoding, a coding other than
// chunked, a malformed chunk, bytes that are no request where one must
// come — is refused: a browser sends none of them, and a target that
// read them otherwise than the gate would see a request the gate had
// taken for a body. After a request asking to switch protocols
// (Upgrade, CONNECT) that the target grants, the rest passes as it is:
// it is that protocol's. Requests for a forward proxy (CONNECT, an
// absolute URL) are not checked: a browser sends them only to a proxy it
// was told to use.
type browserGate struct {
	net.Conn
	accept []string // names allowed besides localhost, lower case, no final dot

	state    gateState
	requests int    // heads passed so far
	buf      []byte // read and not yet given to Read; its first ready bytes are decided
	ready    int
	parsed   int                  // bytes of buf the last look at a head not yet whole saw (parseHead)
	seen     int                  // bytes of buf looked at since for what could change its verdict
	scan     int                  // once its request line has ended: where the first line not yet ended begins
	left     int64                // bytes of the body (gateBody) or the chunk (gateChunkData) still to pass
	after    gateState            // the state once they have passed
	end      gateState            // the state once the request has passed: gateHead, or gateOpaque after an upgrade
	err      error                // a read error that came while deciding, for after buf
	refused  *BrowserRequestError // set when a request was refused

	// endedByRefusal: a later request was refused, and Read ends the
	// stream (io.EOF) where it would return refused.
	endedByRefusal bool

	mu       sync.Mutex
	deadline time.Time // the read deadline the caller (pipe) set, which the wait for a word must not lose
	// late is the 403 of a refused later request, written once the
	// target has ended its answers (CloseWrite); localClosed says that
	// it has, and nothing more is written.
	late        []byte
	localClosed bool

	// The target's answer to a request that asks to switch protocols,
	// seen as it is written to the local side (Write).
	answer    atomic.Int32 // answerNone, answerAwaited, answerSwitched, answerRefused
	connectRq bool         // the request was CONNECT: a 2xx switches
	status    []byte       // the answer's first bytes so far (Write's)
}

// The states of browserGate.answer.
const (
	answerNone     int32 = iota
	answerAwaited        // a request to switch protocols has passed
	answerSwitched       // the target answered 101 (2xx to CONNECT)
	answerRefused        // it answered otherwise: HTTP goes on
)

// Write writes the target's bytes to the local side; after a request to
// switch protocols, it looks at the answer's status line first.
func (g *browserGate) Write(p []byte) (int, error) {
	if g.answer.Load() == answerAwaited {
		g.sawAnswer(p)
	}
	return g.Conn.Write(p)
}

// maxInterim bounds what sawAnswer keeps of the target's answer while it
// looks past interim answers (100 Continue, 103 Early Hints) for the
// final one: a target that sends more is taken to have refused.
const maxInterim = 8 << 10

// sawAnswer reads the status of the target's answer to a request to
// switch protocols from its first bytes, past interim answers (1xx but
// 101: a request with Expect: 100-continue is answered 100 first).
func (g *browserGate) sawAnswer(p []byte) {
	const line = len("HTTP/1.1 101")
	g.status = append(g.status, p[:min(len(p), maxInterim-len(g.status))]...)
	for {
		if len(g.status) < line {
			if len(g.status) >= maxInterim {
				g.answered(false)
			}
			return
		}
		code := string(g.status[9:line])
		if !bytes.HasPrefix(g.status, []byte("HTTP/1.")) || code[0] != '1' || code == "101" {
			g.answered(bytes.HasPrefix(g.status, []byte("HTTP/1.")) && (code == "101" || g.connectRq && code[0] == '2'))
			return
		}
		n, ok, _ := linesEnd(g.status, 0)
		if !ok {
			if len(g.status) >= maxInterim {
				g.answered(false)
			}
			return
		}
		g.status = g.status[n:] // an interim answer, whole: the final one follows
	}
}

// answered sets what the target answered to a request to switch
// protocols.
func (g *browserGate) answered(switched bool) {
	g.status = g.status[:0]
	if switched {
		g.answer.Store(answerSwitched)
	} else {
		g.answer.Store(answerRefused)
	}
}

// SetReadDeadline sets the connection's read deadline, and remembers it
// for after the gate's own wait for a word alone (tokenWait): pipe
// bounds each read once the other side has half-closed, and a client
// that sent a word and then nothing would otherwise hold the connection
// for ever (found by review, 2026-12-05).
func (g *browserGate) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	g.deadline = t
	g.mu.Unlock()
	return g.Conn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines, remembering the read one as
// SetReadDeadline does.
func (g *browserGate) SetDeadline(t time.Time) error {
	g.mu.Lock()
	g.deadline = t
	g.mu.Unlock()
	return g.Conn.SetDeadline(t)
}

// readDeadline is the read deadline the caller set.
func (g *browserGate) readDeadline() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.deadline
}

// gateState is what a browserGate expects next of the stream.
type gateState int

const (
	gateHead      gateState = iota // a request's head (or, at the start, something else)
	gateBody                       // left more bytes of a body of known length
	gateChunkSize                  // a chunk's size line
	gateChunkData                  // left more bytes of a chunk
	gateChunkEnd                   // the CRLF after a chunk
	gateTrailer                    // the trailer section after the last chunk
	gateUpgrade                    // after a request to switch protocols: the target's answer decides
	gateOpaque                     // not HTTP/1.x, or another protocol: passed as it is
)

func (g *browserGate) Read(p []byte) (int, error) {
	for g.ready == 0 {
		if g.refused != nil {
			return 0, g.readError()
		}
		switch {
		case g.state == gateOpaque || (g.state == gateBody || g.state == gateChunkData) && len(g.buf) > 0:
			g.passBuffered()
			if g.ready > 0 {
				continue
			}
			if g.err != nil {
				return 0, g.err
			}
			return g.Conn.Read(p) // gateOpaque, nothing buffered
		case g.state == gateBody || g.state == gateChunkData:
			if g.err != nil {
				return 0, g.err
			}
			// A body's bytes go from the socket to p as they are.
			n, err := g.Conn.Read(p[:min(int64(len(p)), g.left)])
			g.left -= int64(n)
			if g.left == 0 {
				g.state = g.after
			}
			return n, err
		}
		if err := g.step(); err != nil {
			return 0, err
		}
	}
	n := copy(p, g.buf[:g.ready])
	g.buf = g.buf[n:]
	g.ready -= n
	return n, nil
}

// passBuffered decides on the bytes buffered in a state that passes
// them: all of them (gateOpaque) or the body's part of them.
func (g *browserGate) passBuffered() {
	if g.state == gateOpaque {
		g.ready = len(g.buf)
		return
	}
	n := min(int64(len(g.buf)), g.left)
	g.ready, g.left = int(n), g.left-n
	if g.left == 0 {
		g.state = g.after
	}
}

// CloseWrite half-closes the connection under the gate, as pipe does
// with a connection that can (halfCloser) once the target has ended its
// answers: a refused later request's 403 goes first (refuse).
func (g *browserGate) CloseWrite() error {
	g.mu.Lock()
	late := g.late
	g.late, g.localClosed = nil, true
	g.mu.Unlock()
	if late != nil {
		if _, err := g.Conn.Write(late); err != nil {
			return err
		}
	}
	if hc, ok := g.Conn.(halfCloser); ok {
		return hc.CloseWrite()
	}
	return errNoHalfClose
}

// step decides on the next bytes in a state that parses them (a head, a
// chunk's size line or end, a trailer), reading more when what is
// buffered does not yet tell; it returns with bytes decided (ready), a
// new state, or an error (a refusal, or a read error with nothing left
// to pass).
func (g *browserGate) step() error {
	switch g.state {
	case gateHead:
		return g.stepHead()
	case gateChunkSize:
		line, ok := lineOf(g.buf)
		if !ok {
			return g.fill(maxChunkLine, "a chunk size line longer than 4 KiB")
		}
		size, ok := chunkSize(line)
		if !ok {
			return g.refuse(fmt.Sprintf("a malformed chunk size line: %s", quoteName(string(line))), false)
		}
		g.ready = len(line)
		g.state, g.left, g.after = gateChunkData, size, gateChunkEnd
		if size == 0 {
			g.state = gateTrailer
		}
		return nil
	case gateChunkEnd:
		if len(g.buf) < 2 {
			return g.fill(2, "")
		}
		if string(g.buf[:2]) != "\r\n" {
			return g.refuse("a chunk not followed by CRLF", false)
		}
		g.ready, g.state = 2, gateChunkSize
		return nil
	case gateUpgrade:
		if len(g.buf) == 0 {
			return g.fill(maxBrowserHead, "")
		}
		// The client speaks again, so the target has answered: a
		// client waits for the answer to a request to switch protocols
		// before it sends more (a browser never sends before it has
		// read the whole answer). Refused, the connection goes on in
		// HTTP/1.x and is followed as before: a WebSocket a target did
		// not switch for (404, kept alive) must not leave the rest of
		// the connection unchecked (found by review, 2026-12-05).
		g.state = gateOpaque
		if g.answer.Swap(answerNone) == answerRefused {
			g.state = gateHead
		}
		return nil
	case gateTrailer:
		// Fields until an empty line, as a head's are: not looked at, as
		// a server takes none of them for Host or Origin.
		n, ok, from := linesEnd(g.buf, g.scan)
		if ok {
			g.ready, g.state, g.scan = n, g.end, 0
			return nil
		}
		g.scan = from
		return g.fill(maxBrowserHead, fmt.Sprintf("a trailer section longer than %d KiB", maxBrowserHead>>10))
	}
	panic("proxy: browserGate.step in a state that passes bytes")
}

// maxChunkLine bounds a chunk's size line, as net/http's reader does.
const maxChunkLine = 4 << 10

// fill reads more into buf, at most up to limit bytes buffered (beyond
// which the stream is refused for tooLong). At the end of the stream,
// what is buffered passes as it is, then the error: the target reads as
// much, and no more, and fails where it ends.
func (g *browserGate) fill(limit int, tooLong string) error {
	if g.err != nil {
		g.state = gateOpaque
		return nil
	}
	if len(g.buf) >= limit {
		return g.refuse(tooLong, g.state == gateHead)
	}
	g.buf = slices.Grow(g.buf, min(4<<10, limit-len(g.buf)))
	n, err := g.Conn.Read(g.buf[len(g.buf):min(cap(g.buf), limit)])
	g.buf = g.buf[:len(g.buf)+n]
	if err != nil {
		g.err = err
	}
	return nil
}

// stepHead decides on a request head: at a connection's start, first
// whether the stream is HTTP/1.x at all.
func (g *browserGate) stepHead() error {
	if g.requests > 0 {
		// Empty lines before a request line are allowed (RFC 9112,
		// section 2.2) and pass.
		n := 0
		for n < len(g.buf) && (g.buf[n] == '\r' || g.buf[n] == '\n') {
			n++
		}
		if n > 0 {
			g.ready = n
			return nil
		}
	}
	http, head, next, done := g.parseHead()
	switch {
	case done && !http && g.requests == 0:
		g.state = gateOpaque
		return nil
	case done && !http:
		return g.refuse("bytes that are not an HTTP/1.x request where the next request must begin", true)
	case done:
		f := readFields(head)
		if err := g.check(f); err != nil {
			return err
		}
		if err := g.frame(f); err != nil {
			return err
		}
		g.ready = next
		g.requests++
		return nil
	}
	if g.err != nil {
		if http && len(g.buf) > 0 {
			// The stream ended inside a request's head: what came is
			// decided on as it is.
			if err := g.check(readFields(g.buf)); err != nil {
				return err
			}
		}
		g.state = gateOpaque
		return nil
	}
	if len(g.buf) >= maxBrowserHead {
		return g.refuse(fmt.Sprintf("a request head longer than %d KiB", maxBrowserHead>>10), true)
	}
	// A word alone so far; not nothing: a protocol whose server speaks
	// first has its client wait, and a browser may open a connection
	// before it has a request to send on it (preconnect).
	if word := g.requests == 0 && !http && len(g.buf) > 0; word {
		return g.fillWord()
	}
	return g.fill(maxBrowserHead, "")
}

// fillWord reads more after a word alone: for tokenWait at most (or
// until the caller's own deadline, if it is sooner), after which the
// stream is passed on as it is.
func (g *browserGate) fillWord() error {
	wait, caller := time.Now().Add(tokenWait), g.readDeadline()
	ours := caller.IsZero() || wait.Before(caller)
	if ours {
		_ = g.Conn.SetReadDeadline(wait)
	}
	err := g.fill(maxBrowserHead, "")
	if ours {
		_ = g.Conn.SetReadDeadline(g.readDeadline())
		if isTimeoutErr(g.err) {
			g.err = nil
			g.state = gateOpaque // not a browser's: passed on as it is
		}
	}
	return err
}

// parseHead is requestHead(g.buf), without looking again at what it
// looked at before: a head sent a byte at a time would otherwise cost
// the square of its length (found by review, 2026-12-05). Once the
// request line has ended, only the lines after the last one seen whole
// are looked at; before, the request line is looked at again only when
// a byte came that can change its verdict (a space, a control, not
// ASCII), or a KiB more did, or while it is still short.
func (g *browserGate) parseHead() (http bool, head []byte, next int, done bool) {
	if g.scan > 0 {
		n, ok, from := linesEnd(g.buf, g.scan)
		if !ok {
			g.scan = from
			return true, nil, 0, false
		}
		g.scan, g.parsed = 0, 0
		return true, headOf(g.buf[:n]), n, true
	}
	if g.parsed > 0 && len(g.buf) > 1<<10 && len(g.buf)-g.parsed < 1<<10 {
		quiet := true
		for _, c := range g.buf[g.seen:] {
			quiet = quiet && c > ' ' && c < 0x7f
		}
		g.seen = len(g.buf)
		if quiet {
			return true, nil, 0, false // a request line still coming, and nothing in it that could change that
		}
	}
	http, head, next, done = requestHead(g.buf)
	g.parsed = 0
	if http && !done {
		g.parsed, g.seen = len(g.buf), len(g.buf)
		if i := bytes.IndexByte(g.buf, '\n'); i >= 0 {
			g.scan = i + 1
		}
	}
	return http, head, next, done
}

// frame reads how the target will find the end of the request whose
// head's fields are f (RFC 9112, section 6.3), and sets the state that
// follows it; framing that two readers could take differently is
// refused.
func (g *browserGate) frame(f *requestFields) error {
	if f.bad != "" {
		return g.refuse(f.bad, true)
	}
	g.end = gateHead
	if f.upgrade {
		// Before the head passes on: the answer cannot come first.
		g.end, g.connectRq = gateUpgrade, f.method == "CONNECT"
		g.answer.Store(answerAwaited)
	}
	g.state, g.after = g.end, g.end
	switch {
	case f.coding != "" && f.lengths > 0:
		return g.refuse("both Content-Length and Transfer-Encoding", true)
	case f.coding != "":
		if !strings.EqualFold(strings.Trim(f.coding, " \t"), "chunked") {
			return g.refuse(fmt.Sprintf("a Transfer-Encoding other than chunked: %s", quoteName(f.coding)), true)
		}
		g.state = gateChunkSize
	case f.lengths > 0:
		n, err := strconv.ParseInt(f.length, 10, 64)
		if err != nil || n < 0 || strings.TrimLeft(f.length, "0123456789") != "" {
			return g.refuse(fmt.Sprintf("a malformed Content-Length: %s", quoteName(f.length)), true)
		}
		if n > 0 {
			g.state, g.left = gateBody, n
		}
	}
	return nil
}

// requestFields is what the gate reads of a request head, in one pass
// over its lines: what check decides on (who made the request) and what
// frame does (where its body ends). One reading serves both, so that the
// two never take a head's lines differently.
type requestFields struct {
	method, target string
	hosts, origins []string // Host and Origin headers' values
	site, mode     string   // Sec-Fetch-Site, Sec-Fetch-Mode (lower case)
	dest           string   // Sec-Fetch-Dest (lower case)

	lengths int    // Content-Length headers
	length  string // their value
	coding  string // the Transfer-Encoding headers' values, joined
	upgrade bool   // Upgrade, or CONNECT: another protocol may follow
	// bad says why the framing cannot be read as one reader would (the
	// first such line), or is "".
	bad string
}

// readFields reads head (without its empty line, or what came of it)
// line by line.
func readFields(head []byte) *requestFields {
	f := &requestFields{}
	lines := strings.Split(string(head), "\n")
	f.method, f.target, _ = strings.Cut(strings.TrimSpace(lines[0]), " ")
	f.target, _, _ = strings.Cut(f.target, " ")
	f.upgrade = f.method == "CONNECT"
	for _, line := range lines[1:] {
		line = strings.TrimSuffix(line, "\r")
		name, value, ok := strings.Cut(line, ":")
		switch {
		case f.bad != "":
		case line != "" && (line[0] == ' ' || line[0] == '\t'):
			f.bad = "a folded header line (obs-fold)"
		case !ok || name == "" || strings.IndexFunc(name, func(r rune) bool { return r > 0x7f || !isTokenChar(byte(r)) }) >= 0:
			f.bad = "a malformed header line: " + quoteName(line)
		default:
			f.frameField(strings.ToLower(name), strings.Trim(value, " \t"))
		}
		if !ok {
			continue
		}
		// Who made the request: read from every line that has a colon,
		// a malformed one too (which frame refuses after check).
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "host":
			f.hosts = append(f.hosts, value)
		case "origin":
			f.origins = append(f.origins, value)
		case "sec-fetch-site":
			f.site = strings.ToLower(value)
		case "sec-fetch-mode":
			f.mode = strings.ToLower(value)
		case "sec-fetch-dest":
			f.dest = strings.ToLower(value)
		}
	}
	return f
}

// frameField reads a well-formed header line's part in the framing: its
// name in lower case, its value trimmed.
func (f *requestFields) frameField(name, value string) {
	switch name {
	case "content-length":
		if f.lengths++; f.lengths > 1 && value != f.length {
			f.bad = "two Content-Length headers that differ"
		}
		f.length = value
	case "transfer-encoding":
		if f.coding != "" {
			f.coding += ","
		}
		f.coding += value
	case "upgrade":
		f.upgrade = f.upgrade || value != ""
	}
}

// lineOf is b's first line with its LF, if it has come.
func lineOf(b []byte) ([]byte, bool) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i+1], true
	}
	return nil, false
}

// chunkSize reads a chunk's size line (with its line end), as net/http
// does: hexadecimal digits, then perhaps spaces or tabs and an
// extension after ';'.
func chunkSize(line []byte) (int64, bool) {
	s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	s, _, _ = strings.Cut(s, ";")
	s = strings.TrimRight(s, " \t")
	if s == "" || len(s) > 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 16, 63)
	if err != nil || strings.ContainsAny(s, "+-xX_") {
		return 0, false
	}
	return int64(n), true
}

// linesEnd is the length of the lines of b up to and with the first
// empty one ("\n" or "\r\n") at or after from (a line's start), once
// it has come: a head's or a trailer section's. Until then, from is
// where the line not yet ended begins, to look on from.
func linesEnd(b []byte, from int) (n int, ok bool, next int) {
	for at := from; ; {
		line, ok := lineOf(b[at:])
		if !ok {
			return 0, false, at
		}
		at += len(line)
		if len(line) == 1 || string(line) == "\r\n" {
			return at, true, at
		}
	}
}

// headOf is a head without its empty line and the line end before it.
func headOf(b []byte) []byte {
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	return bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
}

// requestHead looks at b, the bytes where a request may begin: http says
// that they are, or begin, an HTTP/1.x request line; head is the request
// head up to and without its empty line, once it has come, and next the
// length of the head with that line; done says that http is known (and,
// if it is true, the head has come: head is not nil).
func requestHead(b []byte) (http bool, head []byte, next int, done bool) {
	// method SP request-target SP HTTP/1.x CRLF: a token, then visible
	// ASCII, then the version. Any other byte says: not HTTP/1.x.
	i := 0
	for i < len(b) && i <= maxMethod && isTokenChar(b[i]) {
		i++
	}
	if i > maxMethod {
		return false, nil, 0, true // a word no method is this long: another protocol's
	}
	if i == len(b) {
		return false, nil, 0, false
	}
	if i == 0 || b[i] != ' ' {
		return false, nil, 0, true
	}
	i++
	start := i
	for i < len(b) && b[i] > ' ' && b[i] < 0x7f {
		i++
	}
	if i == len(b) {
		return true, nil, 0, false // a request-target still coming: HTTP so far
	}
	if i == start || b[i] != ' ' {
		return false, nil, 0, true
	}
	rest := b[i+1:]
	for _, v := range []string{"HTTP/1.1\r\n", "HTTP/1.0\r\n", "HTTP/1.1\n", "HTTP/1.0\n"} {
		switch {
		case bytes.HasPrefix(rest, []byte(v)):
			// The head ends at its first empty line ("" or "\r"), as a
			// server reads it: not at the first CRLF CRLF further on.
			if n, ok, _ := linesEnd(b, 0); ok {
				return true, headOf(b[:n]), n, true
			}
			return true, nil, 0, false
		case len(rest) < len(v) && strings.HasPrefix(v, string(rest)):
			return true, nil, 0, false
		}
	}
	return false, nil, 0, true
}

// isTokenChar is RFC 9110's tchar: what a method is made of.
func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// check decides on a request head's fields: who made the request.
func (g *browserGate) check(f *requestFields) error {
	if forwardProxyForm(f.method, f.target) {
		// A request for a forward proxy (the target may be one): a
		// browser sends these only to a proxy it was told to use, never
		// for a page to a server, and what they name is where the proxy
		// goes, not this machine.
		return nil
	}
	for _, h := range f.hosts {
		if name := hostOf(h); name != "" && !g.local(name) {
			return g.refuse(fmt.Sprintf("the request names the host %s, not localhost or a loopback address: a web page's own name resolved to this machine (DNS rebinding), or an address a browser marks no request to as cross-site, would let a page of another site act through the proxy", quoteName(name)), true)
		}
	}
	for _, o := range f.origins {
		if !g.sameOrLocal(o, f.hosts) {
			return g.refuse(fmt.Sprintf("the request comes from %s, a page of another site", quoteName(o)), true)
		}
	}
	// A link followed from another site is a top-level navigation, as
	// SameSite=Lax cookies allow: the page that had the link reads
	// nothing of the answer.
	navigation := (f.method == "GET" || f.method == "HEAD") && f.mode == "navigate" && f.dest == "document"
	// A page whose Origin was let in above (this machine's, or a name
	// of AcceptHosts: an identity provider posting a login back) is
	// not refused for being another site's.
	if f.site == "cross-site" && !navigation && len(f.origins) == 0 {
		return g.refuse("the browser says Sec-Fetch-Site: cross-site (a page of another site made it)", true)
	}
	return nil
}

// forwardProxyForm says whether a request line is one a client sends to
// a forward proxy: CONNECT host:port (the authority form), or the
// absolute form (http://host/path) of any other method.
func forwardProxyForm(method, target string) bool {
	if method == "CONNECT" {
		return true
	}
	if strings.HasPrefix(target, "/") || target == "*" {
		return false
	}
	u, err := url.Parse(target)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
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
	return g.local(hostOf(u.Host))
}

// local says whether name (lower case, no final dot, an IPv6 address
// without its brackets) is this machine's as a browser sees it:
// localhost — a name browsers resolve to the loopback interface
// themselves, never through DNS —, a loopback address as browsers write
// it (dotted 127.x.y.z, ::1), or a name allowed. Those are the
// addresses a browser holds "potentially trustworthy" and so marks its
// requests to with Sec-Fetch-Site; to 0.0.0.0, ::ffff:127.0.0.1 or an
// address of the network, a page's <img> goes with no Sec-Fetch-Site and
// no Origin, as a cross-site request the gate could not tell (found by
// review, 2026-12-05). They are let in by AcceptHosts only.
func (g *browserGate) local(name string) bool {
	if name == "localhost" || strings.HasSuffix(name, ".localhost") || name == "::1" {
		return true
	}
	if ip := net.ParseIP(name); ip != nil && !strings.Contains(name, ":") && ip.To4()[0] == 127 {
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

// refuse refuses the connection's stream from here on, and returns the
// error. With answer, the request is answered 403, saying why: a refusal
// of a head, before anything of it went to the target. The first
// request's answer goes at once; a later request's is the last thing
// written to the local side (closeLocal), after the target's answers
// to the requests before it, which a client that sent them one after
// the other (pipelining) reads first: the gate's Read then ends what
// goes to the target (io.EOF: pipe half-closes it, as after a client
// that sends no more), and the target's end of its answers is the
// 403's turn. A target that does not end them within pipe's idle time
// is cut, and the client reads no 403, only the close.
func (g *browserGate) refuse(reason string, answer bool) error {
	g.refused = &BrowserRequestError{Reason: reason}
	g.buf, g.ready = nil, 0
	if !answer {
		return g.refused
	}
	body := g.refused.Error() + "\n"
	forbidden := fmt.Appendf(nil, "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	if g.requests == 0 {
		_, _ = g.Conn.Write(forbidden)
		return g.refused
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.localClosed {
		g.late = forbidden
	}
	g.endedByRefusal = true
	return io.EOF
}

// readError is what Read returns once a request was refused: the
// refusal, or the end of the stream while a later request's 403 waits
// for its turn (refuse).
func (g *browserGate) readError() error {
	if g.endedByRefusal {
		return io.EOF
	}
	return g.refused
}
