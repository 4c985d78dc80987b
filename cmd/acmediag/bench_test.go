package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/testenv/measure"
)

// BenchmarkDaemonIdleRSS1k measures the daemon process itself, as a user
// runs it: 1,000 names × 4 vantages with nothing due for a day, its
// resident memory a few seconds after start (issue 5's target: ≤ 30 MiB).
// Beside it the same daemon with one name: what the binary and the Go
// runtime cost before any target. One op is one reading of VmRSS.
func BenchmarkDaemonIdleRSS1k(b *testing.B) {
	needBinary(b)
	for _, names := range []int{1, 1000} {
		b.Run(fmt.Sprintf("names=%d", names), func(b *testing.B) {
			port := freePort(b)
			var cfg strings.Builder
			fmt.Fprintf(&cfg, "listen: 127.0.0.1:%d\ndns:\n  resolvers: [127.0.0.1]\n  allow_addresses: [127.0.0.0/8]\nvantages:\n", port)
			for i, rir := range []string{"ARIN", "RIPE", "APNIC", "LACNIC"} {
				fmt.Fprintf(&cfg, "  - {name: v%d, source: 127.0.0.%d, rir: %s, kind: external}\n", i, i+1, rir)
			}
			cfg.WriteString("schedule:\n  intervals: {dns: 24h, http-01: 24h, tls-alpn-01: 24h}\ntargets:\n")
			for i := range names {
				fmt.Fprintf(&cfg, "  - {name: t%d.idle-bench.com}\n", i)
			}
			d := startDaemon(b, cfg.String())
			waitFor(b, d, "/healthz", 10*time.Second, func() bool { return d.status("/healthz") == 200 })
			time.Sleep(3 * time.Second) // past start-up
			b.ResetTimer()
			var rss int64
			for range b.N {
				var err error
				if rss, err = measure.ProcessRSS(d.cmd.Process.Pid); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
		})
	}
}
