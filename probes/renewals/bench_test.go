package renewals_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/acmediag/acmediag/probes/renewals"
	"github.com/acmediag/acmediag/testenv/kube"
	"github.com/acmediag/acmediag/testenv/toolbuild"
)

// countingTransport counts the watcher's API requests.
type countingTransport struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func heapBytes() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkWatcher5000 is the watch of 5,000 Certificates, each with its
// CertificateRequest, Order and a Challenge in its self-check, on the real
// API server: the heap and RSS the watcher adds once synced, its API
// requests per minute at steady state, and (ns/op) the time from a
// Challenge turning invalid to its Event. Run it with -benchtime=20x
// under flock /tmp/acmediag-universe.lock.
func BenchmarkWatcher5000(b *testing.B) {
	const certs = 5000
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	etcd, err := toolbuild.Build(ctx, toolbuild.Etcd)
	if err != nil {
		b.Skip(err)
	}
	api, err := toolbuild.Build(ctx, toolbuild.KubeAPIServer)
	if err != nil {
		b.Skip(err)
	}
	c, err := kube.Start(ctx, kube.Options{EtcdBin: etcd, APIServerBin: api, Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	admin := clientsFor(b, c, c.AdminToken())
	const ns = "bench"
	if err := kube.EnsureNamespace(ctx, admin.kube, ns); err != nil {
		b.Fatal(err)
	}
	acmeIssuer(ctx, b, admin, ns, "le", []cmacme.ACMEChallengeSolver{{HTTP01: &cmacme.ACMEChallengeSolverHTTP01{Ingress: &cmacme.ACMEChallengeSolverHTTP01Ingress{}}}})
	start := time.Now()
	now := time.Now()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				name := fmt.Sprintf("c%04d", i)
				crt := issuedCertificate(ctx, b, admin, ns, name, "le", []string{name + ".bench.example"}, nil, now.Add(-60*24*time.Hour), now.Add(30*24*time.Hour), now.Add(10*24*time.Hour))
				startRenewal(ctx, b, admin, crt, 1, name+".bench.example", cmacme.ACMEChallengeTypeHTTP01, now)
			}
		})
	}
	for i := range certs {
		work <- i
	}
	close(work)
	wg.Wait()
	b.Logf("%d Certificates with their requests, orders and challenges written in %s", certs, time.Since(start).Round(time.Second))

	var requests atomic.Int64
	cfg := c.ConfigForToken(c.AdminToken())
	cfg.QPS, cfg.Burst = 20, 40 // the daemon's (renewals.RESTConfig)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingTransport{rt, &requests} }
	cm, k, err := renewals.Clients(cfg)
	if err != nil {
		b.Fatal(err)
	}
	heap0, rss0 := heapBytes(), rssBytes()
	s := newSink()
	opts := s.options(clients{cm, k}, nil, b)
	w, err := renewals.New(renewals.Config{Events: true}, opts)
	if err != nil {
		b.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	syncStart := time.Now()
	go func() { done <- w.Run(wctx) }()
	defer func() {
		stop()
		<-done
	}()
	for {
		s.mu.Lock()
		n := len(s.targets)
		s.mu.Unlock()
		if n == certs {
			break
		}
		if ctx.Err() != nil {
			b.Fatal("the watch did not publish every target")
		}
		time.Sleep(50 * time.Millisecond)
	}
	synced := time.Since(syncStart)
	time.Sleep(2 * time.Second) // the first evaluation of every object
	heap1, rss1 := heapBytes(), rssBytes()
	before := requests.Load()
	const steady = 60 * time.Second
	time.Sleep(steady)
	perMinute := float64(requests.Load()-before) / steady.Minutes()

	evw, err := admin.kube.CoreV1().Events(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("reason", renewals.EventReason).String()})
	if err != nil {
		b.Fatal(err)
	}
	defer evw.Stop()
	seen := make(chan string, 64)
	go func() {
		for e := range evw.ResultChan() {
			if ev, ok := e.Object.(*corev1.Event); ok && e.Type == watch.Added {
				seen <- ev.InvolvedObject.Name
			}
		}
	}()
	var lat []time.Duration
	// b.Loop runs this function once (the 5,000 objects are written once).
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		name := fmt.Sprintf("c%04d", i)
		ch, err := admin.cm.AcmeV1().Challenges(ns).Get(ctx, fmt.Sprintf("%s-1-%d-42", name, 1234567891), metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		ch.Status.Processing, ch.Status.Presented, ch.Status.State = false, false, cmacme.Invalid
		ch.Status.Reason = "Error accepting authorization: acme: authorization error for " + ch.Spec.DNSName + ": 400 urn:ietf:params:acme:error:connection: Timeout during connect (likely firewall problem)"
		b.StartTimer()
		t0 := time.Now()
		if _, err := admin.cm.AcmeV1().Challenges(ns).UpdateStatus(ctx, ch, metav1.UpdateOptions{}); err != nil {
			b.Fatal(err)
		}
		for got := ""; got != name; {
			select {
			case got = <-seen:
			case <-ctx.Done():
				b.Fatal("no Event")
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(heap1-heap0)/(1<<20), "heap-MiB")
	b.ReportMetric(float64(rss1-rss0)/(1<<20), "rss-MiB")
	b.ReportMetric(perMinute, "requests/min")
	b.ReportMetric(synced.Seconds(), "sync-s")
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "event-p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1])/1e6, "event-max-ms")
}
