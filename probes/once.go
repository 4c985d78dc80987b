package probes

import (
	"context"
	"sync"
)

// maxConcurrentRuns bounds the probe runs of one round in flight at once.
const maxConcurrentRuns = 64

// RunOnce runs every probe for every target it applies to from every
// vantage once, concurrently, and returns the observations in (vantage,
// target, probe) order.
func RunOnce(ctx context.Context, probes []Probe, targets []Target, vantages []Vantage) []Observation {
	out := make([]Observation, len(vantages)*len(targets)*len(probes))
	ran := make([]bool, len(out))
	sem := make(chan struct{}, maxConcurrentRuns)
	var wg sync.WaitGroup
	i := 0
	for _, v := range vantages {
		for _, t := range targets {
			for _, p := range probes {
				slot := i
				i++
				if !applies(p, t) {
					continue
				}
				ran[slot] = true
				wg.Go(func() {
					select {
					case sem <- struct{}{}:
					case <-ctx.Done():
						out[slot] = Observation{Target: t, Vantage: v, Kind: p.Kind()}
						return
					}
					defer func() { <-sem }()
					out[slot] = p.Run(ctx, t, v)
				})
			}
		}
	}
	wg.Wait()
	kept := out[:0]
	for i, o := range out {
		if ran[i] {
			kept = append(kept, o)
		}
	}
	return kept
}
