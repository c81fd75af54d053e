package enroll

import (
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
	"sync"
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
	ReasonWrongSecret      Reason = "wrong_secret"          // 403 Forbidden; logged, answered as ReasonUnknown (see notOpened)
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

	unlockedMu     sync.Mutex
	unlockedLogged int // of the store's Unlocked, those logged (logUnlocked)
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
	// told, if set, is what the client is answered instead of reason
	// and msg, which the log keeps for the administrator (notOpened).
	told *Response
	// fault, if set, is the server's own failure behind the refusal,
	// logged as faultMsg (serverFault) instead of the refusal's line.
	fault    error
	faultMsg string
}

// serverFault is the refusal of an attempt that met the server's own
// fault: msg is the log's message, err why. Every attempt meets it until
// the administrator fixes it, from any peer, uncharged (the client did
// nothing wrong: TestRateLimitOnlyFailuresCount), so that its lines are
// folded (ServeHTTP), or any peer could write the log at line rate.
func serverFault(msg string, err error, format string, args ...any) *refusal {
	ref := refuse(ReasonInternal, format, args...)
	ref.fault, ref.faultMsg = err, msg
	return ref
}

// response is the answer to the client of a refused attempt.
func (r *refusal) response() Response {
	if r.told != nil {
		return *r.told
	}
	return Response{Reason: r.reason, Error: r.msg}
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
		if ref.fault != nil {
			// The server's fault, which every attempt meets, at the rate
			// any peer likes (mostly uncharged): one line in full, then a count
			// per interval (faillog) — as one source's, all: no peer's
			// doing, and each /64 of a /48 would otherwise have its first
			// line in full. The line in full is the refusal's too.
			h.limited.FailedAll(slog.LevelError, ref.faultMsg, "error", ref.fault.Error(),
				append(attrs, "error", ref.fault.Error(), "reason", ref.reason, "detail", ref.msg)...)
		} else {
			h.log.Warn(msgRefused, append(attrs, "reason", ref.reason, "detail", ref.msg)...)
		}
		h.answer(w, ref.response())
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
		return Response{}, name, serverFault("invitations directory refused", err, "the server cannot read its invitations; its log says why")
	}

	pending := filepath.Join(h.opts.Dir, name+".json")
	inv, err := readInvite(inviteRule(h.opts.Dir), pending)
	if errors.Is(err, fs.ErrNotExist) {
		return Response{}, name, h.notPending(name, sum)
	}
	if err != nil {
		// Answered as a name never made (notOpened), not charged: a
		// refusal of its own (a 500 naming it) would tell any peer trying
		// names which one the server holds. The token's holder is told
		// it is unknown too; the log says why (docs/enrollment.md).
		return Response{}, name, notOpened(serverFault("invitation unreadable", err, "the server cannot read invitation %q; its log says why", name), name)
	}
	if inv.Name != name {
		// Another spelling of the name opened the file (a file system
		// that ignores case or normalization): the entry would be named
		// as the client spelt it, not as invited. Told as a name never
		// made, and charged (TestEntryNameIsTheInvitations).
		return Response{}, name, notOpened(refuse(ReasonUnknown, "invitation file %s holds invitation %q, not %q (a file system that ignores case or normalization)", pending, inv.Name, name), name)
	}
	if !secretMatches(inv, sum) {
		// A new invitation of the name may be pending while the token
		// of an earlier one, used, is presented again.
		if ref := h.usedBefore(name, sum); ref != nil {
			return Response{}, name, ref
		}
		return Response{}, name, wrongSecret(name)
	}
	if !now.Before(inv.Expires) {
		return Response{}, name, refuse(ReasonExpired, "invitation %q expired at %s; ask the server's administrator for a new token",
			name, inv.Expires.UTC().Format(time.RFC3339))
	}

	if testHookBeforeClaim != nil {
		testHookBeforeClaim()
	}
	// Claim: of the clients presenting the token at once, in one process
	// or several, exactly one links the pending file under the claim's
	// name, which the secret gives (claimPath); the others find it there.
	// The invitation stays pending meanwhile: a failure gives it back by
	// removing its claim, and nothing ever puts an invitation back, so
	// that no revocation can be undone (RevokeInvite), with or without
	// the invitations' lock.
	claim, err := h.claim(pending, name, sum)
	if errors.Is(err, fs.ErrExist) {
		return Response{}, name, beingUsed(name)
	}
	if errors.Is(err, fs.ErrNotExist) { // used, or removed, since it was read
		return Response{}, name, h.notPending(name, sum)
	}
	if err != nil { // folded, as every fault of the server (ServeHTTP)
		return Response{}, name, serverFault("claiming an invitation", err, "the server could not claim invitation %q; its log says why", name)
	}
	// What was claimed is the file of that name when the link was made,
	// not necessarily the one checked above: an invitation removed and
	// made again under the same name in between (invite --remove, then
	// invite) would otherwise be claimed by the old token. So the claim
	// is checked as the pending file was, and given up if it fails.
	if got, err := readInvite(inviteRule(h.opts.Dir), claim); err != nil || !secretMatches(got, sum) || !now.Before(got.Expires) {
		h.release(claim, pending)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			// The server's fault, met by the right token only (its
			// secret opened the pending file, which the claim links):
			// uncharged, as the other faults, or the token's holder
			// retrying would use up its failures and everyone's
			// (TestUnreadableClaimNotCharged); folded (ServeHTTP).
			return Response{}, name, serverFault("claimed invitation unreadable", err, "the server could not read invitation %q once claimed; its log says why", name)
		}
		return Response{}, name, wrongSecret(name)
	}
	// One key under one name, however many tokens a client presents at
	// once: Add checks and writes under a lock of its own (docs/design.md,
	// "Concurrent writers"; TestOneKeyManyTokensAtOnce).
	entry, err := h.opts.Clients.Add(clientKey, name, authkeys.AddNew)
	h.logUnlocked()
	if err != nil {
		return Response{}, name, h.notAdded(err, claim, pending, name, clientKey)
	}
	inv.Used = now.UTC()
	inv.ClientFingerprint = clientKey.Fingerprint()
	h.used(inv, claim, pending)
	return Response{Name: entry.Name, ClientFingerprint: clientKey.Fingerprint(), ServerFingerprint: h.opts.ServerKey.Fingerprint()}, name, nil
}

// unlockedStore is a ClientStore that says why its Adds went ahead
// without the directory's lock (*authkeys.Store: keydir.Lifecycle.Unlocked).
type unlockedStore interface {
	Unlocked() []*keydir.UnlockedError
}

// logUnlocked logs, once each, why the store's Adds went ahead without
// the directory's lock (keydir.UnlockedError: a lock file others may
// open, another user's…), as keytool's commands warn of it: another
// writer at the same moment — an admin's authorize --remove — could
// undo one of the two edits (docs/design.md, "Concurrent writers"). The
// enrollment is not refused for it.
func (h *Handler) logUnlocked() {
	s, ok := h.opts.Clients.(unlockedStore)
	if !ok {
		return
	}
	h.unlockedMu.Lock()
	defer h.unlockedMu.Unlock()
	all := s.Unlocked() // each once, in the order met: the list only grows
	for _, u := range all[min(h.unlockedLogged, len(all)):] {
		h.log.Warn("adding clients without the directory's lock", "error", u.Error())
	}
	h.unlockedLogged = max(h.unlockedLogged, len(all))
}

// used ends the claim (of pending) of the invitation inv, used: its
// record is written in used/, the pending file removed, then the claim.
// Where the pending file cannot be removed the claim stays, and keeps
// the invitation from being claimed again (a token works once).
//
// The pending file is removed only if it is the one claimed (or one of
// its secret, should the claim be gone): another invitation of the name
// may be pending in its place if this one was revoked, or pruned,
// meanwhile. The check and the removal are made under the invitations'
// lock, which RevokeInvite and PruneInvites hold: no invitation can be
// removed, so none made, in between. Where flock(2) is not available
// they are not (docs/enrollment.md): an invite --remove and an invite of
// the same name in that instant lose the new invitation, whose token is
// then told it is unknown. Where the lock fails the invitation is left
// claimed (fail closed: it cannot be used again until it is removed).
func (h *Handler) used(inv *Invitation, claim, pending string) {
	usedPath := filepath.Join(h.opts.Dir, usedDir, inv.Name+".json")
	if data, err := inv.marshal(); err == nil {
		if err := atomicfile.Write(usedPath, data, 0o600); err != nil {
			h.log.Error("recording a used invitation", "file", usedPath, "error", err.Error())
		}
	}
	unlock, _, err := lockInvites(h.opts.Dir)
	if err != nil {
		h.log.Error("removing a used invitation: the invitations cannot be locked; its claim is left, which keeps it from being used again", "file", pending, "error", err.Error())
		return
	}
	defer unlock()
	if claimed(claim, pending) || sameSecret(h.opts.Dir, pending, inv) {
		if testHookUsed != nil {
			testHookUsed()
		}
		if err := os.Remove(pending); err != nil && !errors.Is(err, fs.ErrNotExist) {
			h.log.Error("removing a used invitation: its claim is left, which keeps it from being used again", "file", pending, "error", err.Error())
			return
		}
	}
	_ = os.Remove(claim) // the invitation is no longer pending: nothing is left to guard
}

// testHookUsed, if set, runs in used between the check of the pending
// file and its removal (tests: a revocation and a new invitation then).
var testHookUsed func()

// sameSecret reports whether the invitation at pending, in the
// invitations directory dir, is inv's.
func sameSecret(dir, pending string, inv *Invitation) bool {
	p, err := readInvite(inviteRule(dir), pending)
	return err == nil && p.SecretSHA256 == inv.SecretSHA256
}

// claimed reports whether the pending file is the one claim links.
func claimed(claim, pending string) bool {
	cf, err := os.Lstat(claim)
	if err != nil {
		return false
	}
	pf, err := os.Lstat(pending)
	return err == nil && os.SameFile(cf, pf)
}

// notAdded gives back the invitation claimed (claim, of pending) for a
// key the store would not add (err), and says why to the client.
func (h *Handler) notAdded(err error, claim, pending, name string, clientKey *jwk.Key) *refusal {
	// The client is told what became of its token: kept for another
	// try, or used up (revoked meanwhile, or its claim left: see release).
	restored := h.release(claim, pending)
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
	// Folded (ServeHTTP): the right token meets it at every attempt,
	// uncharged, the invitation given back each time.
	return serverFault("adding an enrolled key", err, "the server could not add this client's key; its log says why")
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

// wrongSecret refuses a token whose secret is not invitation name's; the
// client is told what it would be told of a name never made (notOpened).
func wrongSecret(name string) *refusal {
	return notOpened(refuse(ReasonWrongSecret, "the token's secret does not match invitation %q: the token is not the one made for this invitation", name), name)
}

// notOpened gives ref, the refusal of a token whose secret opens nothing
// of the invitation name — nothing of that name is there, or something of
// another secret is (a pending invitation, a claim, the record of a used
// one) — the one answer of all such tokens: unknown_invitation, the
// same words. It is what a peer that holds no token gets for any name it
// tries, and telling the cases apart would tell it which names the
// server holds: its pending invitations and, by their records, the entry
// names of the clients enrolled (docs/enrollment.md). The log keeps ref's
// reason and detail.
func notOpened(ref *refusal, name string) *refusal {
	ref.told = &Response{Reason: ReasonUnknown,
		Error: fmt.Sprintf("this server has no invitation named %q for this token: it was removed or made again, or never made here", name)}
	return ref
}

func secretMatches(inv *Invitation, sum [32]byte) bool {
	want, err := base64.RawURLEncoding.DecodeString(inv.SecretSHA256)
	return err == nil && subtle.ConstantTimeCompare(want, sum[:]) == 1
}

// notPending tells an invitation that was used (or is being used) from
// one that does not exist. Whether it was used is said only to whoever
// holds its secret; to anyone else, whether anything of the name is
// there is not said at all (notOpened), only logged.
func (h *Handler) notPending(name string, sum [32]byte) *refusal {
	if ref := h.usedBefore(name, sum); ref != nil {
		return ref
	}
	if h.otherOf(name, sum) {
		return notOpened(refuse(ReasonWrongSecret, "the token's secret does not match invitation %q", name), name)
	}
	return notOpened(refuse(ReasonUnknown, "this server has no invitation named %q: it was removed, or never made here", name), name)
}

// usedCandidates are the files that may hold the invitation name other
// than its pending file: its claims in progress and its record in used/.
func (h *Handler) usedCandidates(name string) []string {
	return append(claimsOf(h.opts.Dir, name), filepath.Join(h.opts.Dir, usedDir, name+".json"))
}

// usedBefore is the refusal of a token whose invitation, of secret sum,
// is being used or was used — or nil.
func (h *Handler) usedBefore(name string, sum [32]byte) *refusal {
	for _, p := range h.usedCandidates(name) {
		inv, err := readInvite(inviteRule(h.opts.Dir), p)
		if err != nil || !secretMatches(inv, sum) {
			continue
		}
		if inv.Used.IsZero() {
			return beingUsed(name)
		}
		return refuse(ReasonAlreadyUsed, "invitation %q was already used, at %s: a token works once; ask for a new one", name, inv.Used.UTC().Format(time.RFC3339))
	}
	return nil
}

// beingUsed refuses a token whose invitation is claimed: by another
// client presenting it now — or by a server that stopped while enrolling
// one, whose claim blocks the invitation until its administrator removes
// it (invite --remove), which the client cannot tell apart.
func beingUsed(name string) *refusal {
	return refuse(ReasonAlreadyUsed, "invitation %q is being used, or a server stopped while using it: ask the administrator; a token works once", name)
}

// otherOf reports whether a claim or record of the invitation name is
// there for another secret than sum: a later invitation's claim, or an
// earlier one's record.
func (h *Handler) otherOf(name string, sum [32]byte) bool {
	for _, p := range h.usedCandidates(name) {
		if inv, err := readInvite(inviteRule(h.opts.Dir), p); err == nil && !secretMatches(inv, sum) {
			return true
		}
	}
	return false
}

// claimsOf returns the claims in progress of the invitation name in the
// invitations directory dir (see claim): the files of that name exactly,
// not those of a name that starts with it and a dot.
func claimsOf(dir, name string) []string { return claimsIn(dir)[name] }

// claimsIn is claimsOf of every name, from one listing of dir's used/:
// the claims by invitation name, each ".NAME.TAG.claim" with TAG the hex
// of claimTagSize bytes (so "a" has none of "a.b"'s).
func claimsIn(dir string) map[string][]string {
	ents, _ := os.ReadDir(filepath.Join(dir, usedDir))
	out := map[string][]string{}
	for _, e := range ents {
		base := e.Name()
		if !strings.HasPrefix(base, ".") || !strings.HasSuffix(base, ".claim") {
			continue
		}
		name, ok := claimName(base)
		if !ok {
			continue
		}
		tag := strings.TrimSuffix(base[len("."+name+"."):], ".claim")
		if _, err := hex.DecodeString(tag); err == nil && len(tag) == 2*claimTagSize {
			out[name] = append(out[name], filepath.Join(dir, usedDir, base))
		}
	}
	return out
}

// claimTagSize is the number of bytes of the secret's SHA-256 that name
// a claim (claimPath).
const claimTagSize = 8

// claimPath is the claim of the invitation name of the invitations
// directory dir by the token whose secret's SHA-256 is sum: one name for
// all the clients presenting that token, which only one can make, and
// another for each invitation made under the name.
func claimPath(dir, name string, sum [32]byte) string {
	return filepath.Join(dir, usedDir, "."+name+"."+hex.EncodeToString(sum[:claimTagSize])+".claim")
}

// claim links the pending invitation name to its claim by the token of
// secret sum (claimPath), which exists only while a client presents the
// token: fs.ErrExist if another does, fs.ErrNotExist if nothing is
// pending any more. The pending file stays.
func (h *Handler) claim(pending, name string, sum [32]byte) (string, error) {
	claim := claimPath(h.opts.Dir, name, sum)
	if err := os.MkdirAll(filepath.Dir(claim), 0o700); err != nil {
		return "", err
	}
	if err := os.Link(pending, claim); err != nil {
		var le *os.LinkError
		if errors.As(err, &le) && errors.Is(le.Err, fs.ErrExist) {
			return "", fs.ErrExist
		}
		if errors.As(err, &le) && errors.Is(le.Err, fs.ErrNotExist) {
			return "", fs.ErrNotExist
		}
		return "", err
	}
	return claim, nil
}

// release gives up a claim of pending after a failed enrollment: the
// claim alone is removed, and the invitation is pending again for
// another try — unless it was revoked meanwhile (RevokeInvite removed
// the pending file), which nothing undoes. Nothing is put back, so no
// lock is needed: with or without flock(2), a failed enrollment leaves
// its invitation as it found it. Where the claim cannot be removed it
// stays, and the invitation cannot be claimed until it is revoked: fail
// closed. It reports whether the invitation is pending again.
func (h *Handler) release(claim, pending string) bool {
	pendingAgain := claimed(claim, pending)
	if err := os.Remove(claim); err != nil && !errors.Is(err, fs.ErrNotExist) {
		h.log.Error("invitation left claimed after a failed enrollment: it cannot be used until it is removed and made again", "file", claim, "error", err.Error())
		return false
	}
	if !pendingAgain {
		h.log.Info("invitation revoked during a failed enrollment: not restored", "file", pending)
	}
	return pendingAgain
}

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
