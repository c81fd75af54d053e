// Package etcdtest holds what the etcd module's tests share across its
// packages (the Source's, in package etcd, and keytool's store, in
// etcd/cmd/keytool), as internal/keydir/keydirtest does for keytool's.
package etcdtest

import (
	"context"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ForgingKV answers every Get as etcd does, with Forged keys added: what
// a proxy or a member gone wrong could send.
type ForgingKV struct {
	clientv3.KV
	Forged []*mvccpb.KeyValue
}

func (f ForgingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	r, err := f.KV.Get(ctx, key, opts...)
	if err == nil {
		r.Kvs = append(r.Kvs, f.Forged...)
	}
	return r, err
}
