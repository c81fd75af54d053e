//go:build !linux

package testnet

import "testing"

// FullBacklog needs Linux's dropping of SYNs when a listening socket's
// queue is full.
func FullBacklog(tb testing.TB) string {
	tb.Skip("testnet.FullBacklog: only on Linux, whose kernel drops SYNs when a listen queue is full")
	return ""
}
