//go:build !cgo

package main

func dieInC(how string) bool { return false }
