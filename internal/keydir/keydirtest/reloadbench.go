package keydirtest

import (
	"runtime"
	"testing"
)

// BenchReplaced runs the benchmark loop of a reload a file event causes:
// each iteration renames alt[0] and alt[1] in turn over path (untimed) and
// times reload(path). Besides the time and the allocations it reports the
// process's CPU per reload (the garbage collector's included, and the
// writing of the file, the same in every version) and the collections it
// brings per 1,000 reloads. It returns the number of iterations, so that
// the caller knows which of alt was written last (alt[(n-1)%2]).
func BenchReplaced(b *testing.B, path string, alt [2][]byte, reload func(path string)) (n int) {
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0 := CPUTime(b)
	for b.Loop() {
		b.StopTimer()
		Replace(b, path, alt[n%2])
		n++
		b.StartTimer()
		reload(path)
	}
	cpu := CPUTime(b) - cpu0
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(m1.NumGC-m0.NumGC)*1000/float64(b.N), "GCs/1k-ops")
	return n
}
