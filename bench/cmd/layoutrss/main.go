// Command layoutrss measures what a key costs resident in three layouts
// of a loaded directory of single-key files, so that the layout
// docs/design.md plans ("Memory of a loaded store") is chosen on figures:
//
//	cd bench && go run ./cmd/layoutrss            # 100,000 keys
//	cd bench && go run ./cmd/layoutrss -keys 1000000
//
// The layouts hold the same facts per key and nothing else of keytool:
//
//	objects   today's: a 64-byte row per file in chunks of 512 (two
//	          pointers), and per file a File (48 bytes, three pointers),
//	          its one-item array (32) and its name string (~16)
//	columnar  every fact of a file in one pointer-free 128-byte row in
//	          chunks of 512 (stamp 32, content sum 16, SPKI hash 32, name
//	          offset and length 8, flags), its name in a byte arena
//	mmap      the columnar rows and arena in memory mapped outside the Go
//	          heap, which the collector neither scans nor counts
//
// Each runs in a child process of its own. A child measures its resident
// set (/proc/self/statm) before the load, after it, and after garbage of
// the kind handshakes make (churn). Each figure is the difference from a
// child that holds no key and makes the same garbage, as the issue asks
// (process resident set, not heap). The resident set after that garbage
// is what a running server keeps: the collector lets the heap grow to
// twice what is live before it collects (GOGC=100), so what the heap holds
// is resident about twice, and memory outside it once.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

const chunkLen = 512

func main() {
	keys := flag.Int("keys", 100_000, "keys (single-key files) to hold")
	runs := flag.Int("runs", 5, "rounds, each running every layout once (and the baseline before each); the median is printed")
	child := flag.String("child", "", "the layout to measure in this process (internal)")
	flag.Parse()
	if *child != "" {
		measure(*child, *keys)
		return
	}
	run := func(layout string) (r result) {
		out, err := exec.Command(os.Args[0], "-child", layout, "-keys", strconv.Itoa(*keys)).Output()
		if err != nil {
			log.Fatalf("%s: %v", layout, err)
		}
		if _, err := fmt.Sscan(string(out), &r.heap, &r.loaded, &r.steady); err != nil {
			log.Fatalf("%s: %q: %v", layout, out, err)
		}
		return r
	}
	layouts := []string{"objects", "columnar", "mmap"}
	per := func(v, base uint64) float64 { return (float64(v) - float64(base)) / float64(*keys) }
	var heap, loaded, steady [3][]float64
	for range *runs {
		for i, layout := range layouts { // interleaved: the machine's noise falls on every layout alike
			none, r := run("none"), run(layout)
			heap[i] = append(heap[i], per(r.heap, none.heap))
			loaded[i] = append(loaded[i], per(r.loaded, none.loaded))
			steady[i] = append(steady[i], per(r.steady, none.steady))
		}
	}
	fmt.Printf("medians of %d runs, %d keys\n%-9s %10s %12s %12s %12s  %s\n", *runs, *keys, "layout", "heap B/key", "loaded B/key", "steady B/key", "steady÷heap", "steady, each run")
	for i, layout := range layouts {
		h, s := median(heap[i]), median(steady[i])
		ratio := "—"
		if layout != "mmap" {
			ratio = fmt.Sprintf("%.2f×", s/h)
		}
		fmt.Printf("%-9s %10.0f %12.0f %12.0f %12s  %.0f\n", layout, h, median(loaded[i]), s, ratio, steady[i])
	}
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// result is what a child measured, in bytes: its live heap after the
// load, its resident set after it and after the garbage.
type result struct{ heap, loaded, steady uint64 }

// The layouts' types. fileRow and file are today's (internal/keydir's
// fileRow and File, authkeys' item); a columnar row is bytes.
type (
	item    [32]byte
	fileRow struct {
		stamp [32]byte
		sum   [16]byte
		file  *file
		rare  *int
	}
	file struct {
		src   *int
		name  string
		Items []item
	}
)

const columnarRow = 128

var (
	rows  [][]fileRow // objects
	cols  [][]byte    // columnar and mmap: rows, then name arenas
	names [][]byte
	src   int
)

func measure(layout string, n int) {
	switch layout {
	case "none": // the baseline: the same process, holding no key
	case "objects":
		var ch []fileRow
		for i := range n {
			if i%chunkLen == 0 {
				ch = make([]fileRow, chunkLen)
				rows = append(rows, ch)
			}
			f := &file{src: &src, name: name(i), Items: make([]item, 1)}
			f.Items[0] = spki(i)
			ch[i%chunkLen] = fileRow{stamp: [32]byte{byte(i)}, sum: [16]byte{byte(i)}, file: f, rare: nil}
		}
	case "columnar", "mmap":
		alloc := func(size int) []byte { return make([]byte, size) }
		if layout == "mmap" {
			alloc = func(size int) []byte {
				b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
				if err != nil {
					log.Fatal(err)
				}
				return b
			}
		}
		var ch, arena []byte
		for i := range n {
			if i%chunkLen == 0 {
				ch = alloc(chunkLen * columnarRow)
				cols = append(cols, ch)
				arena = alloc(chunkLen * 24)[:0]
				names = append(names, arena)
			}
			nm := name(i)
			off := len(arena)
			arena = append(arena, nm...) // room for 24 bytes a name: no growth
			row := ch[(i%chunkLen)*columnarRow:][:columnarRow]
			row[0] = byte(i)
			k := spki(i)
			copy(row[48:80], k[:])
			binary.LittleEndian.PutUint32(row[80:], uint32(off))
			binary.LittleEndian.PutUint32(row[84:], uint32(len(nm)))
		}
	default:
		log.Fatalf("no layout %q", layout)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	debug.FreeOSMemory() // the load's own garbage is not what a server keeps
	loaded := rss()
	churn(n)
	steady := rss()
	runtime.KeepAlive(rows)
	runtime.KeepAlive(cols)
	runtime.KeepAlive(names)
	fmt.Println(ms.HeapAlloc, loaded, steady)
}

// name is file i's name, as bench's key directories name them.
func name(i int) string { return fmt.Sprintf("client-%07d.json", i) }

func spki(i int) (k item) {
	binary.LittleEndian.PutUint64(k[:], uint64(i)*0x9e3779b97f4a7c15)
	return k
}

// churn allocates what BenchmarkRSS's child does after its load — 4×
// the heap today's layout holds (200 bytes a key), in objects of 512 B to
// 16 KiB, 64 live at a time: handshakes' garbage, which lets the heap grow
// to its goal before the collector runs.
func churn(n int) {
	var ring [64][]byte
	for i, total := 0, 0; total < 4*200*n; i++ {
		size := 512 << (i % 6)
		ring[i%len(ring)] = make([]byte, size)
		total += size
	}
	runtime.KeepAlive(&ring)
}

// rss is the process's resident set in bytes.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		log.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		log.Fatal(err)
	}
	return pages * uint64(os.Getpagesize())
}
