//go:build !linux

package cli

import (
	"github.com/fsnotify/fsnotify"

	"github.com/keytool/keytool/internal/keydir"
)

// newDirWatcher is fsnotify's watcher, outside Linux.
func newDirWatcher() (keydir.Watcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return keydir.FSNotify(w), nil
}
