//go:build race

package proxy

// raceEnabled: the race detector is on. It makes sync.Pool drop a share
// of what is put back, on purpose, so pooling cannot be measured.
const raceEnabled = true
