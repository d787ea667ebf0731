//go:build cgo

package main

/*
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

static void segv(void) { *(volatile int *)0 = 1; }
static void doabort(void) { abort(); }
static void doassert(int x) { assert(x == 42); }
static void trap(void) { __builtin_trap(); }
static void bus(void) {
	FILE *f = tmpfile();
	if (f == NULL || ftruncate(fileno(f), 4096) != 0) return;
	volatile char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fileno(f), 0);
	if (p == MAP_FAILED || ftruncate(fileno(f), 0) != 0) return;
	(void)p[0];
}
*/
import "C"

// dieInC dies in C code, by a signal the Go runtime did not expect.
func dieInC(how string) bool {
	switch how {
	case "cgo-segv": // a write through a null pointer
		C.segv()
	case "cgo-abort":
		C.doabort()
	case "cgo-assert": // a failed assert(3): a message, then abort
		C.doassert(1)
	case "cgo-trap": // an illegal instruction
		C.trap()
	case "cgo-bus": // a read of a mapped page past the end of its file
		C.bus()
	default:
		return false
	}
	return true
}
