package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keytool/keytool/internal/faillog"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/tlsbridge"
)

// Identity headers: what HTTP mode tells the target about the client of
// each request (docs/proxy.md, "HTTP mode"). Any header the client sent
// whose name is one of these — compared without case, with any byte but
// a letter or digit as "-", the way CGI, WSGI, Rack, lighttpd and PHP
// fold them (foldName) — is removed first: a client
// cannot claim another identity.
const (
	HeaderFingerprint = "X-Keytool-Fingerprint"   // the client key's SPKI fingerprint, "SHA256:…"
	HeaderKeyID       = "X-Keytool-Key-Id"        // its libtrust key ID
	HeaderName        = "X-Keytool-Name"          // its authorized-keys entry's name (absent for a client admitted by its CA)
	HeaderClientCert  = "X-Forwarded-Client-Cert" // Envoy's: Hash (SHA-256 of the certificate, hex), and Subject for a client admitted by its CA
)

// reservedHeaderPrefix: every client header starting with it is removed,
// so that identity headers keytool adds later are never forgeable either.
const reservedHeaderPrefix = "x-keytool-"

// httpMode serves HTTP/1.1 and HTTP/2 on admitted connections and
// forwards each request to the target with httputil.ReverseProxy, adding
// the client's identity. One http.Server serves every connection; each
// connection's handler waits for the server to be done with it, so the
// proxy's drain, cut and live revocation apply as in TCP mode.
//
// Each request is decided again (decide), against the trust stores'
// current state: the identity it carries is the key's as of now, and a
// key no longer admitted gets 403 on a connection still open — with
// KeepOpenOnRevoke, or in the moment before live revocation closes it.
type httpMode struct {
	srv     *http.Server
	rp      *httputil.ReverseProxy
	ln      *connListener
	log     *slog.Logger
	decide  func(*http.Request) (*tlsbridge.Peer, error) // tlsbridge.Server.PeerOf
	metrics *Metrics                                     // nil: nothing counted
	// failures logs the refused requests, as the failed handshakes are
	// logged: a client kept open (KeepOpenOnRevoke) may send them as fast
	// as it likes.
	failures *faillog.Log
	// bodyTimeout bounds the wait between two reads of a request's body
	// (ServerOptions.RequestBodyTimeout).
	bodyTimeout time.Duration

	mu    sync.Mutex
	conns map[net.Conn]*httpConn
}

// httpConn is one admitted connection handed to the HTTP server.
type httpConn struct {
	c     net.Conn
	attrs []any // of the connection's log lines: remote, fingerprint, name at the handshake
	// rp is httpMode's ReverseProxy with an ErrorLog of its own, whose
	// lines (a response body the target broke off) carry attrs.
	rp   *httputil.ReverseProxy
	done chan struct{} // closed when the server, or the upgraded stream, is done with it
	once sync.Once
	// hijacked: a request upgraded the connection (WebSocket): the HTTP
	// server let go of it, and the ReverseProxy handler copies it to the
	// target until either side ends; the connection is done when that
	// handler returns.
	hijacked atomic.Bool
}

// logAttrs are the attributes of a log line about hc's requests, and
// its client's address; none for a connection not ours.
func (hc *httpConn) logAttrs() ([]any, netip.Addr) {
	if hc == nil {
		return nil, netip.Addr{}
	}
	return hc.attrs[:len(hc.attrs):len(hc.attrs)], remoteAddr(hc.c)
}

// requestAttrs are the attributes of a log line about r, a request on
// one of our connections: the connection's — the client's address and
// the identity it was admitted with — and r's method. A request on a
// connection not ours has its address alone.
func requestAttrs(r *http.Request) []any {
	if hc, _ := r.Context().Value(connKey{}).(*httpConn); hc != nil {
		attrs, _ := hc.logAttrs()
		return append(attrs, "method", r.Method)
	}
	return []any{"remote", r.RemoteAddr, "method", r.Method}
}

// finish forgets hc and tells its handler it is done, once.
func (h *httpMode) finish(hc *httpConn) {
	hc.once.Do(func() {
		h.mu.Lock()
		delete(h.conns, hc.c)
		h.mu.Unlock()
		close(hc.done)
	})
}

// peerKey holds the request's *tlsbridge.Peer, as decided for it;
// connKey the connection's *httpConn; bodyKey the request's
// *handlerBody, if it has a body.
type (
	peerKey struct{}
	connKey struct{}
	bodyKey struct{}
)

// httpTimeouts are HTTP mode's: dial bounds the dial to the target and
// a client's request headers, response the target's response headers,
// body the wait between two reads of a client's request body, idle a
// connection with no request in flight (ServerOptions.IdleTimeout).
type httpTimeouts struct{ dial, response, body, idle time.Duration }

// maxHTTP2Streams is the number of streams — requests in flight — an
// HTTP/2 client may have open at once on one connection, which the
// proxy's SETTINGS frame advertises: 100, the least RFC 9113 (section
// 6.5.2) recommends, HAProxy's and Apache httpd's default (nginx's is
// 128). Each stream holds a goroutine, a connection to the target (the
// transport pools 64 idle ones, and opens as many as are asked for) and
// their buffers; Go's default, 250, let one admitted connection hold 250
// of each. A client that wants more opens another connection, as
// browsers do past 100.
const maxHTTP2Streams = 100

// msgHTTPServer is the message of the lines net/http's server writes of
// its own (serverErrorLog).
const msgHTTPServer = "http server"

// serverErrorLog is the http.Server's ErrorLog. net/http writes lines
// there that a client makes at will — one for each HTTP/2 GOAWAY it sends
// with an error code ("http2: received GOAWAY …"), an admitted client's
// line a connection — and without the client's address: they are folded
// as failures of all sources are (faillog.FailedAll: the first of a text
// in full, the next counted, at most MaxKindsPerSource texts told apart),
// so that no client makes the log grow with its connections (found by
// review of session 37).
func serverErrorLog(failures *faillog.Log) *stdlog.Logger {
	return stdlog.New(serverErrorLines{failures}, "", 0)
}

// serverErrorLines is serverErrorLog's writer: each Write is one line.
type serverErrorLines struct{ failures *faillog.Log }

func (w serverErrorLines) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	w.failures.FailedAll(slog.LevelWarn, msgHTTPServer, "error", line, "error", line)
	return len(p), nil
}

// newHTTPMode makes HTTP mode.
func newHTTPMode(target string, dial targetAddr, log *slog.Logger, failures *faillog.Log, timeouts httpTimeouts,
	decide func(*http.Request) (*tlsbridge.Peer, error)) *httpMode {
	timeout, respTimeout := timeouts.dial, timeouts.response
	h := &httpMode{log: log, conns: map[net.Conn]*httpConn{}, decide: decide, failures: failures, bodyTimeout: timeouts.body}
	u := &url.URL{Scheme: "http", Host: dial.address}
	if dial.network == "unix" {
		u.Host = "localhost" // the request's Host header is the client's (Rewrite); this names the pool's one target
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // the name the client asked for, as a reverse proxy in front of one site keeps it
			pr.SetXForwarded()       // X-Forwarded-For/Host/Proto: the client's, replacing what it sent
			setIdentity(pr.Out, pr.In)
			// A request with a body ends its connection to the target
			// (Connection: close). A target that answers without reading
			// the whole body — Python's http.server for a GET, any
			// handler that ignores a body — would otherwise read the
			// rest as the next request on that connection: a request of
			// the client's own writing, X-Keytool-* headers included,
			// never cleaned nor decided, whose answer another client's
			// request on the pooled connection could receive. A request
			// without a body leaves nothing behind.
			if pr.In.ContentLength != 0 {
				pr.Out.Close = true
			}
		},
		Transport: &http.Transport{
			Proxy:                 nil, // never through $HTTP_PROXY: the target is ours
			DialContext:           dialTarget(target, dial, timeout),
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: respTimeout, // the transport closes the target's connection when it passes
		},
		ModifyResponse: func(res *http.Response) error {
			// A body the target breaks off is counted as it is read
			// (targetBody); an upgraded stream's body is the target's
			// connection, which the ReverseProxy copies itself.
			if res.StatusCode != http.StatusSwitchingProtocols {
				res.Body = &targetBody{ReadCloser: res.Body, req: res.Request, m: h}
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The client's failures first: a failed read of its body
			// also cancels the request (HTTP/1.1), and its deadline is
			// a timeout as the target's are.
			if h.bodyFailed(w, r, errors.Is(err, context.Canceled)) {
				return
			}
			msg, status, reason := "target unreachable", http.StatusBadGateway, targetErrorReason(err)
			if errorIs[*TargetTimeoutError](err) {
				// The dial timed out: 504, as nginx answers when its
				// proxy_connect_timeout passes — the target did not
				// answer in time (RFC 9110 section 15.6.5). One that
				// refused the connection is 502.
				status = http.StatusGatewayTimeout
			}
			if rt := responseTimeout(target, respTimeout, err); rt != nil {
				msg, status, err, reason = "target sent no response", http.StatusGatewayTimeout, rt, reasonResponseTimeout
			}
			if errors.Is(err, context.Canceled) {
				w.WriteHeader(status) // the client has gone: nothing to count nor log
				return
			}
			h.metrics.targetFailed(reason) // before the log line, which tests wait for
			log.Error(msg, append(requestAttrs(r), "target", target, "error", err.Error())...)
			w.WriteHeader(status) // nothing about the target in the body
		},
	}
	h.rp = rp
	h.ln = newConnListener()
	h.srv = &http.Server{
		Handler:           http.HandlerFunc(h.serveRequest),
		ReadHeaderTimeout: timeout,
		// A keep-alive connection between requests (HTTP/2: with no
		// stream open) has nothing in flight, as a TCP-mode connection
		// after a half-close: closed when nothing has come for the idle
		// timeout (HTTP/2 with a GOAWAY). Without it, an idle connection
		// was held for ever.
		IdleTimeout: timeouts.idle,
		HTTP2:       &http.HTTP2Config{MaxConcurrentStreams: maxHTTP2Streams},
		ErrorLog:    serverErrorLog(failures),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			ctx = tlsbridge.ConnContext(ctx, c) // decide's "from" address
			h.mu.Lock()
			hc := h.conns[c]
			h.mu.Unlock()
			if hc == nil {
				return ctx // not ours: no identity headers
			}
			return context.WithValue(ctx, connKey{}, hc)
		},
		ConnState: func(c net.Conn, st http.ConnState) {
			if st != http.StateClosed && st != http.StateHijacked {
				return
			}
			h.mu.Lock()
			hc := h.conns[c]
			h.mu.Unlock()
			switch {
			case hc == nil:
			case st == http.StateHijacked:
				hc.hijacked.Store(true) // done when serveRequest's handler returns
			default:
				h.finish(hc)
			}
		},
	}
	go func() { _ = h.srv.Serve(h.ln) }()
	return h
}

// serveRequest decides on the request's client key again, against the
// trust stores' current state, and forwards the request with the
// identity of that decision; a key no longer admitted gets 403 with
// tlsbridge's ForbiddenBody (a reason code and the client's own
// fingerprint: nothing of the server's files or entries), and the
// refusal is logged with the connection's attributes and why — in full
// the first time for its source and reason, then counted (faillog).
func (h *httpMode) serveRequest(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && !http1Writable(r) {
		w.WriteHeader(http.StatusBadRequest) // as Go's HTTP/1.1 server answers one, unlogged
		return
	}
	hc, _ := r.Context().Value(connKey{}).(*httpConn)
	p, err := h.decide(r)
	if err == nil && p.Authenticated() && r.Method == http.MethodConnect {
		h.refuseConnect(w, r, hc)
		return
	}
	if err == nil && p.Authenticated() {
		var body *handlerBody
		if r.ContentLength != 0 {
			rc := http.NewResponseController(w)
			// A request body streams to the target while its response
			// streams back. By default Go's HTTP/1 server drains and
			// closes the body when the response begins; the target
			// answering as it reads the end of a body then cut the
			// answer short (the transport, reading the body once more
			// past its length, found it closed and dropped the target's
			// connection: golang/go#40747). HTTP/2 is full duplex always.
			_ = rc.EnableFullDuplex()
			// With full duplex, a body still unread when the handler
			// returns — the target answered first, and the transport
			// gave up sending it or sends it late — is read to its end
			// by the server only after it stopped its background read
			// of the connection; reaching the end starts that read
			// again, and the server, reading the next request beside
			// it, panics ("invalid concurrent Body.Read call") and
			// drops the connection. The body is finished here, before
			// the handler returns, and no read of it outlives the
			// handler.
			body = &handlerBody{body: r.Body, rc: rc, timeout: h.bodyTimeout}
			r.Body = body
		}
		keepOnlyWebSocketUpgrade(r.Header)
		rp := h.rp
		if hc != nil {
			rp = hc.rp
		}
		ctx := context.WithValue(r.Context(), peerKey{}, p)
		if body != nil {
			ctx = context.WithValue(ctx, bodyKey{}, body) // the ErrorHandler's request has another Body
		}
		rp.ServeHTTP(w, r.WithContext(ctx))
		hijacked := hc != nil && hc.hijacked.Load()
		if body != nil && body.aborted.Load() {
			// The client stalled in its body (bodyFailed): its
			// connection is closed with no answer, its HTTP/2 stream
			// reset, as nginx does when client_body_timeout passes.
			body.end(false)
			panic(http.ErrAbortHandler)
		}
		if body != nil {
			if !hijacked {
				// The answer first: a client may send the rest of its
				// body only once it has it.
				_ = http.NewResponseController(w).Flush()
			}
			body.end(!hijacked)
		}
		if hijacked {
			h.finish(hc) // the upgraded stream has ended
		}
		return
	}
	attrs, ip := hc.logAttrs()
	if err == nil {
		err = p.Err
	}
	_, reason := refusalReason(err)
	h.metrics.requestRefused(reason)
	h.failures.Failed(ip, slog.LevelWarn, msgRequestRefused, "reason", withoutFingerprints(err.Error()),
		append(attrs, "method", r.Method, "reason", err.Error())...)
	if p == nil {
		tlsbridge.WriteForbidden(w, tlsbridge.ReasonNoCertificate, nil)
		return
	}
	tlsbridge.WriteForbidden(w, p.Reason(), &p.SPKIHash)
}

// refuseConnect answers a CONNECT request 405 Method Not Allowed, with
// the methods the proxy passes in Allow and nothing of the target, and
// logs it (counted as refused requests are:
// a client may send them as fast as it likes). Forwarded, a CONNECT is
// a tunnel: over HTTP/2, where a request's body is a stream, the
// transport sends the target "CONNECT" and then the client's bytes as
// they come, and copies back what the target answers — requests of the
// client's own writing, X-Keytool-* headers included, never cleaned nor
// decided, or a way through a target that is itself a forward proxy.
// An extended CONNECT (RFC 8441, WebSocket over HTTP/2, which Go's
// WebSocket goes through over HTTP/1.1 (docs/proxy.md).
func (h *httpMode) refuseConnect(w http.ResponseWriter, r *http.Request, hc *httpConn) {
	attrs, ip := hc.logAttrs()
	h.metrics.requestRefused(reasonConnect)
	h.failures.Failed(ip, slog.LevelWarn, msgConnectRefused, "method", r.Method,
		append(attrs, "method", r.Method, "protocol", r.Header.Get(":protocol"))...)
	w.Header().Set("Allow", allowedMethods)
	w.WriteHeader(http.StatusMethodNotAllowed)
}

// allowedMethods is the Allow header of the 405 a CONNECT gets (RFC
// 9110 section 15.5.6 requires one): the methods of RFC 9110 section 9
// but CONNECT, and PATCH (RFC 5789). The proxy passes any other method
// too — WebDAV's, a target's own —, which a list cannot name; these
// are the ones a client may count on (TestHTTPAllowedMethodsPass).
const allowedMethods = "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH"

// http1Writable reports whether r, an HTTP/2 request, could have come as
// an HTTP/1.1 request line and Host, which is how the proxy sends it on:
// its method (and an extended CONNECT's :protocol) a token, its
// authority of the bytes Go's HTTP/1.1 server takes in a Host
// (httpguts.ValidHostHeader), its path without a space. Go's HTTP/2
// server checks only that a field holds no control byte. Such a method
// went to the transport, which refused it: 502, logged at ERROR as the
// target's failure with the client's bytes, counted as its
// bad_response — any admitted client could fill the error log and set
// off the target-error alert; an authority with a space went as an
// empty Host, and a query's space into the request line ("GET /?a
// HTTP/1.0 b HTTP/1.1"). An HTTP/1.1 request's are checked by Go's
// server before it reaches the handler (TestHTTP2RequestHeldToHTTP1).
func http1Writable(r *http.Request) bool {
	if !isToken(r.Method) || strings.IndexByte(r.RequestURI, ' ') >= 0 {
		return false
	}
	if p := r.Header.Get(":protocol"); p != "" && !isToken(p) {
		return false
	}
	for i := 0; i < len(r.Host); i++ {
		if c := r.Host[i]; !isAlnum(c) && !strings.ContainsRune("!$%&'()*+,-.:;=[]_~", rune(c)) {
			return false
		}
	}
	return true
}

// isToken reports whether s is an RFC 9110 token: one or more tchar.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return s != ""
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// msgConnectRefused is the log line of a CONNECT request refused.
const msgConnectRefused = "request refused: CONNECT is not forwarded"

// bodyFailed answers a request whose client's body failed — nothing of
// it for bodyTimeout, a reset, a malformed chunk —, which is no failure
// of the target's, and logs it with the request's attributes (per
// source, as refusals: a client may fail as many as it likes). A body
// that stalled is answered as nginx answers one past its
// client_body_timeout: with nothing, the connection closed (HTTP/2: the
// stream reset) once the handler has let go of the body (serveRequest):
// the request is incomplete, and the rest of its body, should it come,
// would be read as the next request. Any other is 400. False if the
// client's body did not fail. wait: the request was cancelled, maybe by
// a read of the body failing (clientFailed).
func (h *httpMode) bodyFailed(w http.ResponseWriter, r *http.Request, wait bool) bool {
	body, cerr := clientFailed(r, wait)
	if cerr == nil {
		return false
	}
	attrs, ip := r.Context().Value(connKey{}).(*httpConn).logAttrs()
	attrs = append(attrs, "method", r.Method, "error", cerr.Error())
	if errorIs[*RequestBodyTimeoutError](cerr) {
		body.aborted.Store(true)
		h.failures.Failed(ip, slog.LevelInfo, msgBodyStalled, "error", cerr.Error(), attrs...)
		return true
	}
	h.failures.Failed(ip, slog.LevelInfo, msgBodyFailed, "error", cerr.Error(), attrs...)
	w.WriteHeader(http.StatusBadRequest)
	return true
}

// The log lines of a request whose client's body failed.
const (
	msgBodyStalled = "request body stalled: closing"
	msgBodyFailed  = "request body failed"
)

// handlerBody is a request body whose reads end with its handler (end):
// a read after end fails without reaching the body, end waits for a read
// in progress, then closes the body unless the connection was hijacked
// (the server's Close: what is left of it, up to a limit, is read and
// discarded).
type handlerBody struct {
	mu    sync.Mutex
	body  io.ReadCloser
	ended bool
	// Each read waits for the client at most timeout (HTTP mode's
	// bodyTimeout): a read deadline set through rc before it, cleared
	// when the body ends.
	rc      *http.ResponseController
	timeout time.Duration
	// failed is the first error but io.EOF a read of the client's body
	// returned, a *RequestBodyTimeoutError for its deadline; read
	// without mu, which a read blocked on the client holds.
	failed atomic.Pointer[error]
	// aborted: the request is answered by closing the connection
	// (bodyFailed).
	aborted atomic.Bool
}

func (b *handlerBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.rc != nil {
		_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	}
	n, err := b.body.Read(p)
	switch {
	case err == nil:
	case err == io.EOF && b.rc != nil:
		// Once the body has ended, the connection reads on for the
		// next request (HTTP/1.1, in the background): under no
		// deadline of the body's. A body that failed keeps it: the
		// server drains what is left of it when the handler returns,
		// and that read must not wait for the client either.
		_ = b.rc.SetReadDeadline(time.Time{})
	case err != io.EOF:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = &RequestBodyTimeoutError{Within: b.timeout, Err: err}
		}
		b.failed.CompareAndSwap(nil, &err)
	}
	return n, err
}

// clientFailed is the error reading the client's body ended with, if it
// did: a request that failed then failed on the client's side, not the
// target's. Nil for a request without a *handlerBody (bodyKey). With
// wait, a read in progress is waited for: over HTTP/1.1 a failed read
// cancels the request inside the read, before the read returns its
// error, and the request may fail with context.Canceled first. The wait
// is bounded: every read has its deadline.
func clientFailed(r *http.Request, wait bool) (*handlerBody, error) {
	b, ok := r.Context().Value(bodyKey{}).(*handlerBody)
	if !ok {
		return nil, nil
	}
	if wait {
		b.mu.Lock()
		//lint:ignore SA2001 the wait for a read in progress is the point
		b.mu.Unlock()
	}
	if err := b.failed.Load(); err != nil {
		return b, *err
	}
	return nil, nil
}

// Close is the server's to do: a transport closing the body it sent
// must not drain it under the server.
func (b *handlerBody) Close() error { return nil }

func (b *handlerBody) end(close bool) {
	b.mu.Lock()
	b.ended = true
	b.mu.Unlock()
	if close {
		_ = b.body.Close()
	}
}

// keepOnlyWebSocketUpgrade removes the Upgrade header of a request unless
// it asks for WebSocket alone (one value, "websocket": RFC 6455 section
// 4.1); the request then goes without, as a server that ignores the
// upgrade answers it (RFC 9110 section 7.8). Once a target switched
// protocols, the proxy only copies bytes, and whatever requests the new
// protocol carries reach the target neither cleaned of forged identity
// headers nor decided again: HTTP/2 streams after h2c (RFC 7540 section
// 3.2), HTTP/1.1 inside TLS after TLS/1.0 (RFC 2817, which CUPS serves),
// any protocol of the target's own. WebSocket messages carry no HTTP
// headers, and the upgraded stream is still ended by live revocation
// (docs/proxy.md). A client of the proxy gets HTTP/2 by ALPN.
func keepOnlyWebSocketUpgrade(h http.Header) {
	v := h.Values("Upgrade")
	if len(v) == 0 {
		return
	}
	// Of the same length, EqualFold folds ASCII letters only: the Kelvin
	// sign (for "k") and "ſ" are longer than the letters they fold to.
	if p := strings.TrimSpace(v[0]); len(v) > 1 || len(p) != len("websocket") || !strings.EqualFold(p, "websocket") {
		h.Del("Upgrade")
	}
}

// msgRequestRefused is the log line of a request refused by serveRequest.
const msgRequestRefused = "request refused: key no longer admitted"

// serve hands conn to the HTTP server and returns when the server is done
// with it, or when ctx ends (the connection is then closed). attrs are
// the connection's log attributes.
func (h *httpMode) serve(ctx context.Context, conn *tls.Conn, attrs []any) {
	hc := &httpConn{c: conn, attrs: attrs, done: make(chan struct{})}
	// The ReverseProxy writes a few lines of its own through ErrorLog
	// (a response body the target broke off), which has no request to
	// take attributes from: each connection's has the connection's. A
	// few allocations a connection, none a request.
	rp := *h.rp
	rp.ErrorLog = slog.NewLogLogger(h.log.With(attrs...).Handler(), slog.LevelWarn)
	hc.rp = &rp
	h.mu.Lock()
	h.conns[conn] = hc
	h.mu.Unlock()
	if !h.ln.push(ctx, conn) {
		h.mu.Lock()
		delete(h.conns, conn)
		h.mu.Unlock()
		return
	}
	select {
	case <-hc.done:
	case <-ctx.Done():
		conn.Close()
		<-hc.done
	}
}

// setIdentity removes every identity header the client sent, in the
// headers and the trailers, and adds the admitted client's.
func setIdentity(out *http.Request, in *http.Request) {
	removeForged(out.Header, true)
	removeForged(out.Trailer, false)
	setPeer(out.Header, in)
}

// removeForged deletes the identity headers of h, compared without case
// and with any byte but a letter or digit as "-" (foldName): every
// X-Keytool-*, X-Forwarded-* and Forwarded (keytool's and the standard
// ones), and the headers other proxies put
// a client's address or certificate in, which targets behind them are
// commonly set up to believe (forgedNames, forgedPrefixes) — except,
// with keepSet, the X-Forwarded-For, -Host and -Proto that
// httputil.ProxyRequest.SetXForwarded has just set.
func removeForged(h http.Header, keepSet bool) {
	for name := range h {
		folded := foldName(name)
		switch {
		case keepSet && (name == "X-Forwarded-For" || name == "X-Forwarded-Host" || name == "X-Forwarded-Proto"):
		case forgedNames[folded], hasForgedPrefix(folded):
			delete(h, name)
		}
	}
}

// foldName is name in lower case with every byte but a letter or digit
// made "-": the names a target may read as one header fold alike. CGI,
// WSGI and Rack turn "-" into "_"; lighttpd's CGI and FastCGI turn every
// byte but a letter or digit into "_", and PHP the "." and " " of a
// name too; Go's server accepts any token character ("." "~" "+" "!"
// "'" "`" "|"...) in a name, so X.Keytool.Name, which sorts after
// X-Keytool-Name and so overwrote the proxy's value in such a target,
// is X-Keytool-Name.
//
// It runs on every header of every request: one allocation, where
// lowering the name first and then copying it to fold it made two or
// three. A header name is ASCII (Go's server refuses any other byte in
// one), so lowering it is a byte's case.
func foldName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			b.WriteByte(c)
		case 'A' <= c && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

// forgedNames are identity headers, folded (lower case, "-"), that a
// client may not send through the proxy: its address as nginx
// (X-Real-IP, realip module), Akamai and Cloudflare (True-Client-IP,
// CF-Connecting-IP), Fastly, Rails (Client-IP, X-Client-IP) and
// Rackspace/others (X-Cluster-Client-IP) pass it; its certificate as RFC
// 9440 (Client-Cert, Client-Cert-Chain) and nginx setups
// (X-SSL-Client-*, below) do; and its user as Kubernetes' front proxy
// (X-Remote-User, X-Remote-Group, X-Remote-Extra-*) and Apache or
// oauth2-proxy (Remote-User, X-Auth-Request-*) do.
var forgedNames = map[string]bool{
	"forwarded": true, "x-real-ip": true, "x-client-ip": true, "client-ip": true, "true-client-ip": true,
	"x-cluster-client-ip": true, "cf-connecting-ip": true, "fastly-client-ip": true,
	"client-cert": true, "client-cert-chain": true,
	"x-remote-user": true, "x-remote-group": true, "remote-user": true,
	// WebLogic's proxy plug-in: the client's address and certificate,
	// which WebLogic takes for the request's own when the plug-in is
	// enabled (client-certificate login included); IIS ARR and Azure App
	// Service's client certificate; the address other gateways pass,
	// which common "client IP" code reads.
	"wl-proxy-client-ip": true, "proxy-client-ip": true, "wl-proxy-ssl": true, "x-arr-clientcert": true,
	"x-original-forwarded-for": true, "x-originating-ip": true,
}

// forgedPrefixes start identity headers, folded: keytool's own (every
// X-Keytool-*, so that names it adds later are never forgeable either),
// X-Forwarded-* (the standard ones, Traefik's X-Forwarded-Tls-Client-Cert,
// Envoy's X-Forwarded-Client-Cert), nginx and HAProxy setups'
// certificate headers (X-SSL-Client-Cert, -Verify, -DN, X-SSL-Cert...,
// and SSL_CLIENT_* as Apache's mod_ssl names them), Google Cloud's and
// others' X-Client-Cert-*, X-Client-Verify and X-Client-DN, AWS ALB's
// X-Amzn-Mtls-Clientcert-*, Kubernetes' X-Remote-Extra-*, and
// oauth2-proxy's X-Auth-Request-*; and the identity-aware proxies'
// below.
var forgedPrefixes = []string{
	reservedHeaderPrefix, "x-forwarded-", "x-ssl-", "ssl-client-", "x-client-cert", "x-client-verify",
	"x-client-dn", "x-client-s-dn", "x-client-i-dn", "x-amzn-mtls-", "x-remote-extra-", "x-auth-request-",
	// The user, as identity-aware proxies pass it to the application
	// behind them: WebLogic's plug-in (WL-Proxy-Client-Cert...), Azure App
	// Service (X-MS-Client-Principal-Name...), Google IAP
	// (X-Goog-Authenticated-User-Email, X-Goog-IAP-JWT-Assertion), AWS
	// ALB (X-Amzn-Oidc-Identity...), Cloudflare Access
	// (Cf-Access-Authenticated-User-Email...), and Grafana's auth proxy
	// default (X-WEBAUTH-USER).
	"wl-proxy-client-", "x-ms-client-principal", "x-goog-authenticated-user-", "x-goog-iap-",
	"x-amzn-oidc-", "cf-access-", "x-webauth-",
}

func hasForgedPrefix(folded string) bool {
	for _, p := range forgedPrefixes {
		if strings.HasPrefix(folded, p) {
			return true
		}
	}
	return false
}

// setPeer adds the identity headers of the request's client.
func setPeer(out http.Header, in *http.Request) {
	peer, _ := in.Context().Value(peerKey{}).(*tlsbridge.Peer)
	if peer == nil {
		return
	}
	out.Set(HeaderFingerprint, peer.Fingerprint())
	out.Set(HeaderKeyID, peer.KeyID())
	// A name that is not shown as it is (keydir.PrintableName: an entry
	// of an earlier version holding U+200B or a bidi control) is left
	// out, as one a header cannot hold: "ad\u200bmin" would reach the
	// target as "admin" to whoever reads it (docs/design.md, "Names").
	if name := peer.Name(); name != "" && validHeaderValue(name) && keydir.PrintableName(name) {
		out.Set(HeaderName, name)
	}
	xfcc := "Hash=" + hex.EncodeToString(certHash(peer))
	// The Subject only when a CA vouched for it: a client admitted by its
	// key wrote its own certificate, and its subject says whatever it
	// chose ("CN=admin") — a target reading XFCC's Subject, as behind
	// Envoy with a CA, would believe it.
	if peer.Certificate != nil && peer.ViaCA {
		xfcc += `;Subject="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(peer.Certificate.Subject.String()) + `"`
	}
	if validHeaderValue(xfcc) {
		out.Set(HeaderClientCert, xfcc)
	}
	out.Set("Forwarded", forwarded(in))
}

// certHash is Envoy's XFCC Hash: the SHA-256 of the client certificate's
// DER.
func certHash(p *tlsbridge.Peer) []byte {
	if p.Certificate == nil {
		return nil
	}
	sum := sha256.Sum256(p.Certificate.Raw)
	return sum[:]
}

// forwarded is RFC 7239's Forwarded header of a request: the client's
// address (an IPv6 one quoted and bracketed), the host it asked for, and
// https. The host is the client's text, and Go's server lets a Host hold
// "," and ";": quoted, they are RFC 7239's, but a target that splits
// the elements at "," (or the pairs at ";") before it reads quotes would
// take the rest for another element — app.example,for=6.6.6.6 for a
// request from 6.6.6.6 — so a host holding either is left out.
func forwarded(r *http.Request) string {
	v := "for=unknown"
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		if a := ap.Addr().Unmap(); a.Is4() {
			v = "for=" + a.String()
		} else {
			v = `for="[` + a.String() + `]"`
		}
	}
	if r.Host != "" && validHeaderValue(r.Host) && !strings.ContainsAny(r.Host, `";,`) {
		v += `;host="` + r.Host + `"`
	}
	return v + ";proto=https"
}

// validHeaderValue refuses values with control characters (an entry name
// is the admin's text, not the client's, but a header is no place for a
// newline).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// targetBody is a target's response body, whose reads count a body the
// target broke off — a reset, its connection closed before the body's
// end, a malformed chunk — once, as truncated_response: the client's
// response, its headers maybe sent, ends short (the ReverseProxy logs
// it and aborts the handler). A failure that is the client's is not
// counted: the request cancelled (the client left), or its body failed
// first (the transport then gives up the target's connection).
type targetBody struct {
	io.ReadCloser
	req     *http.Request // the request sent to the target, whose context is the client's request's
	m       *httpMode
	counted bool // reads are the ReverseProxy's copy's, one at a time
}

func (b *targetBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && !b.counted && !errors.Is(err, context.Canceled) {
		if _, cerr := clientFailed(b.req, false); cerr == nil {
			b.counted = true
			b.m.metrics.targetFailed(reasonTruncatedResponse) // before the ReverseProxy's log line
		}
	}
	return n, err
}

// targetErrorReason is the reason of keytool_proxy_target_errors_total
// for err, a failure to reach the target or to get its answer — server
// mode's dial, or an HTTP-mode request (whose client's own failures are
// told apart before, and whose response timeout after, by
// responseTimeout; a body broken off is targetBody's to count):
// connect_timeout for a dial that timed out, unreachable for one that
// failed, and bad_response for anything else, the target's answer — it
// closed or reset the connection, or sent what is not a response.
func targetErrorReason(err error) string {
	var op *net.OpError
	switch {
	case errorIs[*TargetTimeoutError](err):
		return reasonConnectTimeout
	case errors.As(err, &op) && op.Op == "dial":
		return reasonUnreachable
	}
	return reasonBadResponse
}

// responseTimeout is err, a request's failure, as a *ResponseTimeoutError
// if the target did not answer within within, and nil otherwise. The
// transport's ResponseHeaderTimeout is the one timeout a request meets
// once its connection is made — there is no other deadline on it, and a
// client that leaves cancels the request instead — and a dial's is a
// *TargetTimeoutError (dialTarget).
func responseTimeout(target string, within time.Duration, err error) *ResponseTimeoutError {
	var ne net.Error
	if errorIs[*TargetTimeoutError](err) || !errors.As(err, &ne) || !ne.Timeout() {
		return nil
	}
	return &ResponseTimeoutError{Target: target, Within: within, Err: err}
}

// connListener is a net.Listener whose connections are pushed to it.
type connListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), closed: make(chan struct{})}
}

// push hands c to Accept; false if the listener is closed or ctx ended
// first.
func (l *connListener) push(ctx context.Context, c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
	case <-ctx.Done():
	}
	return false
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// dialTarget is server mode's dial to the target — each connection's,
// and HTTP mode's transport's —, bounded by timeout: one that times out
// is a *TargetTimeoutError, said in words in the log.
func dialTarget(target string, dial targetAddr, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		conn, err := d.DialContext(ctx, dial.network, dial.address)
		if err != nil && ctx.Err() == nil {
			err = targetTimeout(target, timeout, false, err)
		}
		return conn, err
	}
}
