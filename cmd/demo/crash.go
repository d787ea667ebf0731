package main

import "unsafe"

// wild is an address no Go program maps.
var wild uintptr = 0xdead

// crashHard writes through a wild pointer: a real SIGSEGV, which the Go
// runtime turns into a fatal "unexpected fault address" report, not a panic
// that recover could catch.
func crashHard() {
	p := *(**int)(unsafe.Pointer(&wild))
	*p = 1
}
