package procpool

// Windows has no worker processes yet: New refuses the Processes backend with
// ErrUnsupported, and these stand-ins are never reached.

import (
	"errors"
	"syscall"
)

// noProcesses is why worker processes do not run here, or nil where they do.
var noProcesses = ErrUnsupported

var errNoProcessGroups = errors.New("procpool: no process groups on windows")

func setProcAttr(*syscall.SysProcAttr) {}

func awaitExit(int) error { return errNoProcessGroups }

func killGroup(int, syscall.Signal) error { return errNoProcessGroups }

func signalName(sig syscall.Signal) string { return sig.String() }

func ownSession() *syscall.SysProcAttr { return nil }
