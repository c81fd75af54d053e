// Package etcdtest holds what the etcd module's tests share across its
// packages (the Source's, in package etcd, and keytool's store, in
// etcd/cmd/keytool), as internal/keydir/keydirtest does for keytool's.
package etcdtest

import (
	"sync/atomic"

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

// HeaderlessKV answers as etcd does, but without the response header,
// while On is set (nil: always): what a proxy or a member gone wrong
// could send (the protobuf field is optional: an answer without it
// decodes to a nil Header).
type HeaderlessKV struct {
	clientv3.KV
	On *atomic.Bool
}

func (f HeaderlessKV) on() bool { return f.On == nil || f.On.Load() }

func (f HeaderlessKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	r, err := f.KV.Get(ctx, key, opts...)
	if err == nil && f.on() {
		r.Header = nil
	}
	return r, err
}

func (f HeaderlessKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	r, err := f.KV.Do(ctx, op)
	if err == nil && f.on() {
		if g := r.Get(); g != nil {
			g.Header = nil
		}
		if t := r.Txn(); t != nil {
			t.Header = nil
		}
	}
	return r, err
}

func (f HeaderlessKV) Txn(ctx context.Context) clientv3.Txn {
	return headerlessTxn{f.KV.Txn(ctx), f}
}

// headerlessTxn is a transaction of HeaderlessKV's.
type headerlessTxn struct {
	clientv3.Txn
	kv HeaderlessKV
}

func (t headerlessTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	return headerlessTxn{t.Txn.If(cs...), t.kv}
}
func (t headerlessTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	return headerlessTxn{t.Txn.Then(ops...), t.kv}
}
func (t headerlessTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	return headerlessTxn{t.Txn.Else(ops...), t.kv}
}

func (t headerlessTxn) Commit() (*clientv3.TxnResponse, error) {
	r, err := t.Txn.Commit()
	if err == nil && t.kv.on() {
		r.Header = nil
	}
	return r, err
}
