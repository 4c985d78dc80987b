package run

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

// The leader's peers are the other pods of the headless Service, listed by
// its EndpointSlices (one informer, one watch, while leading). Every
// cluster.peer_interval the leader asks each peer's GET
// /api/v1/observations for what it observed since the last answer and
// adds the observations of the peer's own vantages to its store, as it
// adds an agent's: one store, one Observation type, the peer's vantage
// named in each. A peer is untrusted input: its answer is bounded in time
// (cluster.peer_timeout) and size (maxPeerBody), and an answer that is not
// observations, or observations of names, kinds or vantages the leader
// does not know, is counted and dropped; it never stops the leader.

// Bounds on what one peer may make the leader do or hold.
const (
	maxPeerBody = 32 << 20 // 1,000 observations with traces: a few MiB
	// maxPeerVantages: a pod is one vantage (its node); a peer that
	// claims more is lying or misconfigured, and each vantage is series.
	maxPeerVantages = 4
	maxPeers        = 1000
	peerConcurrency = 8
	maxPeerFindings = 256
	maxPeerChecks   = 512
)

var peerVantageRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// peer is one other pod of the Service.
type peer struct {
	key  string // its pod's name, or its address
	base string // http://ADDR:PORT
}

// peerSet is what the leader knows of its peers: the newest start merged
// from each (the next question's since) and the vantages each brought.
type peerSet struct {
	d       *Daemon
	log     *zap.Logger
	hc      *http.Client
	fetches *prometheus.CounterVec
	count   prometheus.Gauge

	mu       sync.Mutex
	since    map[string]time.Time
	vantages map[string]map[string]reports.Vantage // peer → name → vantage
}

func newPeerSet(d *Daemon) *peerSet {
	ps := &peerSet{d: d, log: d.log.Named("peers"), since: map[string]time.Time{}, vantages: map[string]map[string]reports.Vantage{},
		// Peers are pods on the cluster network: no proxy, no redirects.
		hc: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, IdleConnTimeout: 90 * time.Second,
			ResponseHeaderTimeout: time.Minute},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmediag_peer_fetches_total",
			Help: "The leader's questions to its peers for their observations, by result: ok, truncated (more matched than one answer holds), error."},
			[]string{"result"}),
		count: prometheus.NewGauge(prometheus.GaugeOpts{Name: "acmediag_peers",
			Help: "Peers (other pods of the headless Service) the leader asks for their observations; 0 when not leading."}),
	}
	d.reg.MustRegister(ps.fetches, ps.count)
	for _, r := range []string{"ok", "truncated", "error"} {
		ps.fetches.WithLabelValues(r)
	}
	return ps
}

// run watches the Service's EndpointSlices and asks every peer at each
// tick until ctx ends.
func (ps *peerSet) run(ctx context.Context, cp *probes.ClusterPlan, cs kubernetes.Interface) {
	selector := labels.Set{discoveryv1.LabelServiceName: cp.Service}.String()
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(cp.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	eps := factory.Discovery().V1().EndpointSlices()
	informer, lister := eps.Informer(), eps.Lister()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return
	}
	own := os.Getenv("POD_IP")
	tick := time.NewTicker(cp.PeerInterval)
	defer tick.Stop()
	for {
		list, err := lister.List(labels.Everything())
		if err != nil {
			ps.log.Error("listing the EndpointSlices", zap.Error(err))
		}
		peers := peersOf(list, cp.Identity, own)
		ps.count.Set(float64(len(peers)))
		ps.forgetGone(peers)
		ps.askAll(ctx, peers, cp.PeerTimeout)
		select {
		case <-ctx.Done():
			ps.count.Set(0)
			return
		case <-tick.C:
		}
	}
}

// peersOf lists the Service's pods but this one (by pod name or address),
// each once, on the port named "http" (else the slice's first).
func peersOf(list []*discoveryv1.EndpointSlice, identity, ownIP string) []peer {
	seen := map[string]bool{}
	var out []peer
	for _, s := range list {
		var port *int32
		for _, p := range s.Ports {
			if p.Port != nil && (port == nil || p.Name != nil && *p.Name == "http") {
				port = p.Port
			}
		}
		if port == nil || s.AddressType == discoveryv1.AddressTypeFQDN {
			continue
		}
		for _, ep := range s.Endpoints {
			if len(ep.Addresses) == 0 || ep.Conditions.Terminating != nil && *ep.Conditions.Terminating {
				continue
			}
			addr := ep.Addresses[0]
			key := addr
			if ep.TargetRef != nil && ep.TargetRef.Name != "" {
				key = ep.TargetRef.Name
			}
			if key == identity || addr == ownIP || seen[key] || net.ParseIP(addr) == nil {
				continue
			}
			seen[key] = true
			out = append(out, peer{key: key, base: "http://" + net.JoinHostPort(addr, strconv.Itoa(int(*port)))})
		}
	}
	slices.SortFunc(out, func(a, b peer) int { return cmp.Compare(a.key, b.key) })
	if len(out) > maxPeers {
		out = out[:maxPeers]
	}
	return out
}

// askAll asks every peer, a few at a time, and merges their answers.
func (ps *peerSet) askAll(ctx context.Context, peers []peer, timeout time.Duration) {
	sem := make(chan struct{}, peerConcurrency)
	var wg sync.WaitGroup
	for _, p := range peers {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			n, truncated, err := ps.ask(ctx, p, timeout)
			switch {
			case err != nil:
				if ctx.Err() == nil {
					ps.fetches.WithLabelValues("error").Inc()
					ps.log.Warn("a peer's observations", zap.String("peer", p.key), zap.Error(err))
				}
			case truncated:
				ps.fetches.WithLabelValues("truncated").Inc()
				ps.log.Warn("a peer had more observations than one answer holds; the oldest were not merged (raise api.max_observations or lower cluster.peer_interval)",
					zap.String("peer", p.key), zap.Int("merged", n))
			default:
				ps.fetches.WithLabelValues("ok").Inc()
			}
		})
	}
	wg.Wait()
}

// ask fetches one peer's observations since the newest merged from it and
// merges them; it reports how many were merged and whether the peer had
// more than it sent.
func (ps *peerSet) ask(ctx context.Context, p peer, timeout time.Duration) (int, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ps.mu.Lock()
	since := ps.since[p.key]
	ps.mu.Unlock()
	if !since.IsZero() {
		// Observations are listed by start: a run that started before
		// the newest merged one may have finished since. No run outlasts
		// the schedule's timeout; repeats are dropped by merge.
		since = since.Add(-time.Duration(ps.d.Plan().Settings.Schedule.Timeout))
	}
	u := p.base + "/api/v1/observations"
	if !since.IsZero() {
		u += "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := ps.hc.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return 0, false, fmt.Errorf("%s: %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerBody+1))
	if err != nil {
		return 0, false, fmt.Errorf("%s: reading the answer: %w", u, err)
	}
	if len(data) > maxPeerBody {
		return 0, false, fmt.Errorf("%s: the answer is larger than %d bytes", u, maxPeerBody)
	}
	var obs []reports.Observation
	if err := json.Unmarshal(data, &obs); err != nil {
		return 0, false, fmt.Errorf("%s: the answer is not a list of observations: %w", u, err)
	}
	n := ps.merge(p.key, obs)
	return n, resp.Header.Get("X-Acmediag-Truncated") == "true", nil
}

// merge adds to the store the observations of a peer that are of this
// plan's targets and kinds (the leader's own lanes excepted), from a
// vantage that is not one of the leader's, and newer than the store's
// latest of their key; it returns how many.
func (ps *peerSet) merge(key string, obs []reports.Observation) int {
	p := ps.d.Plan()
	targets := make(map[string]bool, len(p.Targets))
	for _, t := range p.Targets {
		targets[t.Name] = true
	}
	own := map[string]bool{}
	for _, v := range p.Vantages {
		own[v.Name] = true
	}
	kinds := map[reports.Kind]bool{}
	for _, k := range p.Registry.Kinds() {
		kinds[k.Kind] = k.Lane == probes.LaneProbes
	}
	ps.mu.Lock()
	vs := ps.vantages[key]
	if vs == nil {
		vs = map[string]reports.Vantage{}
		ps.vantages[key] = vs
	}
	var ok []reports.Observation
	for _, o := range obs {
		v := o.Vantage
		switch {
		case !targets[o.Name] || !kinds[o.Kind] || own[v.Name] || !peerVantageRE.MatchString(v.Name) ||
			v.Kind != reports.External && v.Kind != reports.Cluster || o.Start.IsZero() ||
			len(o.Findings) > maxPeerFindings || len(o.Checks) > maxPeerChecks:
			continue
		}
		if _, known := vs[v.Name]; !known {
			if len(vs) >= maxPeerVantages {
				continue
			}
			vs[v.Name] = v
		}
		if len(o.Trace.Lines) > reports.MaxTraceLines {
			o.Trace.Lines = o.Trace.Lines[:reports.MaxTraceLines]
		}
		ok = append(ok, o)
	}
	ps.mu.Unlock()
	slices.SortStableFunc(ok, func(a, b reports.Observation) int { return a.Start.Compare(b.Start) })
	newest := map[string]map[string]time.Time{} // name → vantage/kind → start
	n := 0
	var last time.Time
	for _, o := range ok {
		last = maxTime(last, o.Start)
		byKey := newest[o.Name]
		if byKey == nil {
			byKey = map[string]time.Time{}
			for _, l := range ps.d.store.Latest(o.Name) {
				byKey[l.Vantage.Name+"\x00"+string(l.Kind)] = l.Start
			}
			newest[o.Name] = byKey
		}
		k := o.Vantage.Name + "\x00" + string(o.Kind)
		if t, seen := byKey[k]; seen && !o.Start.After(t) {
			continue // merged already: the since overlaps the last answer
		}
		byKey[k] = o.Start
		ps.d.store.Add(o)
		n++
	}
	ps.mu.Lock()
	if last.After(ps.since[key]) {
		ps.since[key] = last
	}
	ps.mu.Unlock()
	return n
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// forgetGone forgets the peers no longer listed: their observations leave
// the store, as a removed vantage's do.
func (ps *peerSet) forgetGone(current []peer) {
	keep := map[string]bool{}
	for _, p := range current {
		keep[p.key] = true
	}
	ps.forget(func(key string) bool { return !keep[key] })
}

// forgetAll forgets every peer: a pod that no longer leads shows only what
// it observed itself.
func (ps *peerSet) forgetAll() {
	ps.forget(func(string) bool { return true })
	ps.count.Set(0)
}

func (ps *peerSet) forget(gone func(key string) bool) {
	drop := map[string]bool{}
	ps.mu.Lock()
	for key, vs := range ps.vantages {
		if !gone(key) {
			continue
		}
		for name := range vs {
			drop[name] = true
		}
		delete(ps.vantages, key)
		delete(ps.since, key)
	}
	// A vantage another (remaining) peer brings stays.
	for _, vs := range ps.vantages {
		for name := range vs {
			delete(drop, name)
		}
	}
	ps.mu.Unlock()
	if len(drop) == 0 {
		return
	}
	ps.d.store.EachName(func(name string, latest []reports.Observation) {
		for _, o := range latest {
			if drop[o.Vantage.Name] {
				ps.d.store.Remove(name, o.Vantage.Name, o.Kind)
			}
		}
	})
}

// vantageList is the vantages the peers brought, by name: the report and
// the page count them beside the plan's own.
func (ps *peerSet) vantageList() []reports.Vantage {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	seen := map[string]bool{}
	var out []reports.Vantage
	for _, vs := range ps.vantages {
		for name, v := range vs {
			if !seen[name] {
				seen[name] = true
				out = append(out, v)
			}
		}
	}
	slices.SortFunc(out, func(a, b reports.Vantage) int { return cmp.Compare(a.Name, b.Name) })
	return out
}
