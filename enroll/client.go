package enroll

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// ExpiryGrace is how long past a token's expiry Join still asks the
// server (whose clock decides) instead of refusing at once: clocks drift.
const ExpiryGrace = 5 * time.Minute

// AttemptTimeout bounds one address's connection and request in Join.
const AttemptTimeout = 20 * time.Second

// ProbeTimeout bounds the handshake Join makes, after enrolling, with each
// other address of the token, to see whether the server's key is there.
const ProbeTimeout = 10 * time.Second

// Result is what Join did.
type Result struct {
	Name              string // the entry name the server authorized this client's key under
	Addr              string // the address that answered
	ServerFingerprint string // the server's key, as the token named it
	ClientFingerprint string // this client's key, as the server saw it
	Pins              []Pin  // the addresses where Join saw the server's key in a handshake, pinned to it
	// Unverified are the token's other addresses: Join did not see the
	// server's key there in a completed handshake (Err says why), so it
	// did not pin them. A token names addresses as its maker wrote them;
	// only a handshake shows that the key is served there.
	Unverified []Attempt
}

// Pin is one address pinned to the server's key in the trusted hosts.
type Pin struct {
	Addr string
	File string // the file that pins it
	New  bool   // false: it was pinned already
}

// Errors of Join besides the typed ones below: errors.Is(err, ErrExpired)
// and the like hold for a *RefusedError with that reason, and ErrExpired
// also for an expiry noticed by the client.
var (
	ErrExpired     = errors.New("invitation expired")
	ErrAlreadyUsed = errors.New("invitation already used")
	ErrUnknown     = errors.New("no such invitation")
	ErrWrongSecret = errors.New("wrong secret")
	ErrRateLimited = errors.New("rate limited")
)

var reasonErr = map[Reason]error{
	ReasonExpired:     ErrExpired,
	ReasonAlreadyUsed: ErrAlreadyUsed,
	ReasonUnknown:     ErrUnknown,
	ReasonWrongSecret: ErrWrongSecret,
	ReasonRateLimited: ErrRateLimited,
}

// RefusedError means the server answered, and refused the enrollment.
// Nothing was written on either side.
type RefusedError struct {
	Addr    string
	Name    string // the invitation's name, from the token
	Status  int
	Reason  Reason
	Message string // the server's explanation
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("enroll: %s refused the enrollment (%s): %s; nothing was written on either side", e.Addr, oneLine(string(e.Reason)), oneLine(e.Message))
}

// oneLine keeps a message from the network on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Is makes errors.Is(err, ErrExpired) (and the other reasons) work.
func (e *RefusedError) Is(target error) bool { return reasonErr[e.Reason] == target }

// TokenExpiredError means the token had expired by the client's clock
// (more than ExpiryGrace ago): Join did not connect.
type TokenExpiredError struct {
	Name      string
	Expires   time.Time
	Addresses []string // the token's: where its server is reached
}

func (e *TokenExpiredError) Error() string {
	return fmt.Sprintf("enroll: the token for invitation %q expired at %s; nothing was written",
		e.Name, e.Expires.UTC().Format(time.RFC3339))
}

func (e *TokenExpiredError) Is(target error) bool { return target == ErrExpired }

// InterceptionError means the server at Addr presented another key than
// the one the token names: the token is for another server, or someone is
// intercepting the connection. Join sent nothing and wrote nothing.
type InterceptionError struct {
	Addr string
	Want string // the token's fingerprint
	Got  string // the presented key's fingerprint
}

func (e *InterceptionError) Error() string {
	return fmt.Sprintf("enroll: the server at %s presented key %s, but the token names key %s; the secret was not sent and nothing was written",
		e.Addr, e.Got, e.Want)
}

// UnreachableError means no address of the token could be reached.
type UnreachableError struct {
	Attempts []Attempt
}

// Attempt is one address Join tried, and why it failed.
type Attempt struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string {
	parts := make([]string, len(e.Attempts))
	for i, a := range e.Attempts {
		parts[i] = fmt.Sprintf("%s (%s)", a.Addr, oneLine(fmt.Sprint(a.Err)))
	}
	return fmt.Sprintf("enroll: could not reach the server at any of the token's addresses: %s; nothing was written",
		strings.Join(parts, ", "))
}

func (e *UnreachableError) Unwrap() []error {
	out := make([]error, len(e.Attempts))
	for i, a := range e.Attempts {
		out[i] = a.Err
	}
	return out
}

// HostsDisagreeError means this client's trusted hosts already say
// something else of a token's address — another key is pinned for it, or
// the token's key is revoked — so Join sent and wrote nothing. Err is the
// trusted hosts' error (*knownhosts.KeyChangedError, *knownhosts.RevokedError).
type HostsDisagreeError struct {
	Addr string
	Err  error
}

func (e *HostsDisagreeError) Error() string {
	return fmt.Sprintf("enroll: this client's trusted hosts disagree with the token about %s, so nothing was sent or written: %s", e.Addr, oneLine(e.Err.Error()))
}

func (e *HostsDisagreeError) Unwrap() error { return e.Err }

// HandshakeRefusedError means the server at Addr presented the token's
// key but refused this client's key in the TLS handshake: it does not
// serve enrollment (its TLS server does not admit unknown keys), or this
// key is revoked there. Nothing was written.
type HandshakeRefusedError struct {
	Addr              string
	ServerFingerprint string
	ClientFingerprint string
	Err               error // the TLS error
}

func (e *HandshakeRefusedError) Error() string {
	return fmt.Sprintf("enroll: the server at %s presented the token's key %s but refused this client's key %s in the handshake (%s); nothing was written",
		e.Addr, e.ServerFingerprint, e.ClientFingerprint, oneLine(e.Err.Error()))
}

func (e *HandshakeRefusedError) Unwrap() error { return e.Err }

// NotEnrollmentError means the server at Addr, which presented the
// token's key, did not answer as an enrollment endpoint: the connection
// broke (Err set, Status empty) or the answer was not an enrollment
// answer (Status set). A proxy that already authorizes this client's key
// passes the request on to its target, which answers so. Nothing was
// written here; whether the server enrolled the client is in its log
// (Err set, the answer may have been lost).
//
// Probe says the answer (Status), or the failure (Err), was of the
// request Join makes before it sends the secret (see probePath): the
// secret was not sent, and the server cannot have enrolled this client.
// An answer means the server passed this client's requests on to a
// service.
type NotEnrollmentError struct {
	Addr              string
	ServerFingerprint string
	Status            string // the HTTP status of an answer that was not an enrollment answer
	Err               error  // the failure of a request that got no answer
	Timeout           bool   // Err is a timeout
	Probe             bool   // Status or Err is the probe's: the secret was not sent
}

func (e *NotEnrollmentError) Error() string {
	if e.Probe && e.Status == "" {
		return fmt.Sprintf("enroll: asking %s (key %s, as the token says) whether it serves enrollment: %s; the secret was not sent and nothing was written",
			e.Addr, e.ServerFingerprint, oneLine(fmt.Sprint(e.Err)))
	}
	if e.Probe {
		return fmt.Sprintf("enroll: %s (key %s) answered %s for %s, where keytool's enrollment gate answers a client it does not know 403: it passes this client's requests on to a service (the key is authorized there already), or does not serve enrollment; the secret was not sent and nothing was written",
			e.Addr, e.ServerFingerprint, oneLine(e.Status), probePath)
	}
	if e.Status != "" {
		return fmt.Sprintf("enroll: %s (key %s) answered %s, which is not an enrollment answer (is %s served there?); nothing was written here",
			e.Addr, e.ServerFingerprint, e.Status, Path)
	}
	return fmt.Sprintf("enroll: enrolling with %s (key %s, as the token says): %s; nothing was written here, and the server's log says whether it enrolled this client",
		e.Addr, e.ServerFingerprint, oneLine(fmt.Sprint(e.Err)))
}

func (e *NotEnrollmentError) Unwrap() error { return e.Err }

// KeyMismatchError means the server said it authorized another key than
// this client's. Nothing was pinned.
type KeyMismatchError struct {
	Addr       string
	Authorized string // the fingerprint the server says it authorized
	Client     string // this client's fingerprint
}

func (e *KeyMismatchError) Error() string {
	return fmt.Sprintf("enroll: %s says it authorized key %s, but this client's key is %s", e.Addr, oneLine(e.Authorized), e.Client)
}

// PinError means the server authorized this client's key as Name, but
// pinning the server's key for Addr in this client's trusted hosts failed.
type PinError struct {
	Name        string
	Addr        string
	Fingerprint string // the server's key
	Err         error
}

func (e *PinError) Error() string {
	return fmt.Sprintf("enroll: the server authorized this client as %q, but pinning its key %s for %s failed: %s", e.Name, e.Fingerprint, e.Addr, oneLine(e.Err.Error()))
}

func (e *PinError) Unwrap() error { return e.Err }

// tokenHosts is the host check of Join: the token's key, and only it,
// for every address. It never pins: Join pins after the server said yes.
type tokenHosts struct {
	want [32]byte
	mu   sync.Mutex
	seen bool
	err  *InterceptionError
}

func (h *tokenHosts) Decide(addr string, sum [32]byte) knownhosts.Decision {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = true
	if sum == h.want {
		return knownhosts.Decision{Verdict: knownhosts.Pinned}
	}
	h.err = &InterceptionError{Addr: addr, Want: jwk.FormatFingerprint(h.want), Got: jwk.FormatFingerprint(sum)}
	return knownhosts.Decision{Verdict: knownhosts.Changed, Err: h.err}
}

func (h *tokenHosts) Add(string, *jwk.Key) (string, error) {
	return "", errors.New("enroll: the token's host check never pins")
}

func (h *tokenHosts) state() (bool, *InterceptionError) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen, h.err
}

// Join enrolls the client presenting id with the server a token names.
//
// Before connecting it checks that hosts does not pin any of the token's
// addresses to another key (or list the token's key as revoked): that
// would make pinning fail after the server enrolled the client. Then it
// dials the token's addresses in order, accepting only the token's key —
// no prompt, no other pin, no CA: the token is the out-of-band check — and
// posts the secret, once a request that carries nothing (probePath) has
// shown that the server answers this client as keytool's enrollment gate
// does, and does not pass its requests on to a service behind it, which
// would get the secret (a *NotEnrollmentError with Probe). An address that cannot be reached is skipped; any
// other failure is final. When the server has authorized the client's key,
// Join makes a TLS handshake (sending nothing) with each of the token's
// addresses it has not reached yet, and pins the server's key in hosts
// for the addresses where a completed handshake showed it: the address it
// enrolled through and those. The others are in Result.Unverified, not
// pinned: whoever made the token chose its addresses, and a key is pinned
// for an address only where it was seen.
//
// On failure nothing was written in hosts, and the server wrote nothing
// (but for a *PinError: the server enrolled the client, and a pin could
// not be written). The errors are a *TokenError, *TokenExpiredError,
// *HostsDisagreeError (wrapping what hosts said of the token's key),
// *InterceptionError, *UnreachableError, *HandshakeRefusedError,
// *NotEnrollmentError, *RefusedError, *KeyMismatchError or *PinError.
// Each says what happened in one line and carries its data; what to do
// about it is for the caller to say.
func Join(ctx context.Context, id *tlsbridge.Identity, tok Token, hosts tlsbridge.HostKeys, logger *slog.Logger) (*Result, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := tok.validate(); err != nil {
		return nil, &TokenError{Kind: ErrTokenMalformed, Detail: err.Error()}
	}
	if time.Now().After(tok.Expires.Add(ExpiryGrace)) {
		return nil, &TokenExpiredError{Name: tok.Name, Expires: tok.Expires, Addresses: tok.Addresses}
	}
	for _, addr := range tok.Addresses {
		// A key pinned without an address (PinnedIfNamed) is the token's
		// key too: join pins it for the addresses where it is seen.
		d := hosts.Decide(addr, tok.Server)
		var only *knownhosts.PurposesOnlyError
		if errors.As(d.Err, &only) {
			// The token's key, pinned there for some purposes only: join
			// pins it for every purpose — unless other keys are pinned
			// there, which make that pin a changed key.
			if len(only.Others) == 0 {
				continue
			}
			d = knownhosts.Decision{Verdict: knownhosts.Changed, Err: &knownhosts.KeyChangedError{Addr: addr, Fingerprint: only.Fingerprint, Want: only.Others}}
		}
		if d.Verdict != knownhosts.Pinned && d.Verdict != knownhosts.Unknown && d.Verdict != knownhosts.PinnedIfNamed {
			return nil, &HostsDisagreeError{Addr: addr, Err: knownhosts.ErrorOf(d, addr, tok.Server)}
		}
	}
	var attempts []Attempt
	for _, addr := range tok.Addresses {
		res, serverKey, err := post(ctx, id, tok, addr)
		if errors.Is(err, errUnreachable) {
			attempts = append(attempts, Attempt{Addr: addr, Err: errors.Unwrap(err)})
			logger.Info("enrollment address unreachable", "addr", addr, "error", errors.Unwrap(err).Error())
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		res.Addr = addr
		seen := verifyOthers(ctx, id, tok, addr, attempts, res, logger)
		if err := pinSeen(res, tok, serverKey, hosts, seen); err != nil {
			return res, err
		}
		logger.Info("enrolled", "addr", addr, "name", res.Name, "server_fingerprint", res.ServerFingerprint, "client_fingerprint", res.ClientFingerprint)
		return res, nil
	}
	return nil, &UnreachableError{Attempts: attempts}
}

// errUnreachable marks an address that could not be reached (no TLS
// handshake took place): Join tries the next.
var errUnreachable = errors.New("unreachable")

type unreachable struct{ err error }

func (u *unreachable) Error() string        { return u.err.Error() }
func (u *unreachable) Unwrap() error        { return u.err }
func (u *unreachable) Is(target error) bool { return target == errUnreachable }

// probePath is what Join asks for, carrying nothing, before it sends a
// token's secret: a path no server serves, which keytool's enrollment
// gate (ServeConn) and tlsbridge's RequireAuthenticated (WithEnrollment)
// answer a client whose key is not authorized with tlsbridge's 403. A
// server that answers otherwise passes this client's requests on to a
// service — keytool proxy --enroll does so with an authorized key's
// connections, the enrollment request included — and the secret must
// not go there: the invitation would stay pending for whoever reads what
// that service receives (TestSecretNotSentToTheService).
const probePath = "/.well-known/keytool/probe"

// post makes one enrollment request to addr, once a probe (probePath)
// has shown that its requests reach keytool's enrollment gate.
func post(ctx context.Context, id *tlsbridge.Identity, tok Token, addr string) (*Result, *jwk.Key, error) {
	check := &tokenHosts{want: tok.Server}
	client, err := tlsbridge.NewClient(id, tlsbridge.ClientOptions{Hosts: check, Policy: tlsbridge.Strict, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, nil, err
	}
	tr := client.Transport()
	tr.Proxy = nil // a proxy must not get between the token's check and the server
	tr.DisableKeepAlives = true
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	actx, cancel := context.WithTimeout(ctx, AttemptTimeout)
	defer cancel()
	probe, err := send(actx, hc, check, id, tok, addr, http.MethodGet, probePath, nil)
	if ne := (*NotEnrollmentError)(nil); errors.As(err, &ne) {
		ne.Probe = true
		err = refusedAfter(actx, client, check, id, tok, addr, err)
	}
	if err != nil {
		return nil, nil, err
	}
	if !gateAnswer(probe, id) {
		return nil, nil, &NotEnrollmentError{Addr: addr, ServerFingerprint: tok.ServerFingerprint(), Status: probe.Status, Probe: true}
	}
	body, _ := json.Marshal(Request{Name: tok.Name, Secret: base64.RawURLEncoding.EncodeToString(tok.Secret[:])}) // cannot fail
	resp, err := send(actx, hc, check, id, tok, addr, http.MethodPost, Path, body)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, nil, &NotEnrollmentError{Addr: addr, ServerFingerprint: tok.ServerFingerprint(), Err: fmt.Errorf("reading the answer: %w", err)}
	}
	var ans Response
	if err := json.Unmarshal(data, &ans); err != nil || (resp.StatusCode != http.StatusOK && ans.Reason == "") {
		return nil, nil, &NotEnrollmentError{Addr: addr, ServerFingerprint: tok.ServerFingerprint(), Status: resp.Status}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, &RefusedError{Addr: addr, Name: tok.Name, Status: resp.StatusCode, Reason: ans.Reason, Message: ans.Error}
	}
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return nil, nil, errors.New("enroll: the answer came without the server's certificate") // unreachable over TLS
	}
	leaf := resp.TLS.PeerCertificates[0]
	if sha256.Sum256(leaf.RawSubjectPublicKeyInfo) != tok.Server {
		return nil, nil, &InterceptionError{Addr: addr, Want: tok.ServerFingerprint(), Got: jwk.FormatFingerprint(sha256.Sum256(leaf.RawSubjectPublicKeyInfo))}
	}
	serverKey, err := jwk.NewPublicKey(leaf.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("enroll: the server's key: %w", err)
	}
	res := &Result{Name: ans.Name, ServerFingerprint: serverKey.Fingerprint(), ClientFingerprint: ans.ClientFingerprint}
	if res.Name == "" {
		res.Name = tok.Name
	}
	if res.ClientFingerprint != id.Key.Fingerprint() {
		return res, nil, &KeyMismatchError{Addr: addr, Authorized: ans.ClientFingerprint, Client: id.Key.Fingerprint()}
	}
	return res, serverKey, nil
}

// send makes one request of post to addr, through hc, whose host check
// is check, and sorts its failures: an address that could not be
// reached, another key (interception), this client's key refused in the
// handshake, or a request that got no answer.
func send(ctx context.Context, hc *http.Client, check *tokenHosts, id *tlsbridge.Identity, tok Token, addr, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, &unreachable{err}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	seen, intercepted := check.state()
	if intercepted != nil {
		if err == nil {
			resp.Body.Close()
		}
		return nil, intercepted
	}
	if err != nil {
		if !seen {
			return nil, &unreachable{unwrapURL(err)}
		}
		if tlsbridge.IsRemoteAlert(err) {
			return nil, &HandshakeRefusedError{Addr: addr, ServerFingerprint: tok.ServerFingerprint(), ClientFingerprint: id.Key.Fingerprint(), Err: unwrapURL(err)}
		}
		var ne net.Error
		timeout := errors.As(err, &ne) && ne.Timeout()
		return nil, &NotEnrollmentError{Addr: addr, ServerFingerprint: tok.ServerFingerprint(), Err: unwrapURL(err), Timeout: timeout}
	}
	return resp, nil
}

// alertWait bounds how long readAlert waits for the server's alert.
const alertWait = 2 * time.Second

// refusedAfter is the error of a probe that failed after the handshake
// without an alert (err, a *NotEnrollmentError): a *HandshakeRefusedError
// where the server, dialled again (readAlert), refuses this client's key
// in the handshake; an interception where another key answers that dial;
// else err. Only the probe's failure is looked into so: it carries
// nothing, and the token's secret has not been sent. After the
// enrollment request the server may have enrolled this client with an
// answer lost on the way, and no later dial may say "nothing was
// written" in place of that request's own error (found by review,
// 2026-12-04).
func refusedAfter(ctx context.Context, client *tlsbridge.Client, check *tokenHosts, id *tlsbridge.Identity, tok Token, addr string, err error) error {
	refusal := readAlert(ctx, client, addr)
	if _, intercepted := check.state(); intercepted != nil {
		return intercepted
	}
	if refusal == nil {
		return err
	}
	return &HandshakeRefusedError{Addr: addr, ServerFingerprint: tok.ServerFingerprint(), ClientFingerprint: id.Key.Fingerprint(), Err: unwrapURL(refusal)}
}

// readAlert learns whether the server refuses this client's key, where a
// request failed after the handshake without saying so. In TLS 1.3 the
// server decides on the client's certificate after the client's handshake
// is over, so its alert may come while net/http writes the request: the
// transport's read loop gets the alert and closes the connection, the
// write then fails on the closed connection, and the error net/http
// returns is the write's ("use of closed network connection"), the alert
// lost. readAlert dials again with the same identity, sends nothing, and
// reads what the server says first: its alert, or nil where none comes
// within alertWait (nothing is known, and the request's own error
// stands). The handshake goes through client's host check as the
// request's did: another key than the token's is an interception, which
// send reports.
func readAlert(ctx context.Context, client *tlsbridge.Client, addr string) error {
	if ctx.Err() != nil {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, alertWait)
	defer cancel()
	conn, err := client.DialContext(actx, "tcp", addr)
	if err != nil {
		if tlsbridge.IsRemoteAlert(err) {
			return err
		}
		return nil
	}
	defer conn.Close()
	deadline, _ := actx.Deadline()
	conn.SetReadDeadline(deadline)
	if _, err := conn.Read(make([]byte, 1)); err != nil && tlsbridge.IsRemoteAlert(err) {
		return err
	}
	return nil
}

// gateAnswer reads and closes the answer to the probe (probePath), and
// reports whether it is keytool's 403 to a client it does not admit
// (tlsbridge.ForbiddenBody, or the body of earlier versions): a reason,
// and the fingerprint of this client's key, id's — this client's
// requests reach keytool's enrollment gate, not a service.
func gateAnswer(resp *http.Response, id *tlsbridge.Identity) bool {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil || resp.StatusCode != http.StatusForbidden {
		return false
	}
	var body struct {
		Reason      string `json:"reason"`
		Fingerprint string `json:"fingerprint"`
	}
	return json.Unmarshal(data, &body) == nil && body.Reason != "" && body.Fingerprint == id.Key.Fingerprint()
}

// verifyOthers finds where else than addr, the address Join enrolled
// through, the server presents the token's key: the addresses tried before
// could not be reached (attempts); each one after is tried now, at once,
// with a handshake that accepts only the token's key and sends nothing.
// It returns the addresses where the key was seen, addr included, and puts
// the others in res.Unverified, in the token's order.
func verifyOthers(ctx context.Context, id *tlsbridge.Identity, tok Token, addr string, attempts []Attempt, res *Result, logger *slog.Logger) map[string]bool {
	failed := map[string]error{addr: nil}
	for _, a := range attempts {
		failed[a.Addr] = a.Err
	}
	var probes []string // each address once, even if the token names it twice
	for _, a := range tok.Addresses {
		if _, tried := failed[a]; !tried {
			failed[a] = nil
			probes = append(probes, a)
		}
	}
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, a := range probes {
		wg.Go(func() { errs[i] = probe(ctx, id, tok, a) })
	}
	wg.Wait()
	for i, a := range probes {
		failed[a] = errs[i]
	}
	seen := map[string]bool{}
	for _, a := range tok.Addresses {
		if _, done := seen[a]; done {
			continue
		}
		err := failed[a]
		seen[a] = err == nil
		if err != nil {
			res.Unverified = append(res.Unverified, Attempt{Addr: a, Err: err})
			logger.Info("enrollment address not verified: not pinned", "addr", a, "error", oneLine(err.Error()))
		}
	}
	return seen
}

// probe makes one TLS handshake with addr, accepting only the token's key,
// and sends nothing: nil means the server's key was seen there, in a
// completed handshake (which proves the server holds the private key; a
// certificate alone is not enough).
func probe(ctx context.Context, id *tlsbridge.Identity, tok Token, addr string) error {
	check := &tokenHosts{want: tok.Server}
	client, err := tlsbridge.NewClient(id, tlsbridge.ClientOptions{Hosts: check, Policy: tlsbridge.Strict, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	conn, err := client.DialContext(pctx, "tcp", addr)
	if conn != nil {
		conn.Close()
	}
	seen, intercepted := check.state()
	switch {
	case intercepted != nil:
		return intercepted
	case err != nil:
		return err
	case !seen:
		return errors.New("enroll: the handshake showed no server key") // not with a certificate check
	}
	return nil
}

// pinSeen pins the server's key for each address of the token where it
// was seen, in the token's order.
func pinSeen(res *Result, tok Token, serverKey *jwk.Key, hosts tlsbridge.HostKeys, seen map[string]bool) error {
	for _, a := range tok.Addresses {
		if !seen[a] {
			continue
		}
		already := hosts.Decide(a, tok.Server).Verdict == knownhosts.Pinned
		file, err := hosts.Add(a, serverKey)
		if err != nil {
			return &PinError{Name: res.Name, Addr: a, Fingerprint: tok.ServerFingerprint(), Err: err}
		}
		res.Pins = append(res.Pins, Pin{Addr: a, File: file, New: !already})
		seen[a] = false // a token may name an address twice
	}
	return nil
}

// unwrapURL drops net/http's "Post "https://…": " wrapper.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
