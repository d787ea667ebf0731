package main

import (
	"os"
	"syscall"
)

// killSelf ends this process at once, as TerminateProcess does.
func killSelf() {
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
}

// signalName names sig.
func signalName(sig syscall.Signal) string { return sig.String() }
