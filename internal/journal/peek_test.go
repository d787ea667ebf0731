package journal

import (
	"testing"
	"unsafe"
)

// Peek names the call Start recorded last, and none before the first.
func TestPeek(t *testing.T) {
	words := make([]uint64, 64) // a journal's memory is 8-byte aligned, as mmap's is
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(words)*8)
	if _, _, ok := Peek(mem); ok {
		t.Error("Peek of memory no worker has written names a call")
	}
	w := NewWriter(mem)
	if _, _, ok := Peek(mem); ok {
		t.Error("Peek names a call before the first Start")
	}
	for _, c := range []struct {
		run   uint64
		index int
	}{{7, 0}, {7, 1}, {9, 0}} {
		w.Start(c.run, c.index)
		if run, index, ok := Peek(mem); !ok || run != c.run || index != c.index {
			t.Errorf("after Start(%d, %d): Peek = %d, %d, %v", c.run, c.index, run, index, ok)
		}
	}
	if _, _, ok := Peek(mem[:8]); ok {
		t.Error("Peek of a short memory names a call")
	}
}
