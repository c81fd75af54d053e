//go:build !(linux || darwin || dragonfly || freebsd || illumos || netbsd || openbsd) || race

package offheap

import "errors"

var errNoMap = errors.New("offheap: no anonymous mappings on this system, or a race build")

func mapMemory(int) ([]byte, error) { return nil, errNoMap }

func unmapMemory([]byte) error { return errNoMap }
