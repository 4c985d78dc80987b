package probes

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/acmediag/acmediag/reports"
)

// Probe runs one kind of check for one target from one vantage.
type Probe interface {
	Run(ctx context.Context, t Target, v Vantage) reports.Observation
}

// ProbeFunc is a Probe made of a function.
type ProbeFunc func(ctx context.Context, t Target, v Vantage) reports.Observation

// Run implements Probe.
func (f ProbeFunc) Run(ctx context.Context, t Target, v Vantage) reports.Observation {
	return f(ctx, t, v)
}

// The probe kinds acmediag has.
const (
	KindDNS         reports.Kind = "dns"
	KindHTTP01      reports.Kind = "http-01"
	KindTLSALPN01   reports.Kind = "tls-alpn-01"
	KindACME        reports.Kind = "acme"
	KindPropagation reports.Kind = "propagation"
)

// Lane is a pool of workers runs of some kinds share, with its own
// concurrency and timeout: orders at the CA are few, slow and
// rate-limited, and must neither wait behind nor hold up the probes.
type Lane string

// Lanes.
const (
	LaneProbes      Lane = "probes"      // schedule.concurrency, schedule.timeout, backoff after failures
	LaneCanary      Lane = "canary"      // a few orders at a time, each up to minutes
	LanePropagation Lane = "propagation" // propagation.concurrency polls at a time
)

// KindSpec is one registered probe kind: everything the plan, the
// scheduler, the metrics, the API and the page need to know of it. Adding
// a kind is adding one KindSpec to a Registry.
type KindSpec struct {
	Kind reports.Kind
	// Doc says what the kind checks, for help texts.
	Doc string
	// Applies says whether the kind has anything to check for t under the
	// plan; nil: every target.
	Applies func(p *Plan, t Target) bool
	// Once: one run per target, made from no vantage of ours (the CA's own
	// order; a watch that asks every authoritative server directly for
	// every vantage). Otherwise one run per vantage.
	Once bool
	// Remote: an agent runs it for an agent vantage; a per-vantage kind
	// that is not Remote skips agent vantages.
	Remote bool
	Lane   Lane
	// Interval is the time between runs under the plan; nil: the
	// schedule's interval for the kind (schedule.intervals, default 60s).
	Interval func(p *Plan) time.Duration
	// Next, when set, decides the wait after a run instead of the interval
	// and the failure backoff (the propagation watch polls densely at
	// first); ok false falls back to them.
	Next func(p *Plan, o reports.Observation) (wait time.Duration, ok bool)
	// New builds the kind's probe for a plan.
	New func(p *Plan) Probe
	// Follow, when set, is told each plan as it is put in force and names
	// the targets whose runs should start at once (a watch of a value the
	// plan has changed).
	Follow func(p *Plan) []string
	// Record, when set, adds what a run of the kind means to the metrics
	// beyond the run counters (a canary order's steps, a watch's time to
	// everywhere).
	Record func(m *Metrics, o reports.Observation)
}

// Registry holds the probe kinds a plan may use, in order.
type Registry struct {
	kinds []KindSpec
}

// NewRegistry returns a registry of kinds.
func NewRegistry(kinds ...KindSpec) (*Registry, error) {
	r := &Registry{}
	for _, k := range kinds {
		if err := r.Register(k); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds a kind.
func (r *Registry) Register(k KindSpec) error {
	switch {
	case k.Kind == "":
		return fmt.Errorf("probes: registering a kind without a name")
	case k.New == nil:
		return fmt.Errorf("probes: kind %s has no probe (New)", k.Kind)
	case k.Lane == "":
		return fmt.Errorf("probes: kind %s has no lane", k.Kind)
	}
	if _, dup := r.Lookup(k.Kind); dup {
		return fmt.Errorf("probes: kind %s registered twice", k.Kind)
	}
	r.kinds = append(r.kinds, k)
	return nil
}

// Lookup finds a kind.
func (r *Registry) Lookup(kind reports.Kind) (KindSpec, bool) {
	i := slices.IndexFunc(r.kinds, func(k KindSpec) bool { return k.Kind == kind })
	if i < 0 {
		return KindSpec{}, false
	}
	return r.kinds[i], true
}

// Kinds lists the kinds in registration order.
func (r *Registry) Kinds() []KindSpec { return slices.Clone(r.kinds) }

// Names lists the kinds' names, optionally only those of a lane.
func (r *Registry) Names(lane Lane) []reports.Kind {
	var out []reports.Kind
	for _, k := range r.kinds {
		if lane == "" || k.Lane == lane {
			out = append(out, k.Kind)
		}
	}
	return out
}

// Remote lists the kinds an agent runs.
func (r *Registry) Remote() []reports.Kind {
	var out []reports.Kind
	for _, k := range r.kinds {
		if k.Remote {
			out = append(out, k.Kind)
		}
	}
	return out
}

// DefaultKinds is acmediag's registry: DNS, HTTP-01, TLS-ALPN-01, the
// certificate served (tls), the CA's own order and the propagation watch.
func DefaultKinds() *Registry {
	r, err := NewRegistry(dnsKind(), challengeKind(KindHTTP01, reports.HTTP01), challengeKind(KindTLSALPN01, reports.TLSALPN01),
		tlsKind(), acmeKind(), propagationKind())
	if err != nil {
		panic(err) // the built-in kinds are fixed: a wiring mistake, caught by every test
	}
	return r
}
