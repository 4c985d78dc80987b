// Package measure holds what the benchmarks and process tests read off the
// machine: CPU time of this process and of a child, resident memory, and a
// free loopback port for a child to listen on. Linux only (/proc).
package measure

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clkTck is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clkTck = 100

// SelfCPU is this process's user+system CPU time so far.
func SelfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// ProcessCPU is another process's user+system CPU time, from /proc/PID/stat.
func ProcessCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces: count fields after its
	// closing parenthesis; utime and stime are fields 14 and 15.
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unparsable /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clkTck, nil
}

// SelfRSS is this process's resident set size now, from /proc/self/statm.
func SelfRSS() (int64, error) { return rss("/proc/self/statm") }

// ProcessRSS is a process's resident set size now, from /proc/PID/statm.
func ProcessRSS(pid int) (int64, error) { return rss(fmt.Sprintf("/proc/%d/statm", pid)) }

func rss(statm string) (int64, error) {
	raw, err := os.ReadFile(statm)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		return 0, fmt.Errorf("unparsable %s %q", statm, raw)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", statm, err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago, for a
// child process to listen on.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
