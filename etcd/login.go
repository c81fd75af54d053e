package etcd

import (
	"context"
	"strings"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// authenticateMethod is the gRPC method of etcd's login.
const authenticateMethod = "/etcdserverpb.Auth/Authenticate"

// KeepLogin makes the client that clientv3.New makes from cfg keep its
// login (cfg.Username and Password): call it on cfg before clientv3.New,
// with prefix the Source's Options.Prefix. clientv3 logs in again for
// every gRPC stream it opens (etcd issue 11954: the token may have
// expired meanwhile) — each watch whose stream it does not share with
// another, each watch a Source makes anew after one ended, and each watch
// resumed on a new connection — and a login is a bcrypt check of the
// password on the member and a raft round: 115–338 ms measured at load
// 13–14, 2–4 s with the member under the race detector, for a token most
// likely still good. With KeepLogin, such a login is answered with the
// token of the last one as long as etcd still takes it: a serializable
// read of PREFIX/ with it succeeds, which etcd checks as it checks a
// watch's creation (the token known and not expired, its auth revision
// the current one: no user or role changed since), and which a role that
// may only read the prefix allows. Else — expired, revoked by a change
// to users or roles, the read refused or unanswered — the client logs in,
// as clientv3 would have. Without a user it changes nothing. keytool's
// commands use it for --etcd-user (docs/fleet.md).
func KeepLogin(cfg *clientv3.Config, prefix string) *Login {
	l := &Login{probe: strings.TrimSuffix(prefix, "/") + "/"}
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithChainUnaryInterceptor(l.unary))
	return l
}

// Login is the login a client made with KeepLogin keeps: a unary
// interceptor of the client that answers clientv3's Authenticate
// requests. The read's own refusal of an expired token makes clientv3 log
// in from within it (its retry interceptor, around this one); that login,
// marked by checkingToken, goes to etcd, and the read retried with its
// token vouches for it.
type Login struct {
	probe string
	last  atomic.Pointer[etcdserverpb.AuthenticateResponse] // nil: no login yet
	sent  atomic.Int64
}

// Logins is how many logins (Authenticate requests) the client has sent
// to etcd: one when it dialed, and one each time the token was found
// expired or revoked.
func (l *Login) Logins() int64 { return l.sent.Load() }

// checkingToken marks the context of Login's read of probe.
type checkingToken struct{}

func (l *Login) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	r, ok := reply.(*etcdserverpb.AuthenticateResponse)
	if method != authenticateMethod || !ok {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	if l.last.Load() != nil && ctx.Value(checkingToken{}) == nil {
		check := context.WithValue(ctx, checkingToken{}, true)
		_, err := etcdserverpb.NewKVClient(cc).Range(check, &etcdserverpb.RangeRequest{Key: []byte(l.probe), Serializable: true, CountOnly: true})
		if err == nil {
			last := l.last.Load() // the login the read made, if it made one
			r.Header, r.Token = last.Header, last.Token
			return nil
		}
	}
	l.sent.Add(1)
	if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
		return err
	}
	l.last.Store(&etcdserverpb.AuthenticateResponse{Header: r.Header, Token: r.Token})
	return nil
}
