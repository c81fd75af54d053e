package etcdtest

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// UserOnPrefix turns authentication on in the member root is a client of,
// with user root (password "rootpw") and user, of password, whose role
// may do perm on prefix and nothing else: the set-up docs/fleet.md
// ("Security") gives a host (read) and an administrator (read and
// write).
func UserOnPrefix(tb testing.TB, root *clientv3.Client, user, password, role, prefix string, perm clientv3.PermissionType) {
	tb.Helper()
	ctx := tb.Context()
	must := func(_ any, err error) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
	}
	must(root.UserAdd(ctx, "root", "rootpw"))
	must(root.UserGrantRole(ctx, "root", "root"))
	must(root.RoleAdd(ctx, role))
	must(root.RoleGrantPermission(ctx, role, prefix, clientv3.GetPrefixRangeEnd(prefix), perm))
	must(root.UserAdd(ctx, user, password))
	must(root.UserGrantRole(ctx, user, role))
	must(root.AuthEnable(ctx))
}
