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

// ForgingWatcher answers every Watch as etcd does, with Forged events
// added to the first answer that has events of its own: what a proxy or
// a member gone wrong could send.
type ForgingWatcher struct {
	clientv3.Watcher
	Forged []*clientv3.Event
}

func (f ForgingWatcher) Watch(ctx context.Context, key string, opts ...clientv3.OpOption) clientv3.WatchChan {
	in := f.Watcher.Watch(ctx, key, opts...)
	out := make(chan clientv3.WatchResponse)
	go func() {
		defer close(out)
		forged := false
		for r := range in {
			if !forged && len(r.Events) > 0 {
				r.Events, forged = append(r.Events, f.Forged...), true
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
