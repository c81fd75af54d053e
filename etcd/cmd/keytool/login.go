package main

import (
	"context"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// authenticateMethod is the gRPC method of etcd's login.
const authenticateMethod = "/etcdserverpb.Auth/Authenticate"

// sessionLogin lets a client with --etcd-user keep its login. clientv3
// logs in again for every gRPC stream it opens (etcd issue 11954: the
// token may have expired meanwhile) — each watch whose stream it does not
// share with another, and each watch resumed on a new connection — and a
// login is a bcrypt check of the password on the member and a raft round:
// 115–338 ms measured at load 13–14, 2–4 s with the member under the race
// detector, for a token most likely still good. sessionLogin, a unary
// interceptor of the client, answers such an Authenticate with the token
// of the last login as long as etcd still takes it: a serializable read
// of probe (PREFIX/, in the range the watch is of) with it succeeds,
// which etcd checks as it checks a watch's creation (the token known and
// not expired, its auth revision the current one: no user or role changed
// since). Else — expired, revoked by a change to users or roles, the read
// refused or unanswered — it logs in, as clientv3 would have. The read's
// own refusal of an expired token makes clientv3 log in from within it
// (its retry interceptor, around this one); that login, marked by
// checkingToken, goes to etcd, and the read retried with its token
// vouches for it.
type sessionLogin struct {
	probe string
	last  atomic.Pointer[etcdserverpb.AuthenticateResponse] // nil: no login yet
	// sent counts the Authenticate requests sent to etcd (tests).
	sent atomic.Int64
}

// checkingToken marks the context of sessionLogin's read of probe.
type checkingToken struct{}

func (l *sessionLogin) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
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
