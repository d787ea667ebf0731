package wire

import (
	"runtime"
	"testing"
)

func TestProbe(t *testing.T) {
	bodies := map[string][]byte{
		"hello tasks array32": {0x94, 0x01, 0x01, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff},
		"run task str32":      {0x94, 0x04, 0x01, 0xdb, 0xff, 0xff, 0xff, 0xff},
		"kind 257":            {0x92, 0xcd, 0x01, 0x06, 0x01},
	}
	for name, b := range bodies {
		var m1, m2 runtime.MemStats
		runtime.ReadMemStats(&m1)
		m, err := NewDecoder().Decode(b)
		runtime.ReadMemStats(&m2)
		t.Logf("%s: %#v %v alloc=%d", name, m, err, m2.TotalAlloc-m1.TotalAlloc)
	}
}
