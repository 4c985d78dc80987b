package renewals

import (
	"context"

	"cmp"
	"time"

	cmclient "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"

	"github.com/acmediag/acmediag/reports"
)

// KindCertManager is the kind of the observations the watch records: what
// cert-manager's objects say about a name, made from no vantage.
const KindCertManager reports.Kind = "certmanager"

// Target is one name a Certificate holds, with the challenge its Issuer's
// solver selection picks for it.
type Target struct {
	Name      string
	Challenge reports.Challenge
	// Certificate is "namespace/name"; Issuer "Kind/[namespace/]name".
	Certificate string
	Issuer      string
	// Solver says which solver was picked: "dns01 (rfc2136), selector
	// dnsZones [example.com]"; "" when the issuer has no ACME solver for it.
	Solver string
	// Token and Key are an open Challenge's own (spec.token, spec.key)
	// while one waits for the name: the probes then check exactly what the
	// CA will (http-01: that token's key authorization; dns-01: that TXT
	// value), and Challenge is the Challenge's type.
	Token, Key string
}

// Config is what the watch is told (the daemon's kube: section).
type Config struct {
	// Namespaces are watched; none: every namespace.
	Namespaces []string
	// Selector is a label selector the Certificates must match.
	Selector string
	// Resync re-delivers every object to the handlers (informers' resync).
	Resync time.Duration
	// Interval re-evaluates what time alone changes (stuck Challenges,
	// renewalTime entering the horizon).
	Interval time.Duration
	// StuckAfter: a presented Challenge not valid for this long is stuck.
	StuckAfter time.Duration
	// Retry: how soon to look again when the CRDs are missing or a call is
	// forbidden.
	Retry time.Duration
	// Horizon is how far ahead of renewalTime a failing path is at risk;
	// 0 → reports.DefaultRenewalHorizon (never more than a third of the
	// lifetime).
	Horizon time.Duration
	// Events turns the Kubernetes Events on.
	Events bool
}

// Defaults of Config's zero values.
const (
	DefaultResync     = 10 * time.Minute
	DefaultInterval   = 30 * time.Second
	DefaultStuckAfter = 5 * time.Minute
	DefaultRetry      = 30 * time.Second
)

func (c Config) withDefaults() Config {
	c.Resync = cmp.Or(c.Resync, DefaultResync)
	c.Interval = cmp.Or(c.Interval, DefaultInterval)
	c.StuckAfter = cmp.Or(c.StuckAfter, DefaultStuckAfter)
	c.Retry = cmp.Or(c.Retry, DefaultRetry)
	return c
}

// Clock is the time the watch judges by (injected in tests).
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Options are the watch's clients and what it shares with the daemon.
type Options struct {
	CertManager cmclient.Interface
	Kube        kubernetes.Interface
	Logger      *zap.Logger
	Clock       Clock                 // nil → the real one
	Registerer  prometheus.Registerer // nil → no metrics
	// Sightings are the observations of name since a time, from every
	// vantage (the daemon's store).
	Sightings func(name string, since time.Time) []reports.Observation
	// PathFailing says whether name's challenge path fails now, by the
	// quorum of the remote perspectives, and the codes that say so.
	PathFailing func(name string) (bool, []reports.Code)
	// OnTargets receives every name of every watched Certificate whenever
	// the set changes (after the first sync, then on each change).
	OnTargets func([]Target)
	// Record keeps the watch's observation of a name (kind
	// KindCertManager); Forget drops it when no Certificate holds the name
	// any more.
	Record func(reports.Observation)
	Forget func(name string)
	// Explain, when set, says what a failed or stuck Challenge's solver
	// explains beyond the probes, checked with the Challenge's own key
	// (the rfc2136 server asked directly, the hosted zone against the zone
	// cut, the ingress route): its error findings lead the attempt's
	// causes. It is the daemon's (it asks the DNS); nil: no such findings.
	Explain func(ctx context.Context, c Check) []reports.Finding
}
