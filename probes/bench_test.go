//go:build linux

package probes

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acmediag/acmediag/probes/tlscheck"
	"github.com/acmediag/acmediag/testenv/measure"

	"github.com/miekg/dns"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
)

// The benchmarks' universe runs in a child process (this test binary
// re-executed, see TestMain), so that the authoritative
// servers' CPU is in neither side's measurement: ours is RUSAGE_SELF, the
// exporter's its /proc/PID/stat.
const (
	benchUniverseEnv  = "ACMEDIAG_PROBES_BENCH_UNIVERSE"
	benchUniversePort = 10553
	benchZone         = "healthy-unsigned.com."
	benchBlackboxBin  = "prometheus-blackbox-exporter"
)

// TestMain turns the test binary into the benchmarks' universe process
// when they start it (benchUniverseEnv set): it starts the hermetic
// universe, prints the authoritative addresses of benchZone and serves
// until its stdin closes.
func TestMain(m *testing.M) {
	if os.Getenv(benchUniverseEnv) == "1" {
		os.Exit(benchUniverseProcess())
	}
	os.Exit(m.Run())
}

func benchUniverseProcess() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	u, err := testenv.Start(ctx, testenv.Options{Port: benchUniversePort})
	cancel()
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	defer u.Close()
	var addrs []string
	for _, s := range u.Servers() {
		for _, z := range s.Zones() {
			if dns.Fqdn(z) == benchZone {
				addrs = append(addrs, s.Addrs()...)
			}
		}
	}
	// The certificate the tls kind reads: a site serving a complete chain
	// from the universe's CA (tls-ok).
	if web := u.WebAddrs("tls-ok"); len(web) > 0 {
		fmt.Println("TLS", web[0], u.HTTPSPort(), u.TLSRootsFile())
	}
	fmt.Println("READY", strings.Join(addrs, " "))
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// benchTLSSite is where the bench universe serves a certificate.
type benchTLSSite struct {
	addr  netip.Addr
	port  int
	roots string // PEM file
}

// startBenchUniverse runs the universe process and returns the zone's
// authoritative server addresses (IPv4 only: blackbox is told ip4).
func startBenchUniverse(b *testing.B) []netip.AddrPort {
	servers, _ := startBenchUniverseTLS(b)
	return servers
}

// startBenchUniverseTLS is startBenchUniverse with the TLS site.
func startBenchUniverseTLS(b *testing.B) ([]netip.AddrPort, benchTLSSite) {
	b.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), benchUniverseEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 1)
	var site benchTLSSite
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			l := sc.Text()
			if f := strings.Fields(l); len(f) == 4 && f[0] == "TLS" {
				site.addr, _ = netip.ParseAddr(f[1])
				site.port, _ = strconv.Atoi(f[2])
				site.roots = f[3]
			}
			if strings.HasPrefix(l, "READY") || strings.HasPrefix(l, "ERROR") {
				lines <- l
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(3 * time.Minute):
		b.Fatal("the universe process did not start within 3 minutes")
	}
	if strings.HasPrefix(line, "ERROR") {
		b.Fatalf("universe: %s", line)
	}
	var servers []netip.AddrPort
	for _, f := range strings.Fields(line)[1:] {
		a, err := netip.ParseAddr(f)
		if err != nil || !a.Is4() {
			continue
		}
		servers = append(servers, netip.AddrPortFrom(a, benchUniversePort))
	}
	if len(servers) == 0 {
		b.Fatalf("no IPv4 authoritative address for %s in %q", benchZone, line)
	}
	return servers, site
}

// queryProbe costs what a DNS probe's smallest unit costs: one real
// question, RD=0, to one authoritative address of the universe through a
// dnscheck.Querier (a new one per run, as a probe round has), turned into
// an observation with a check. The universe has no zone with 10,000
// names, so each target t<i>.healthy-unsigned.com gets an authoritative
// NXDOMAIN: a real answer, the same work as a positive one.
type queryProbe struct {
	servers []netip.AddrPort
	udp     *dnscheck.UDPPool // shared by every run, as the daemon shares one
}

func (p *queryProbe) Kind() reports.Kind { return KindDNS }

func (p *queryProbe) Run(ctx context.Context, t Target, v Vantage) reports.Observation {
	start := time.Now()
	q := dnscheck.NewQuerier(2*time.Second, v.SourceAddr, nil)
	q.UseUDPPool(p.udp)
	// Each vantage asks its own address of the zone.
	i, _ := strconv.Atoi(strings.TrimPrefix(v.Name, "v"))
	server := p.servers[i%len(p.servers)]
	resp := q.Query(ctx, server, t.Name, dns.TypeA, dnscheck.QueryOptions{})
	c := reports.Check{Name: "dns.authoritative", Target: t.Name, Status: reports.CheckOK, Duration: time.Since(start)}
	o := reports.Observation{Name: t.Name, Challenge: t.Challenge, Vantage: v.Vantage, Kind: KindDNS, Start: start, Checks: []reports.Check{c}}
	if resp.Msg == nil || resp.Msg.Rcode != dns.RcodeNameError {
		o.Checks[0].Status = reports.CheckFail
		o.Findings = []reports.Finding{reports.New(reports.CodeDNSTimeout, t.Name, fmt.Sprintf("%s: %v", server, resp.Err))}
	}
	o.Duration = time.Since(start)
	return o.Finish()
}

// fillStore adds observations shaped like queryProbe's, each its own
// allocation, dated before the measurement, until the store is at its byte
// bound.
func fillStore(store *Store, ts []Target, vs []Vantage) {
	old := time.Now().Add(-time.Hour)
	for i := 0; i < 10_000_000; i++ { // bounded; the store fills long before
		t, v := ts[i%len(ts)], vs[(i/len(ts))%len(vs)]
		o := reports.Observation{Name: t.Name, Challenge: t.Challenge, Vantage: v.Vantage, Kind: KindDNS, Start: old, Duration: time.Millisecond, OK: true,
			Checks: []reports.Check{{Name: "dns.authoritative", Target: t.Name, Status: reports.CheckOK, Duration: time.Millisecond}}}
		store.Add(o)
		if st := store.Stats(); st.Dropped > 0 {
			return
		}
	}
}

func benchWork(names, vantages int) ([]Target, []Vantage) {
	ts := make([]Target, names)
	for i := range ts {
		ts[i] = Target{Name: fmt.Sprintf("t%d.%s", i, strings.TrimSuffix(benchZone, ".")), Challenge: "http-01"}
	}
	vs := make([]Vantage, vantages)
	for i := range vs {
		vs[i] = Vantage{Vantage: reports.Vantage{Name: fmt.Sprintf("v%d", i), Kind: reports.External}}
	}
	return ts, vs
}

// selfCPU is this process's user+system CPU time.
func selfCPU(tb testing.TB) time.Duration {
	tb.Helper()
	d, err := measure.SelfCPU()
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// selfRSS is this process's resident set size now, from /proc/self/statm.
func selfRSS(tb testing.TB) int64 {
	tb.Helper()
	n, err := measure.SelfRSS()
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// procCPU is a process's user+system CPU time from /proc/PID/stat.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	d, err := measure.ProcessCPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

const mib = 1 << 20

// BenchmarkSchedulerDNS10k runs the scheduler as the daemon would with
// 10,000 names × 4 vantages every 60 s on the real clock, each run one
// authoritative question to the universe (queryProbe), the store at its
// default bound and the metrics counting. The first runs are spread over
// one interval, so the load is steady from the start: one op is one second
// of that steady state. Reported: our CPU as a share of one core and per
// run, RSS and heap at the end; then, side by side, blackbox_exporter's DNS
// probe CPU per probe against the same server.
func BenchmarkSchedulerDNS10k(b *testing.B) {
	b.Run("probe=dns-query", func(b *testing.B) {
		servers := startBenchUniverse(b)
		probe := &queryProbe{servers: servers, udp: dnscheck.NewUDPPool()}
		// One question outside the measurement: the universe must answer.
		if o := probe.Run(b.Context(), Target{Name: "t0.healthy-unsigned.com"}, vantages("v0")[0]); !o.OK {
			b.Fatalf("the universe does not answer: %+v", o.Findings)
		}
		cpuPerRun := steadyScheduler(b, Schedule{}, probe)
		// blackbox_exporter's DNS probe, same question shape, same server.
		bbPath, err := testenv.EnsureCommand(b.Context(), benchBlackboxBin, "prometheus-blackbox-exporter")
		if err != nil {
			b.Logf("no side-by-side number: %v", err)
			return
		}
		bbPerProbe := blackboxDNSCPU(b, bbPath, servers[0], "t1.healthy-unsigned.com", 2000)
		b.ReportMetric(float64(bbPerProbe.Microseconds()), "blackbox-cpu-µs/probe")
		if cpuPerRun > 0 {
			b.ReportMetric(float64(bbPerProbe)/float64(cpuPerRun), "x-less-cpu")
		}
	})
	// The same load with a probe that does nothing: what the scheduler,
	// store and metrics cost by themselves.
	b.Run("probe=none", func(b *testing.B) { steadyScheduler(b, Schedule{}, idleProbe("dns")) })
	// The daemon with the tls kind on: every name's certificate read from
	// every vantage every 5 minutes (a real handshake with SNI to the
	// universe's TLS site, the chain's judgement cached per vantage as
	// the kind keeps it) beside the DNS question every 60 s.
	b.Run("probe=dns-query+tls", func(b *testing.B) {
		servers, site := startBenchUniverseTLS(b)
		if !site.addr.IsValid() {
			b.Fatal("the universe process named no TLS site")
		}
		pem, err := os.ReadFile(site.roots)
		if err != nil {
			b.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(pem)
		tp := &tlsProbe{site: site, roots: roots, checker: &tlscheck.Checker{}}
		if o := tp.Run(b.Context(), Target{Name: "t0"}, vantages("v0")[0]); !o.OK {
			b.Fatalf("the TLS site does not pass: %+v", o.Findings)
		}
		steadyScheduler(b, Schedule{Interval: map[reports.Kind]time.Duration{KindTLS: DefaultTLSInterval}},
			&queryProbe{servers: servers, udp: dnscheck.NewUDPPool()}, tp)
	})
}

// tlsProbe costs what one run of the tls kind costs: a handshake with SNI
// to the universe's TLS site through a long-lived tlscheck.Checker (one
// per vantage in the daemon; the chain's judgement cached), turned into
// an observation with the served facts. Every target asks for the site's
// own name: the universe has no certificate for 10,000 names.
type tlsProbe struct {
	site    benchTLSSite
	roots   *x509.CertPool
	checker *tlscheck.Checker
}

func (p *tlsProbe) Kind() reports.Kind { return KindTLS }

func (p *tlsProbe) Run(ctx context.Context, t Target, v Vantage) reports.Observation {
	start := time.Now()
	res := p.checker.Inspect(ctx, tlscheck.Request{Name: "tls-ok.acmeweb.com", Addrs: []netip.Addr{p.site.addr}, Port: p.site.port, Roots: p.roots})
	return reports.Observation{Name: t.Name, Challenge: t.Challenge, Vantage: v.Vantage, Kind: KindTLS, Start: start, Duration: time.Since(start),
		Findings: res.Findings, TLS: &reports.TLSFacts{Served: res.Served("")}}.Finish()
}

// steadyScheduler runs 10,000 names × 4 vantages × probe every 60 s on the
// real clock for b.N seconds and reports CPU, memory and goroutines; it
// returns the CPU per run.
func steadyScheduler(b *testing.B, sch Schedule, probes ...kindProbe) time.Duration {
	ts, vs := benchWork(10_000, 4)
	store := NewStore(StoreLimits{})
	// The daemon's store fills to its bound within hours; start there, so
	// that RSS is the steady state's, not the first minute's.
	fillStore(store, ts, vs)
	metrics := NewMetrics(nil, store, nil, "bench")
	s := newSched(sch, probes, store, nil, RealClock())
	s.SetMetrics(metrics)
	s.SetWork(ts, vs)
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	time.Sleep(2 * time.Second) // past the first burst of allocation
	runs0 := store.Stats().Observations + int(store.Stats().Dropped)
	b.ResetTimer()
	cpu0, wall0 := selfCPU(b), time.Now()
	for range b.N {
		time.Sleep(time.Second)
	}
	cpu, wall := selfCPU(b)-cpu0, time.Since(wall0)
	b.StopTimer()
	st := store.Stats()
	runs := st.Observations + int(st.Dropped) - runs0
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if runs <= 0 {
		b.Fatal("no run completed")
	}
	fails := 0
	for _, o := range store.Latest("") {
		if !o.OK {
			fails++
		}
	}
	if fails > 0 {
		b.Errorf("%d of the latest observations failed: the measurement would mix failure paths in", fails)
	}
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds(), "%core")
	b.ReportMetric(float64(cpu.Microseconds())/float64(runs), "cpu-µs/run")
	b.ReportMetric(float64(runs)/wall.Seconds(), "runs/s")
	b.ReportMetric(float64(selfRSS(b))/mib, "rss-MiB")
	b.ReportMetric(float64(ms.HeapInuse)/mib, "heap-MiB")
	b.ReportMetric(float64(st.Bytes)/mib, "store-MiB")
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/mib, "live-heap-MiB")
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	return cpu / time.Duration(runs)
}

// blackboxDNSCPU runs n blackbox DNS probes of name at server and returns
// the exporter's CPU per probe (the driving client's CPU is not in it).
func blackboxDNSCPU(b *testing.B, bin string, server netip.AddrPort, name string, n int) time.Duration {
	b.Helper()
	dir := b.TempDir()
	cfg := filepath.Join(dir, "blackbox.yml")
	conf := fmt.Sprintf(`modules:
  dns_nx:
    prober: dns
    timeout: 5s
    dns:
      query_name: %q
      query_type: A
      transport_protocol: udp
      preferred_ip_protocol: ip4
      recursion_desired: false
      valid_rcodes: [NXDOMAIN]
`, name)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	port := freePort(b)
	cmd := exec.Command(bin, "--config.file="+cfg, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	client := &http.Client{Timeout: 10 * time.Second}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	up := false
	for range 100 {
		if resp, err := client.Get(base + "/-/healthy"); err == nil {
			_ = resp.Body.Close()
			up = true
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !up {
		b.Fatal("blackbox_exporter did not come up within 10 s")
	}
	probeURL := base + "/probe?module=dns_nx&target=" + url.QueryEscape(server.String())
	probe := func() {
		resp, err := client.Get(probeURL)
		if err != nil {
			b.Fatalf("blackbox probe: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if !strings.Contains(string(body), "\nprobe_success 1") {
			b.Fatalf("blackbox probe of %s did not succeed:\n%s", server, body)
		}
	}
	probe()
	cpu0 := procCPU(b, cmd.Process.Pid)
	for range n {
		probe()
	}
	return (procCPU(b, cmd.Process.Pid) - cpu0) / time.Duration(n)
}

// freePort asks the kernel for an unused loopback port for a child.
func freePort(tb testing.TB) int {
	tb.Helper()
	port, err := measure.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// idleProbe passes at once: the idle benchmark measures the scheduler.
type idleProbe string

func (p idleProbe) Kind() reports.Kind { return reports.Kind(p) }
func (p idleProbe) Run(_ context.Context, t Target, v Vantage) reports.Observation {
	return reports.Observation{Name: t.Name, Vantage: v.Vantage, Kind: reports.Kind(p)}.Finish()
}

// BenchmarkSchedulerDNS100k runs one round of 100,000 names × 4 vantages
// (the daemon's largest configuration) through the scheduler and the
// store: every (name, vantage) must hold its latest observation after the
// round, whatever the store's byte bound, and the process must stay within
// 256 MiB of RSS. Each run is one authoritative question (queryProbe); the
// round is spread over 20 s instead of the interval so one op is quick.
func BenchmarkSchedulerDNS100k(b *testing.B) {
	servers := startBenchUniverse(b)
	probe := &queryProbe{servers: servers, udp: dnscheck.NewUDPPool()}
	const names, nv = 100_000, 4
	// The daemon's soft memory limit (memory_limit's default).
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(DefaultMemoryLimit))
	for range b.N {
		ts, vs := benchWork(names, nv)
		store := NewStore(StoreLimits{})
		metrics := NewMetrics(nil, store, nil, "bench")
		s := newSched(Schedule{FirstWithin: 20 * time.Second, Concurrency: 64}, []kindProbe{probe}, store, nil, RealClock())
		s.SetMetrics(metrics)
		cpu0, wall0 := selfCPU(b), time.Now()
		s.SetWork(ts, vs)
		ctx, cancel := context.WithCancel(b.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		peak := int64(0)
		tick := time.NewTicker(200 * time.Millisecond)
	round:
		for {
			select {
			case <-s.AllRan():
				break round
			case <-tick.C:
				peak = max(peak, selfRSS(b))
			case <-time.After(5 * time.Minute):
				b.Fatal("the round did not complete within 5 minutes")
			}
		}
		tick.Stop()
		cpu, wall := selfCPU(b)-cpu0, time.Since(wall0)
		peak = max(peak, selfRSS(b))
		latest := store.Latest("")
		cancel()
		<-done
		if len(latest) != names*nv {
			b.Fatalf("%d latest observations after one round, want %d", len(latest), names*nv)
		}
		fails := 0
		for _, o := range latest {
			if !o.OK {
				fails++
			}
		}
		if fails > 0 {
			b.Errorf("%d of the latest observations failed", fails)
		}
		st := store.Stats()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapAlloc)/mib, "live-heap-MiB")
		b.ReportMetric(float64(peak)/mib, "peak-rss-MiB")
		b.ReportMetric(float64(st.Bytes)/mib, "store-MiB")
		b.ReportMetric(float64(cpu.Microseconds())/float64(names*nv), "cpu-µs/run")
		b.ReportMetric(wall.Seconds(), "round-s")
		if peak > 256*mib {
			b.Errorf("peak RSS %d MiB, want at most 256 (live heap %d MiB, store %d MiB, round %s)", peak/mib, ms.HeapAlloc/mib, st.Bytes/mib, wall)
		}
		runtime.KeepAlive(ts)
		runtime.KeepAlive(s)
	}
}
