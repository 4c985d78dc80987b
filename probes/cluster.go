package probes

import (
	"os"
	"regexp"
	"time"
)

// ClusterPlan is cluster mode as validated: the Lease this pod competes
// for, under which identity, with which timing, and where its peers are
// listed.
type ClusterPlan struct {
	Namespace, LeaseName, Identity string
	LeaseDuration                  time.Duration
	RenewDeadline                  time.Duration
	RetryPeriod                    time.Duration
	// Service is the headless Service of the peers; "" none are asked.
	Service      string
	PeerInterval time.Duration
	PeerTimeout  time.Duration
}

// leaderJitter is client-go's leaderelection.JitterFactor: the renew
// deadline must exceed the retry period by it, or NewLeaderElector refuses
// the timing at start instead of here, naming the key.
const leaderJitter = 1.2

var (
	dnsLabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// cluster validates the cluster: section; nil when cluster mode is off.
// The namespace and identity default to the pod's own (POD_NAMESPACE,
// POD_NAME), which the downward API gives a pod.
func (b *builder) cluster() *ClusterPlan {
	c := b.s.Cluster
	if !c.Enabled {
		return nil
	}
	p := &ClusterPlan{Namespace: c.Namespace, LeaseName: c.LeaseName, Identity: c.Identity, Service: c.Service,
		LeaseDuration: time.Duration(c.LeaseDuration), RenewDeadline: time.Duration(c.RenewDeadline), RetryPeriod: time.Duration(c.RetryPeriod),
		PeerInterval: time.Duration(c.PeerInterval), PeerTimeout: time.Duration(c.PeerTimeout)}
	if p.Namespace == "" {
		p.Namespace = os.Getenv("POD_NAMESPACE")
	}
	switch {
	case p.Namespace == "":
		b.errf("cluster.namespace", "missing: name the namespace of the Lease, or set POD_NAMESPACE (the downward API's metadata.namespace)")
	case !dnsLabelRE.MatchString(p.Namespace):
		b.errf("cluster.namespace", "%q is not a namespace name (a DNS label)", truncate(p.Namespace, 70))
	}
	if len(p.LeaseName) > 253 || !dnsSubdomainRE.MatchString(p.LeaseName) {
		b.errf("cluster.lease_name", "%q is not a Lease name (a DNS subdomain)", truncate(p.LeaseName, 70))
	}
	if p.Identity == "" {
		p.Identity = os.Getenv("POD_NAME")
	}
	if p.Identity == "" {
		p.Identity, _ = os.Hostname()
	}
	if p.Identity == "" || len(p.Identity) > 253 {
		b.errf("cluster.identity", "%q: want this pod's name (1-253 characters), or set POD_NAME", truncate(p.Identity, 70))
	}
	if p.Service != "" && !dnsLabelRE.MatchString(p.Service) {
		b.errf("cluster.service", "%q is not a Service name (a DNS label)", truncate(p.Service, 70))
	}
	switch {
	case p.RetryPeriod < 100*time.Millisecond || p.RetryPeriod > time.Hour:
		b.errf("cluster.retry_period", "%s: want 100ms to 1h", p.RetryPeriod)
	case p.RenewDeadline <= time.Duration(leaderJitter*float64(p.RetryPeriod)):
		b.errf("cluster.renew_deadline", "%s: want more than 1.2 × cluster.retry_period (%s)", p.RenewDeadline, p.RetryPeriod)
	case p.LeaseDuration <= p.RenewDeadline || p.LeaseDuration > 24*time.Hour:
		b.errf("cluster.lease_duration", "%s: want more than cluster.renew_deadline (%s), at most 24h", p.LeaseDuration, p.RenewDeadline)
	}
	if p.PeerInterval < time.Second || p.PeerInterval > 24*time.Hour {
		b.errf("cluster.peer_interval", "%s: want 1s to 24h", p.PeerInterval)
	}
	if p.PeerTimeout < 100*time.Millisecond || p.PeerTimeout > p.PeerInterval {
		b.errf("cluster.peer_timeout", "%s: want 100ms up to cluster.peer_interval (%s)", p.PeerTimeout, p.PeerInterval)
	}
	return p
}
