//go:build linux || darwin || freebsd

package procfs

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestResidentMemory reads this process's resident memory, and checks it
// against what ps says, where ps is installed: the two differ by what the
// process allocated in between, not by a unit or a field.
func TestResidentMemory(t *testing.T) {
	rss := ResidentMemory(os.Getpid())
	if rss <= 0 {
		t.Fatalf("ResidentMemory(self) = %d", rss)
	}
	out, err := exec.Command("ps", "-o", "rss=", "-p", strconv.Itoa(os.Getpid())).Output()
	if err != nil {
		t.Skipf("ps: %v", err)
	}
	kib, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		t.Fatalf("ps said %q", out)
	}
	if ps := kib << 10; rss < ps/2 || rss > ps*2 {
		t.Fatalf("ResidentMemory(self) = %d bytes; ps says %d", rss, ps)
	}
}

// TestResidentMemoryGone reads the resident memory of a process that is gone.
func TestResidentMemoryGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if rss := ResidentMemory(cmd.Process.Pid); rss != -1 {
		t.Fatalf("ResidentMemory of a reaped child = %d, want -1", rss)
	}
}
