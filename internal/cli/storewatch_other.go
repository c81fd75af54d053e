//go:build !linux

package cli

import "github.com/fsnotify/fsnotify"

// newDirWatcher is fsnotify's watcher, outside Linux.
func newDirWatcher() (dirWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return fsWatcher{w}, nil
}
