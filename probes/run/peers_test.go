package run

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

const fakeKind reports.Kind = "fake"

// fakeRegistry has one probe kind that answers at once without a network:
// a daemon of it needs nothing but loopback.
func fakeRegistry(t testing.TB) *probes.Registry {
	t.Helper()
	reg, err := newFakeRegistry()
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func newFakeRegistry(extra ...probes.KindSpec) (*probes.Registry, error) {
	return probes.NewRegistry(append([]probes.KindSpec{{Kind: fakeKind, Lane: probes.LaneProbes, Doc: "a test's own kind",
		Applies: func(*probes.Plan, probes.Target) bool { return true },
		New: func(*probes.Plan) probes.Probe {
			return probes.ProbeFunc(func(_ context.Context, t probes.Target, v probes.Vantage) reports.Observation {
				return reports.Observation{Name: t.Name, Challenge: t.Challenge, Vantage: v.Vantage, Kind: fakeKind, Start: time.Now()}.Finish()
			})
		}}}, extra...)...)
}

func peerTestDaemon(t *testing.T) *Daemon {
	t.Helper()
	s := probes.DefaultSettings()
	s.DNS.Resolvers = []string{"127.0.0.1"}
	s.Vantages = []probes.VantageSettings{{Name: "node-a", Kind: "cluster"}}
	s.Targets = []probes.Target{{Name: "a.example.com"}}
	d, err := NewDaemon(s, DaemonOptions{Registry: fakeRegistry(t), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// A peer's answer is untrusted: only observations of this daemon's
// targets and probe kinds, from a vantage that is not the leader's own and
// is well named, are merged, at most maxPeerVantages vantages per peer, and
// each observation once; an answer that is not observations, too large or
// too slow is an error that changes nothing. A peer that goes away takes
// its observations with it.
func TestPeerMerge(t *testing.T) {
	t.Parallel()
	d := peerTestDaemon(t)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	obs := func(name, vantage string, kind reports.Kind, at time.Duration) reports.Observation {
		return reports.Observation{Name: name, Challenge: reports.HTTP01, Vantage: reports.Vantage{Name: vantage, Kind: reports.Cluster},
			Kind: kind, Start: t0.Add(at), OK: true}
	}
	good := []reports.Observation{
		obs("a.example.com", "node-b", fakeKind, 0),
		obs("a.example.com", "node-b", fakeKind, time.Second), // the newer of the key
		obs("a.example.com", "node-a", fakeKind, 0),           // the leader's own vantage
		obs("other.example.com", "node-b", fakeKind, 0),       // not a target
		obs("a.example.com", "node-b", "dns", 0),              // a kind this daemon does not run
		obs("a.example.com", "bad name!", fakeKind, 0),
		obs("a.example.com", "", fakeKind, 0), // no vantage
	}
	for i := range 6 { // six more vantages: four per peer at most
		good = append(good, obs("a.example.com", "extra-"+string(rune('0'+i)), fakeKind, 0))
	}
	var mu sync.Mutex
	var queries []string
	srv := func(body func(w http.ResponseWriter)) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			queries = append(queries, r.URL.RawQuery)
			mu.Unlock()
			if r.URL.Path != "/api/v1/observations" {
				http.NotFound(w, r)
				return
			}
			body(w)
		}))
		t.Cleanup(s.Close)
		return s
	}
	okPeer := srv(func(w http.ResponseWriter) { _ = json.NewEncoder(w).Encode(good) })
	garbage := srv(func(w http.ResponseWriter) { _, _ = w.Write([]byte(`{"not": "a list"`)) })
	huge := srv(func(w http.ResponseWriter) {
		_, _ = w.Write([]byte("["))
		chunk := []byte(strings.Repeat(" ", 1<<20))
		for range maxPeerBody>>20 + 1 {
			_, _ = w.Write(chunk)
		}
	})
	stall := make(chan struct{})
	defer close(stall) // before the servers' Close, which waits for it
	slow := srv(func(http.ResponseWriter) { <-stall })
	failing := srv(func(w http.ResponseWriter) { http.Error(w, "boom", http.StatusInternalServerError) })

	ctx := context.Background()
	n, truncated, err := d.peers.ask(ctx, peer{key: "pod-b", base: okPeer.URL}, 5*time.Second)
	if err != nil || truncated {
		t.Fatalf("ask: %v (truncated %v)", err, truncated)
	}
	// node-b's two (the older first, then the newer) and three extras:
	// four vantages from one peer.
	if n != 5 {
		t.Errorf("merged %d observations, want 5", n)
	}
	latest := d.store.Latest("a.example.com")
	got := map[string]bool{}
	for _, o := range latest {
		got[o.Vantage.Name] = true
		if o.Vantage.Name == "node-b" && !o.Start.Equal(t0.Add(time.Second)) {
			t.Errorf("node-b's latest starts at %s, want the newer one", o.Start)
		}
	}
	if len(got) != maxPeerVantages || !got["node-b"] || got["node-a"] || got["bad name!"] {
		t.Errorf("vantages in the store %v, want node-b and three extras (node-a's own are its probes')", got)
	}
	if len(d.store.Latest("other.example.com")) != 0 {
		t.Error("an observation of a name that is not a target was merged")
	}
	if v := d.View("a.example.com"); len(v.Report.Vantages) != 1+maxPeerVantages {
		t.Errorf("the report counts %d vantages, want the plan's and the peer's", len(v.Report.Vantages))
	}

	// Asked again: since the newest merged (less the run timeout), and
	// nothing merged twice.
	if n, _, err := d.peers.ask(ctx, peer{key: "pod-b", base: okPeer.URL}, 5*time.Second); err != nil || n != 0 {
		t.Errorf("second ask merged %d (%v), want 0", n, err)
	}
	mu.Lock()
	last := queries[len(queries)-1]
	mu.Unlock()
	if !strings.HasPrefix(last, "since=") {
		t.Errorf("second question %q, want a since", last)
	}

	before := d.store.Stats().Observations
	for name, p := range map[string]*httptest.Server{"garbage": garbage, "huge": huge, "slow": slow, "failing": failing} {
		if _, _, err := d.peers.ask(ctx, peer{key: name, base: p.URL}, 500*time.Millisecond); err == nil {
			t.Errorf("%s peer: no error", name)
		}
	}
	if after := d.store.Stats().Observations; after != before {
		t.Errorf("bad peers changed the store: %d observations, then %d", before, after)
	}

	d.peers.forgetGone(nil)
	for _, o := range d.store.Latest("a.example.com") {
		t.Errorf("after the peer left, the store still holds %s's observation", o.Vantage.Name)
	}
	if vs := d.peers.vantageList(); len(vs) != 0 {
		t.Errorf("after the peer left, its vantages %v are still listed", vs)
	}
}

// The peers are the Service's endpoints but this pod, each once, on the
// port named http; terminating pods and FQDN slices are left out.
func TestPeersOf(t *testing.T) {
	t.Parallel()
	port := func(name string, n int32) discoveryv1.EndpointPort {
		return discoveryv1.EndpointPort{Name: &name, Port: &n}
	}
	ep := func(pod, addr string, terminating bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{addr}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: pod},
			Conditions: discoveryv1.EndpointConditions{Terminating: &terminating}}
	}
	list := []*discoveryv1.EndpointSlice{
		{AddressType: discoveryv1.AddressTypeIPv4, Ports: []discoveryv1.EndpointPort{port("metrics", 9090), port("http", 9464)},
			Endpoints: []discoveryv1.Endpoint{ep("pod-a", "10.0.0.1", false), ep("pod-b", "10.0.0.2", false), ep("pod-c", "10.0.0.3", true)}},
		{AddressType: discoveryv1.AddressTypeIPv6, Ports: []discoveryv1.EndpointPort{port("http", 9464)},
			Endpoints: []discoveryv1.Endpoint{ep("pod-d", "fd00::4", false), ep("pod-b", "fd00::2", false), ep("pod-e", "10.0.0.9", false)}},
		{AddressType: discoveryv1.AddressTypeFQDN, Ports: []discoveryv1.EndpointPort{port("http", 9464)},
			Endpoints: []discoveryv1.Endpoint{ep("pod-f", "f.example.com", false)}},
	}
	got := peersOf(list, "pod-a", "10.0.0.9")
	want := []peer{{key: "pod-b", base: "http://10.0.0.2:9464"}, {key: "pod-d", base: "http://[fd00::4]:9464"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("peers %+v, want %+v", got, want)
	}
}

// Without cluster mode the one daemon leads for its whole life: its
// LeaderWork starts with it (one that panics is started again, and the
// daemon keeps serving), acmediag_leader is 1, and stopping the daemon
// cancels the work.
func TestLeaderWorkWithoutCluster(t *testing.T) {
	t.Parallel()
	s := probes.DefaultSettings()
	s.DNS.Resolvers = []string{"127.0.0.1"}
	s.Listen = "127.0.0.1:0"
	s.Targets = []probes.Target{{Name: "a.example.com"}}
	started, stopped := make(chan struct{}, 4), make(chan struct{})
	panics := 0
	work := LeaderWork{Name: "test", Run: func(ctx context.Context) error {
		started <- struct{}{}
		if panics == 0 {
			panics++
			panic("a broken leader work")
		}
		<-ctx.Done()
		close(stopped)
		return ctx.Err()
	}}
	d, err := NewDaemon(s, DaemonOptions{Registry: fakeRegistry(t), Logger: zaptest.NewLogger(t), LeaderWork: []LeaderWork{work}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-started
	<-started // again, after the panic
	if !d.Leading() {
		t.Error("a daemon without cluster mode does not lead")
	}
	mfs, err := d.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "acmediag_leader" && mf.GetMetric()[0].GetGauge().GetValue() != 1 {
			t.Errorf("acmediag_leader %v, want 1", mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	cancel()
	<-stopped
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if d.Leading() {
		t.Error("still leading after the daemon stopped")
	}
}
