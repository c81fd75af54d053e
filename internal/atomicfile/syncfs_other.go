//go:build !linux

package atomicfile

// syncFS: no syncfs(2) here; Sync syncs each file.
func syncFS(string) (ok bool, err error) { return false, nil }
