package measure

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// The readings move the way the work does: CPU grows with a busy loop,
// and the same process read two ways agrees within the kernel's tick.
func TestReadings(t *testing.T) {
	before, err := SelfCPU()
	if err != nil {
		t.Fatal(err)
	}
	viaProc0, err := ProcessCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = strconv.Itoa(n)
	}
	after, _ := SelfCPU()
	viaProc1, _ := ProcessCPU(os.Getpid())
	if after-before < 100*time.Millisecond {
		t.Errorf("SelfCPU grew %s over a 300 ms busy loop", after-before)
	}
	if viaProc1-viaProc0 < 50*time.Millisecond {
		t.Errorf("ProcessCPU grew %s over a 300 ms busy loop", viaProc1-viaProc0)
	}
	if _, err := ProcessCPU(-1); err == nil {
		t.Error("ProcessCPU(-1) gave no error")
	}
	self, err := SelfRSS()
	if err != nil || self < 1<<20 {
		t.Errorf("SelfRSS = %d, %v", self, err)
	}
	// The same process read by PID: within a few MiB of SelfRSS.
	if viaPID, err := ProcessRSS(os.Getpid()); err != nil || viaPID < self/2 || viaPID > 2*self {
		t.Errorf("ProcessRSS(self) = %d, %v; SelfRSS %d", viaPID, err, self)
	}
	if _, err := ProcessRSS(-1); err == nil {
		t.Error("ProcessRSS(-1) gave no error")
	}
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("FreePort %d is not free: %v", port, err)
	}
	ln.Close()
}
