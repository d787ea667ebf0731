package main

import (
	"slices"
	"strings"
	"time"
)

// Workload names, as they appear in -json.
const (
	wRoundTrip = "roundtrip"
	wMap       = "map"
	wCPU10     = "cpu10ms"
	wCPU1      = "cpu1ms"
	wAlloc     = "alloc"
	wPayload   = "payload"
	wMapMemory = "map_memory"
	wStartup   = "startup"
	wRecovery  = "recovery"
	wRSS       = "rss"

	// The scaling section: the same work at many more workers than CPUs.
	wScaleRoundTrip = "scale_roundtrip"
	wScaleMap       = "scale_map"
	wScaleSleep     = "scale_sleep"
	wScaleStartup   = "scale_startup"
	wScaleClose     = "scale_close"
	wScaleTerminate = "scale_terminate"
	wScaleRespawn   = "scale_respawn"
	wScaleReady     = "scale_ready"
)

// isScaling says whether a workload belongs to the scaling section.
func isScaling(workload string) bool { return strings.HasPrefix(workload, "scale_") }

// Implementation names, as they appear in -json. A floor is what the
// hardware and kernel allow with no library at all; serial is the one-core
// reference of the speed-ups; bare is the scaling sleeps' work done by
// plain processes, no pool; the others are the contenders.
const (
	iFloor      = "floor"
	iSerial     = "serial"
	iBare       = "bare"
	iProcesses  = "processes"
	iGoroutines = "goroutines"
	iErrgroup   = "errgroup"
	iPool       = "pool"
	iPPE        = "ppe"
)

// Result is one figure of the report: one implementation, one workload, one
// configuration, measured Runs times.
type Result struct {
	Workload string `json:"workload"`
	Impl     string `json:"impl"`
	Label    string `json:"label"`
	Workers  int    `json:"workers"` // 0: the figure holds for any number
	// Chunk tells apart the figures of one workload and worker count: the
	// chunk size of a Map ("1", "10", ..., "default"), the block size of
	// the payload ("64KiB", "1MiB", "16MiB").
	Chunk string `json:"chunk,omitempty"`
	// ChunkSize is the chunk size actually used (the default's value too).
	ChunkSize int `json:"chunksize,omitempty"`
	// BlockSize is the payload's block size in bytes.
	BlockSize int `json:"block_size,omitempty"`
	// N is the number of items, calls or blocks in one run.
	N      int       `json:"n,omitempty"`
	Unit   string    `json:"unit"`
	Higher bool      `json:"higher_is_better"`
	Runs   []float64 `json:"runs"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	// GCCycles is, for the allocation workload, the median number of GC
	// cycles one run cost, summed over the heaps involved.
	GCCycles float64 `json:"gc_cycles,omitempty"`
	Note     string  `json:"note,omitempty"`
	// Skipped says why the figure could not be measured, if it was not.
	Skipped string `json:"skipped,omitempty"`

	// VsFloor is Median ÷ the floor's median; VsBestPeer is Median ÷ that
	// of BestPeer, the best other implementation at the same workers and
	// chunk size. Zero or empty when there is none.
	VsFloor    float64 `json:"vs_floor,omitempty"`
	BestPeer   string  `json:"best_peer,omitempty"`
	VsBestPeer float64 `json:"vs_best_peer,omitempty"`
	// VsFewest is, in the scaling section, Median ÷ the median of the same
	// implementation and workload at the fewest workers measured: how the
	// figure grows (or, for a rate, holds) as workers are added.
	VsFewest float64 `json:"vs_fewest,omitempty"`

	secs []float64 // compute workloads: each run's wall time, in seconds
	gcs  []float64 // and its GC cycles
}

// finish fills in the median, min and max from the runs.
func (r *Result) finish() *Result {
	if len(r.Runs) == 0 {
		return r
	}
	s := slices.Clone(r.Runs)
	slices.Sort(s)
	r.Min, r.Max = s[0], s[len(s)-1]
	r.Median = median(s)
	return r
}

// median of sorted values; the mean of the middle two for an even count.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// medianOf sorts a copy of v and returns its median.
func medianOf(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return median(s)
}

// units of the workloads, and which way is better.
var workloadUnits = map[string]struct {
	unit   string
	higher bool
}{
	wRoundTrip: {"µs/call", false},
	wMap:       {"items/s", true},
	wCPU10:     {"× serial", true},
	wCPU1:      {"× serial", true},
	wAlloc:     {"× serial", true},
	wPayload:   {"MB/s", true},
	wMapMemory: {"MiB", false},
	wStartup:   {"ms", false},
	wRecovery:  {"ms", false},
	wRSS:       {"MiB", false},

	wScaleRoundTrip: {"µs/call", false},
	wScaleMap:       {"items/s", true},
	wScaleSleep:     {"ms", false},
	wScaleStartup:   {"ms", false},
	wScaleClose:     {"ms", false},
	wScaleTerminate: {"ms", false},
	wScaleRespawn:   {"ms", false},
	wScaleReady:     {"ms", false},
}

// newResult starts a Result with the unit of its workload.
func newResult(workload, impl, label string, workers int) *Result {
	u := workloadUnits[workload]
	return &Result{Workload: workload, Impl: impl, Label: label, Workers: workers, Unit: u.unit, Higher: u.higher}
}

// micros and millis turn a duration into the report's units.
func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// perSecond is a rate: n things in d.
func perSecond(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// mbPerSecond is the payload rate: n bytes echoed in d, in 10^6 bytes per
// second. Each byte goes out and comes back; it is counted once.
func mbPerSecond(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }

// mib turns bytes into MiB.
func mib(b int64) float64 { return float64(b) / (1 << 20) }

// labels of the implementations, per workload where they differ.
func implLabel(impl, workload string) string {
	switch impl {
	case iProcesses:
		return "procpool processes"
	case iGoroutines:
		return "procpool goroutines"
	case iErrgroup:
		return "errgroup SetLimit"
	case iSerial:
		return "serial (one goroutine)"
	case iBare:
		return "bare Go processes, no pool"
	case iPool:
		switch workload {
		case wRoundTrip, wScaleRoundTrip:
			return "Python Pool.apply"
		case wMap, wPayload, wMapMemory, wScaleMap, wScaleSleep:
			return "Python Pool.map"
		case wScaleClose:
			return "Python Pool close+join"
		case wScaleTerminate:
			return "Python Pool terminate+join"
		}
		return "Python Pool"
	case iPPE:
		switch workload {
		case wRoundTrip:
			return "Python PPE submit+result"
		case wMap, wPayload, wMapMemory:
			return "Python PPE.map"
		}
		return "Python ProcessPoolExecutor"
	case iFloor:
		switch workload {
		case wRoundTrip:
			return "raw pipe ping-pong (floor)"
		case wPayload:
			return "raw pipe stream (floor)"
		case wStartup, wRecovery:
			return "child exec to first reply (floor)"
		case wRSS:
			return "idle raw child (floor)"
		case wCPU10, wCPU1, wAlloc:
			return "ideal: linear (floor)"
		case wScaleSleep:
			return "ideal: n × 10 ms ÷ workers (floor)"
		}
	}
	return impl
}
