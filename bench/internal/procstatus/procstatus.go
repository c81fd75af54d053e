// Package procstatus reads the sizes Linux gives a process in
// /proc/self/status (VmRSS, VmHWM, …), which the memory benchmarks
// (BenchmarkRSS, cmd/peakprobe) measure the resident set by: the heap
// alone misses what is mapped outside it and what the collector's target
// keeps resident.
package procstatus

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Bytes returns the size field of /proc/self/status in bytes (0 if the
// file or the field is absent).
func Bytes(field string) int64 { return read("/proc/self/status", field) }

// Of is Bytes of the process pid (BenchmarkProxyRSS's keytool proxy).
func Of(pid int, field string) int64 {
	return read("/proc/"+strconv.Itoa(pid)+"/status", field)
}

func read(path, field string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(val), " kB"), 10, 64)
		if err != nil {
			return 0
		}
		return kb << 10
	}
	return 0
}
