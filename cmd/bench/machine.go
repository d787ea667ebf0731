package main

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Machine names what the figures were measured on: they mean nothing
// without it.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryGiB int    `json:"memory_gib,omitempty"`
	Kernel    string `json:"kernel,omitempty"`
	Go        string `json:"go"`
	Python    string `json:"python"`
	// LoadStart is the 1-minute load average when the run started.
	LoadStart float64 `json:"load_start"`
	// OthersCPU is the share of the machine's CPU time that other
	// processes used during the run: anything above a few percent
	// disturbed the figures.
	OthersCPU float64 `json:"others_cpu"`
}

// loadAverage is the 1-minute load average, or -1 if unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func detectMachine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), Go: runtime.Version(), Python: "not measured", LoadStart: loadAverage()}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.CPU = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		if kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB")); err == nil {
			m.MemoryGiB = (kb + 1<<19) >> 20
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// procField returns the value of the first "key: value" line of a /proc
// file whose key is key.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// cpuClock is a reading of the machine's busy CPU time and of this
// process's, its children's included, in seconds.
type cpuClock struct {
	at         time.Time
	busy, ours float64
}

// userHZ is the unit of /proc/stat: USER_HZ, 100 on every Linux port.
const userHZ = 100

func readCPUClock() cpuClock {
	c := cpuClock{at: time.Now()}
	if f := strings.Fields(procLine("/proc/stat", "cpu ")); len(f) > 8 {
		for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
			v, _ := strconv.ParseFloat(f[i], 64)
			c.busy += v / userHZ
		}
	}
	c.ours = cpuSeconds()
	return c
}

// othersSince is the share of all CPUs' time since c that processes other
// than this one and its reaped children used.
func (c cpuClock) othersSince() float64 {
	now := readCPUClock()
	total := now.at.Sub(c.at).Seconds() * float64(runtime.NumCPU())
	if total <= 0 {
		return 0
	}
	return max(0, (now.busy-c.busy)-(now.ours-c.ours)) / total
}

// procLine returns the first line of a /proc file that starts with prefix.
func procLine(path, prefix string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if strings.HasPrefix(line, prefix) {
			return line
		}
	}
	return ""
}
