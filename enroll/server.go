package enroll

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/faillog"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// Path is the enrollment endpoint: clients POST a Request to it.
const Path = "/.well-known/keytool/join"

// Request is what a client posts to Path. The client's key is not in it:
// it is the key the client proved it holds in the TLS handshake.
type Request struct {
	Name   string `json:"name"`
	Secret string `json:"secret"` // base64url, no padding, of the token's 32-byte secret
}

// Reason says why an enrollment was refused, in Response.Reason.
type Reason string

// The reasons, each with its own HTTP status.
const (
	ReasonExpired          Reason = "expired"               // 410 Gone
	ReasonAlreadyUsed      Reason = "already_used"          // 409 Conflict
	ReasonUnknown          Reason = "unknown_invitation"    // 404 Not Found: removed, or never made here
	ReasonWrongSecret      Reason = "wrong_secret"          // 403 Forbidden
	ReasonRateLimited      Reason = "rate_limited"          // 429 Too Many Requests, with Retry-After
	ReasonBadRequest       Reason = "bad_request"           // 400 Bad Request
	ReasonNoCertificate    Reason = "no_client_certificate" // 401 Unauthorized
	ReasonNotEnrollable    Reason = "not_enrollable"        // 422: the key or name cannot be added (already authorized, name taken, revoked)
	ReasonInternal         Reason = "internal"              // 500
	ReasonMethodNotAllowed Reason = "method_not_allowed"    // 405
)

var reasonStatus = map[Reason]int{
	ReasonExpired:          http.StatusGone,
	ReasonAlreadyUsed:      http.StatusConflict,
	ReasonUnknown:          http.StatusNotFound,
	ReasonWrongSecret:      http.StatusForbidden,
	ReasonRateLimited:      http.StatusTooManyRequests,
	ReasonBadRequest:       http.StatusBadRequest,
	ReasonNoCertificate:    http.StatusUnauthorized,
	ReasonNotEnrollable:    http.StatusUnprocessableEntity,
	ReasonInternal:         http.StatusInternalServerError,
	ReasonMethodNotAllowed: http.StatusMethodNotAllowed,
}

// Response is the JSON body of every answer of the endpoint, as Request
// is that of what the client sends: on success Name and both
// fingerprints; on failure Error (for people) and Reason (for programs).
type Response struct {
	Name              string `json:"name,omitempty"`
	ClientFingerprint string `json:"client_fingerprint,omitempty"`
	ServerFingerprint string `json:"server_fingerprint,omitempty"`
	Error             string `json:"error,omitempty"`
	Reason            Reason `json:"reason,omitempty"`
}

// ClientStore is where enrolled keys are added: *authkeys.Store.
type ClientStore interface {
	Add(k *jwk.Key, name string, mode authkeys.AddMode) (*authkeys.Entry, error)
}

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	// Dir is the invitations directory (InvitesDir(home)). Required. Its
	// parent is taken as the keytool home: the invitation files, Dir,
	// Dir/used and every directory up to the home must pass the
	// strict-modes rule (package trustfile), or no invitation is honoured.
	Dir string
	// Clients receives the enrolled keys (the home's authorized keys).
	// Required.
	Clients ClientStore
	// ServerKey is the server's identity, named in answers. Required.
	ServerKey *jwk.Key
	// Logger receives one record per attempt, except the attempts the
	// limits refuse: the first of a source is logged in full, the next
	// ones counted, a line per 10 s (repeated=N), and the counts still
	// pending by Handler.Close. Nil discards them.
	Logger *slog.Logger
	// Limits bound failed attempts; zero fields take the defaults.
	Limits Limits
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handler is the server side of enrollment, an http.Handler for Path. It
// must be served over TLS by a tlsbridge.Server in AllowUnknown mode, so
// that a client whose key is not authorized yet completes the handshake:
// the handshake proved the client holds its key, and the handler adds that
// key, never one named in the request.
//
// Requests to other paths get 403 with tlsbridge.ForbiddenBody (reason
// tlsbridge.ReasonNotAuthorized), so that
// Handler can serve whole connections of unauthenticated clients (see
// ServeConn).
type Handler struct {
	opts HandlerOptions
	lim  *limiter
	now  func() time.Time
	log  *slog.Logger
	// limited folds the refusals by the limiter: the first of a source
	// in full, then a count per interval (faillog). They cost the peer
	// nothing — no failure is charged — so that a line each would be a
	// line per request of a keep-alive connection (per stream in h2).
	limited *faillog.Log
}

// NewHandler returns the enrollment handler.
func NewHandler(opts HandlerOptions) (*Handler, error) {
	if opts.Dir == "" || opts.Clients == nil || opts.ServerKey == nil {
		return nil, errors.New("enroll: HandlerOptions needs Dir, Clients and ServerKey")
	}
	h := &Handler{opts: opts, lim: newLimiter(opts.Limits), now: opts.Now, log: opts.Logger}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.limited = faillog.New(h.log)
	return h, nil
}

// Close logs the refusals by the limits that are counted and not logged
// yet, which would otherwise be logged when their interval ends (10 s
// after the last line of their source): a timer, lost if the process
// exits first. Call it once the server has stopped serving — keytool
// proxy does after its drain. The handler still works after it: later
// refusals are logged and counted as before, the first of a source in
// full again. It returns nil; it is an io.Closer so that a server
// holding the handler as an http.Handler can find it.
func (h *Handler) Close() error {
	h.limited.Flush()
	return nil
}

// refusal is a failed attempt: the reason, the message for the client,
// and whether it counts against the rate limits.
type refusal struct {
	reason Reason
	msg    string
	count  bool
}

func refuse(reason Reason, format string, args ...any) *refusal {
	return &refusal{reason: reason, msg: fmt.Sprintf(format, args...), count: reason != ReasonInternal}
}

// msgRefused is the log message of a refused attempt.
const msgRefused = "enrollment refused"

// maxRequest bounds the request body.
const maxRequest = 4 << 10

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != Path {
		h.forbidden(w, r)
		return
	}
	now := h.now()
	remote := remoteOf(r)
	attrs := remoteAttrs(r, remote)
	var clientKey *jwk.Key
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		if k, err := jwk.NewPublicKey(r.TLS.PeerCertificates[0].PublicKey); err == nil {
			clientKey = k
			attrs = append(attrs, "client_fingerprint", k.Fingerprint())
		}
	}
	// The attempt counts as a failure while it is examined, and is
	// charged if it fails when it ends (Limits says why).
	at, wait, global := h.lim.admit(remote, now)
	if at == nil {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		attrs = append(attrs, "reason", ReasonRateLimited, "retry_after", secs)
		if global {
			// Everyone's failures are used up: a refusal is no
			// source's doing, and one line per source would be a line
			// per /64 of whoever used them up (docs/enrollment.md).
			h.limited.FailedAll(slog.LevelWarn, msgRefused, "reason", string(ReasonRateLimited), append(attrs, "limit", "global")...)
		} else {
			h.limited.Failed(remote, slog.LevelWarn, msgRefused, "reason", string(ReasonRateLimited), attrs...)
		}
		h.answer(w, Response{Reason: ReasonRateLimited, Error: fmt.Sprintf("too many failed enrollment attempts from this address (or from everyone): try again in %d seconds", secs)})
		return
	}
	ended := false
	defer func() {
		if !ended { // serve panicked: charged as a failure, and no longer in progress
			h.lim.end(at, h.now(), true)
		}
	}()
	var req Request
	ans, name, ref := h.serve(w, r, clientKey, &req)
	if name != "" {
		attrs = append(attrs, "invitation", name)
	}
	// Ended before the answer, so that a client's next attempt, sent
	// once it has this one's answer, does not find it still in progress.
	ended = true
	h.lim.end(at, h.now(), ref != nil && ref.count)
	if ref != nil {
		h.log.Warn(msgRefused, append(attrs, "reason", ref.reason, "detail", ref.msg)...)
		h.answer(w, Response{Reason: ref.reason, Error: ref.msg})
		return
	}
	h.log.Info("enrolled", append(attrs, "name", ans.Name, "server_fingerprint", ans.ServerFingerprint)...)
	h.answer(w, ans)
}

// serve does the work of one POST; the name returned is the invitation
// named in the request, for the log, once it is known to be valid.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, clientKey *jwk.Key, req *Request) (Response, string, *refusal) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return Response{}, "", refuse(ReasonMethodNotAllowed, "use POST %s", Path)
	}
	if clientKey == nil {
		return Response{}, "", refuse(ReasonNoCertificate, "no usable client certificate: enrollment needs the client's key in the TLS handshake")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequest))
	if err != nil {
		return Response{}, "", refuse(ReasonBadRequest, "reading the request: %v", err)
	}
	// The invitation is checked, and used, as of now: a body sent slowly,
	// or long after the request began (a server without a read timeout),
	// must not use an invitation that expired meanwhile.
	now := h.now()
	name, sum, ref := decodeRequest(body, req)
	if ref != nil {
		return Response{}, name, ref
	}
	if err := checkDir(h.opts.Dir); err != nil {
		h.log.Error("invitations directory refused", "error", err.Error())
		return Response{}, name, refuse(ReasonInternal, "the server cannot read its invitations; its log says why")
	}

	pending := filepath.Join(h.opts.Dir, name+".json")
	inv, err := readInvite(inviteRule(h.opts.Dir), pending)
	if errors.Is(err, fs.ErrNotExist) {
		return Response{}, name, h.notPending(name, sum)
	}
	if err != nil {
		h.log.Error("invitation unreadable", "file", pending, "error", err.Error())
		return Response{}, name, refuse(ReasonInternal, "the server cannot read invitation %q; its log says why", name)
	}
	if !secretMatches(inv, sum) {
		return Response{}, name, wrongSecret(name)
	}
	if !now.Before(inv.Expires) {
		return Response{}, name, refuse(ReasonExpired, "invitation %q expired at %s; ask the server's administrator for a new token",
			name, inv.Expires.UTC().Format(time.RFC3339))
	}

	if testHookBeforeClaim != nil {
		testHookBeforeClaim()
	}
	// Claim: exactly one rename of the pending file succeeds, across
	// goroutines and processes. The winner adds the key; a failure puts
	// the invitation back.
	claim, err := h.claim(pending, name)
	if errors.Is(err, fs.ErrNotExist) {
		return Response{}, name, refuse(ReasonAlreadyUsed, "invitation %q was already used: a token works once; ask for a new one", name)
	}
	if err != nil {
		h.log.Error("claiming an invitation", "file", pending, "error", err.Error())
		return Response{}, name, refuse(ReasonInternal, "the server could not claim invitation %q; its log says why", name)
	}
	// What was claimed is the file of that name when the rename ran, not
	// necessarily the one checked above: an invitation removed and made
	// again under the same name in between (invite --remove, then invite)
	// would otherwise be claimed by the old token. So the claim is
	// checked as the pending file was, and put back if it fails.
	if got, err := readInvite(inviteRule(h.opts.Dir), claim); err != nil || !secretMatches(got, sum) || !now.Before(got.Expires) {
		h.unclaim(claim, pending)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			h.log.Error("claimed invitation unreadable", "file", claim, "error", err.Error())
		}
		return Response{}, name, wrongSecret(name)
	}
	entry, err := h.opts.Clients.Add(clientKey, name, authkeys.AddNew)
	if err != nil {
		return Response{}, name, h.notAdded(err, claim, pending, name, clientKey)
	}
	inv.Used = now.UTC()
	inv.ClientFingerprint = clientKey.Fingerprint()
	usedPath := filepath.Join(h.opts.Dir, usedDir, name+".json")
	if data, err := inv.marshal(); err == nil {
		if err := atomicfile.Write(usedPath, data, 0o600); err != nil {
			h.log.Error("recording a used invitation", "file", usedPath, "error", err.Error())
		}
	}
	_ = os.Remove(claim) // the record (or, failing that, the claim's removal) is what is left
	return Response{Name: entry.Name, ClientFingerprint: clientKey.Fingerprint(), ServerFingerprint: h.opts.ServerKey.Fingerprint()}, name, nil
}

// notAdded puts back the invitation claimed (claim, of pending) for a
// key the store would not add (err), and says why to the client.
func (h *Handler) notAdded(err error, claim, pending, name string, clientKey *jwk.Key) *refusal {
	// The client is told what became of its token: kept for another
	// try, or used up (unclaim could not put it back: see there).
	restored := h.unclaim(claim, pending)
	const usedUp = "the invitation is used up all the same (the server could not keep it for another try)"
	var exists *authkeys.NameExistsError
	var already *authkeys.AlreadyAuthorizedError
	var revoked *authkeys.RevokedError
	switch {
	case errors.As(err, &exists):
		fate := "the invitation is unchanged"
		if !restored {
			fate = usedUp
		}
		return refuse(ReasonNotEnrollable, "the server already has another key named %q; %s, and its administrator must remove that key or invite under another name",
			name, fate)
	case errors.As(err, &already):
		fate := "the invitation was not used"
		if !restored {
			fate = usedUp
		}
		return refuse(ReasonNotEnrollable, "this client's key %s is already authorized on the server; %s", clientKey.Fingerprint(), fate)
	case errors.As(err, &revoked):
		return refuse(ReasonNotEnrollable, "this client's key %s is revoked on the server", clientKey.Fingerprint())
	}
	h.log.Error("adding an enrolled key", "invitation", name, "error", err.Error())
	return refuse(ReasonInternal, "the server could not add this client's key; its log says why")
}

// testHookBeforeClaim, if set, runs between the check of a pending
// invitation and its claim (tests: an invitation replaced in between).
var testHookBeforeClaim func()

// decodeRequest parses and checks a request body (read from the network:
// anything may be in it) into req. It returns the invitation's name and
// the SHA-256 of the secret, or a refusal (ReasonBadRequest); the name is
// returned with a refusal only once it is valid (a bad secret), for the log.
func decodeRequest(body []byte, req *Request) (name string, sum [32]byte, ref *refusal) {
	if err := json.Unmarshal(body, req); err != nil {
		return "", sum, refuse(ReasonBadRequest, "the request is not JSON {\"name\":…,\"secret\":…}: %v", err)
	}
	if err := keydir.CheckName(req.Name); err != nil {
		return "", sum, refuse(ReasonBadRequest, "%v", err)
	}
	name = req.Name
	secret, err := base64.RawURLEncoding.DecodeString(req.Secret)
	if err != nil || len(secret) != SecretSize {
		return name, sum, refuse(ReasonBadRequest, "the secret is not %d bytes of base64url", SecretSize)
	}
	sum = sha256.Sum256(secret)
	clear(secret)
	return name, sum, nil
}

// wrongSecret refuses a token whose secret is not invitation name's.
func wrongSecret(name string) *refusal {
	return refuse(ReasonWrongSecret, "the token's secret does not match invitation %q: the token is not the one made for this invitation", name)
}

func secretMatches(inv *Invitation, sum [32]byte) bool {
	want, err := base64.RawURLEncoding.DecodeString(inv.SecretSHA256)
	return err == nil && subtle.ConstantTimeCompare(want, sum[:]) == 1
}

// notPending tells an invitation that was used (or is being used) from
// one that does not exist. Whether it was used is said only to whoever
// holds its secret.
func (h *Handler) notPending(name string, sum [32]byte) *refusal {
	candidates := append(claimsOf(h.opts.Dir, name), filepath.Join(h.opts.Dir, usedDir, name+".json"))
	other := false // a file of that name, for another secret: a later invitation's claim, or an earlier one's record
	for _, p := range candidates {
		inv, err := readInvite(inviteRule(h.opts.Dir), p)
		if err != nil {
			continue
		}
		if !secretMatches(inv, sum) {
			other = true
			continue
		}
		if inv.Used.IsZero() {
			return refuse(ReasonAlreadyUsed, "invitation %q is being used by another client right now: a token works once", name)
		}
		return refuse(ReasonAlreadyUsed, "invitation %q was already used, at %s: a token works once; ask for a new one", name, inv.Used.UTC().Format(time.RFC3339))
	}
	if other {
		return refuse(ReasonWrongSecret, "the token's secret does not match invitation %q", name)
	}
	return refuse(ReasonUnknown, "this server has no invitation named %q: it was removed, or never made here", name)
}

// claimsOf returns the claims in progress of the invitation name in the
// invitations directory dir (see claim): the files of that name exactly,
// not those of a name that starts with it and a dot.
func claimsOf(dir, name string) []string {
	prefix := "." + name + "."
	paths, _ := filepath.Glob(filepath.Join(dir, usedDir, globEscape(prefix)+"*.claim"))
	var out []string
	for _, p := range paths {
		tag := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), prefix), ".claim")
		if _, err := hex.DecodeString(tag); err == nil && len(tag) == 2*claimTagSize {
			out = append(out, p)
		}
	}
	return out
}

func globEscape(s string) string {
	return strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`).Replace(s)
}

// claimTagSize is the number of random bytes that make a claim's file
// name unique.
const claimTagSize = 8

// claim renames the pending invitation to a unique claim file in used/.
func (h *Handler) claim(pending, name string) (string, error) {
	var r [claimTagSize]byte
	_, _ = rand.Read(r[:])
	claim := filepath.Join(h.opts.Dir, usedDir, "."+name+"."+hex.EncodeToString(r[:])+".claim")
	if err := os.MkdirAll(filepath.Dir(claim), 0o700); err != nil {
		return "", err
	}
	if err := os.Rename(pending, claim); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) && errors.Is(le.Err, fs.ErrNotExist) {
			return "", fs.ErrNotExist
		}
		return "", err
	}
	return claim, nil
}

// unclaim puts a claimed invitation back, unless an invitation of the
// same name was made meanwhile, or it was revoked meanwhile (RevokeInvite
// deletes the claim). It holds the invitations' lock while it does, so
// that a revocation finds the invitation either claimed or put back,
// never between (see RevokeInvite). Where the lock cannot be had, the
// invitation is not put back — the failed attempt used it up — since a
// revocation might be under way: fail closed. It reports whether the
// invitation is pending again.
func (h *Handler) unclaim(claim, pending string) bool {
	if testHookUnclaim != nil {
		testHookUnclaim()
	}
	unlock, held, err := lockInvites(h.opts.Dir)
	if err != nil || !held {
		_ = os.Remove(claim)
		reason := "this file system has no locks (flock)"
		if err != nil {
			reason = err.Error()
		}
		h.log.Error("invitation not restored after a failed enrollment: it could not be locked against a revocation", "file", pending, "error", reason)
		return false
	}
	defer unlock()
	err = os.Link(claim, pending)
	if errors.Is(err, fs.ErrNotExist) {
		h.log.Info("invitation revoked during a failed enrollment: not restored", "file", pending)
		return false
	}
	if err != nil && !errors.Is(err, fs.ErrExist) {
		h.log.Error("restoring an invitation after a failed enrollment", "file", pending, "error", err.Error())
		return false
	}
	_ = os.Remove(claim)
	return err == nil // else an invitation made anew under the name is pending, not this one
}

// testHookUnclaim, if set, runs as unclaim starts, before it takes the
// invitations' lock (tests: a failed enrollment while RevokeInvite holds it).
var testHookUnclaim func()

func (h *Handler) answer(w http.ResponseWriter, a Response) {
	status := http.StatusOK
	if a.Reason != "" {
		status = reasonStatus[a.Reason]
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(a) // the client may be gone; nothing to do
}

// forbidden answers requests to other paths as tlsbridge's
// RequireAuthenticated does: the client's key is not authorized (it is
// enrolling, or could), with nothing about the server.
func (h *Handler) forbidden(w http.ResponseWriter, r *http.Request) {
	tlsbridge.WriteForbidden(w, tlsbridge.ReasonNotAuthorized, clientSPKIHash(r.TLS))
}

// clientSPKIHash is the SHA-256 of the client's SubjectPublicKeyInfo, for
// a refusal to name its key, or nil without a client certificate.
func clientSPKIHash(state *tls.ConnectionState) *[32]byte {
	if state == nil || len(state.PeerCertificates) == 0 {
		return nil
	}
	sum := sha256.Sum256(state.PeerCertificates[0].RawSubjectPublicKeyInfo)
	return &sum
}

// remoteOf is the address the rate limits count r's attempt against:
// that of its connection, which tlsbridge.ConnContext recorded — never
// r.RemoteAddr, which middleware may set from X-Forwarded-For, so that
// a client writing a new one with each attempt would have a fresh
// address each time. Without the hook it is the zero Addr for every
// request: all of them count against one address (fail closed).
func remoteOf(r *http.Request) netip.Addr {
	a, _ := tlsbridge.RemoteAddrFromContext(r.Context())
	return a
}

// remoteAttrs is the log's "remote" for r, whose connection's address is
// remote (remoteOf): r.RemoteAddr, port and all, when it is that address;
// otherwise the connection's, and what r.RemoteAddr claims beside it
// ("remote_claimed") — middleware sets it from the client's headers, and
// the log must not name a host of the client's choosing as the one that
// tried.
func remoteAttrs(r *http.Request, remote netip.Addr) []any {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil && ap.Addr().Unmap() == remote {
		return []any{"remote", r.RemoteAddr}
	}
	if !remote.IsValid() { // no tlsbridge.ConnContext: nothing better to say
		return []any{"remote", r.RemoteAddr}
	}
	return []any{"remote", remote.String(), "remote_claimed", r.RemoteAddr}
}
