//go:build !darwin && !dragonfly && !freebsd && !netbsd && !openbsd

package worker

// watchParent does nothing. On Linux the pool starts its workers with
// Pdeathsig, which kills a worker when its parent dies; Windows runs no
// workers yet.
func watchParent() {}
