package probes

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/challenge/dns01"
	legolog "github.com/go-acme/lego/v5/log"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/reports"
)

// Benchmark 1 (issue 5): propagation verdict lag and query count,
// acmediag's watch against lego v5's own dns-01 propagation check.
const (
	benchPropZone = "txtmissing.com" // unsigned, two servers, nothing else uses it here
	// benchWatcherSource is the watch's source address, so that the
	// packet counters tell its queries from lego's (and lego's resolver's).
	benchWatcherSource = "127.0.0.77"
)

// benchSchedules are the times after the start at which ns1 and ns2 of the
// zone receive the value; iterations cycle through them.
var benchSchedules = [][2]time.Duration{
	{0, 200 * time.Millisecond}, {0, 700 * time.Millisecond}, {0, 1300 * time.Millisecond},
	{200 * time.Millisecond, 700 * time.Millisecond}, {200 * time.Millisecond, 1300 * time.Millisecond},
	{700 * time.Millisecond, 1300 * time.Millisecond},
}

// BenchmarkPropagationLag publishes a fresh TXT value on the zone's two
// servers at scheduled times, and has acmediag's propagation watch (a plan
// with the value as a target's expect_txt, run by an Engine on the real
// clock) and lego's dns01.Challenge.Solve (its defaults: 2 s wait, then its
// check every 2 s, recursive and authoritative) watch the same name at the
// same time. Lag is from the moment the last server serves the value to
// each saying it is everywhere. Queries are counted by nftables counters on
// the universe's addresses (root only; both sides' and lego's resolver's
// upstream queries).
func BenchmarkPropagationLag(b *testing.B) {
	log := zap.NewNop()
	u := startPropagationUniverse(b, log)
	var zoneAddrs []string
	for _, id := range []string{benchPropZone + "-ns1", benchPropZone + "-ns2"} {
		zoneAddrs = append(zoneAddrs, u.Server(id).Addrs()...)
	}
	restore := pointLegoAt(b, u.Resolver(), u.Port())
	defer restore()
	core := legoCore(b)
	counters := startCounters(b, u.Port(), zoneAddrs, u.Resolver())
	shared := NewShared()
	engine := NewEngine(NewStore(StoreLimits{}), nil, log, nil)
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	plan := func(target Target) *Plan {
		p, err := Build(universeSettings(u, target), BuildOptions{Logger: log, Shared: shared})
		if err != nil {
			b.Fatal(err)
		}
		// The watch's own source address, so the counters tell its
		// queries from lego's.
		p.Env.Checker.LocalAddr = netip.MustParseAddr(benchWatcherSource)
		return p
	}
	engine.SetPlan(plan(Target{Name: "www." + benchPropZone, Challenge: reports.HTTP01}))
	go engine.Run(runCtx)

	var oursLag, legoLag []time.Duration
	b.ResetTimer()
	for i := range b.N {
		sched := benchSchedules[i%len(benchSchedules)]
		domain := fmt.Sprintf("pb%d-%d.%s", os.Getpid(), i, benchPropZone)
		token := fmt.Sprintf("token-%d-%d", os.Getpid(), i)
		keyAuth, err := core.GetKeyAuthorization(token)
		if err != nil {
			b.Fatal(err)
		}
		sum := legoValue(keyAuth)
		owner := "_acme-challenge." + domain

		ctx, cancel := context.WithTimeout(context.Background(), 70*time.Second)
		t0 := time.Now()
		var lastSet time.Time
		var setMu sync.Mutex
		var wg sync.WaitGroup
		for k, d := range sched {
			wg.Go(func() {
				time.Sleep(time.Until(t0.Add(d)))
				if err := u.SetTXT(benchPropZone, owner, []string{sum}, fmt.Sprintf("%s-ns%d", benchPropZone, k+1)); err != nil {
					b.Error(err)
				}
				setMu.Lock()
				if now := time.Now(); now.After(lastSet) {
					lastSet = now
				}
				setMu.Unlock()
			})
		}
		var oursAt, legoAt time.Time
		var oursErr, legoErr error
		wg.Go(func() {
			// The value becomes a target's expect_txt: the watch starts.
			engine.SetPlan(plan(Target{Name: domain, Challenge: reports.DNS01, ExpectTXT: sum}))
			oursErr = shared.Watches.waitEverywhere(ctx, domain, sum)
			oursAt = time.Now()
		})
		wg.Go(func() {
			chlg := dns01.NewChallenge(core, func(context.Context, *api.Core, string, acme.Challenge) error {
				legoAt = time.Now() // lego's check passed: it would answer the challenge now
				return nil
			}, nopProvider{})
			legoErr = chlg.Solve(ctx, acme.Authorization{Identifier: acme.Identifier{Type: "dns", Value: domain},
				Challenges: []acme.Challenge{{Type: "dns-01", Token: token}}})
		})
		wg.Wait()
		cancel()
		if oursErr != nil || legoErr != nil {
			b.Fatalf("iteration %d: acmediag %v, lego %v", i, oursErr, legoErr)
		}
		oursLag = append(oursLag, oursAt.Sub(lastSet))
		legoLag = append(legoLag, legoAt.Sub(lastSet))
	}
	b.StopTimer()

	n := float64(b.N)
	c := counters.read(b)
	op50, op90 := percentile(oursLag, 50), percentile(oursLag, 90)
	lp50, lp90 := percentile(legoLag, 50), percentile(legoLag, 90)
	b.ReportMetric(op50.Seconds()*1000, "acmediag-lag-p50-ms")
	b.ReportMetric(op90.Seconds()*1000, "acmediag-lag-p90-ms")
	b.ReportMetric(lp50.Seconds()*1000, "lego-lag-p50-ms")
	b.ReportMetric(lp90.Seconds()*1000, "lego-lag-p90-ms")
	if c != nil {
		b.ReportMetric(float64(c["ours_all"])/n, "acmediag-queries/op")
		b.ReportMetric(float64(c["lego_all"])/n, "lego-queries/op")
	}
	var tab strings.Builder
	fmt.Fprintf(&tab, "\npropagation verdict lag after the last server serves the value (%d iterations, schedules %v)\n", b.N, benchSchedules)
	fmt.Fprintf(&tab, "%-10s %10s %10s %10s %10s\n", "", "lag p50", "lag p90", "lag min", "lag max")
	fmt.Fprintf(&tab, "%-10s %10s %10s %10s %10s\n", "acmediag", ms(op50), ms(op90), ms(slices.Min(oursLag)), ms(slices.Max(oursLag)))
	fmt.Fprintf(&tab, "%-10s %10s %10s %10s %10s\n", "lego v5", ms(lp50), ms(lp90), ms(slices.Min(legoLag)), ms(slices.Max(legoLag)))
	if op50 > 0 {
		fmt.Fprintf(&tab, "lag ratio lego/acmediag: p50 %.1f×, p90 %.1f×\n", float64(lp50)/float64(op50), float64(lp90)/float64(op90))
	}
	if c != nil {
		fmt.Fprintf(&tab, "queries per watch (UDP packets to the universe, counted by nftables):\n")
		fmt.Fprintf(&tab, "%-10s %14s %18s %22s\n", "", "total", "to zone servers", "to the resolver")
		fmt.Fprintf(&tab, "%-10s %14.1f %18.1f %22s\n", "acmediag", float64(c["ours_all"])/n, float64(c["ours_zone"])/n, "0")
		fmt.Fprintf(&tab, "%-10s %14.1f %18.1f %22.1f\n", "lego v5", float64(c["lego_all"])/n, float64(c["lego_zone"])/n, float64(c["lego_resolver"])/n)
		fmt.Fprintf(&tab, "(lego's total includes its resolver's upstream queries made for it; acmediag's includes its walk from the root)\n")
	} else {
		fmt.Fprintf(&tab, "queries: not counted (nftables needs root)\n")
	}
	// The one-iteration calibration run says little: print the table for
	// the real run only.
	if b.N > 1 {
		b.Log(tab.String())
	}
}

// waitEverywhere waits until the watch of name has seen value at every
// server address.
func (w *Watches) waitEverywhere(ctx context.Context, name, value string) error {
	for {
		w.mu.Lock()
		wt := w.watches[normName(name)]
		var changed chan struct{}
		done := false
		if wt != nil {
			done, changed = wt.value == value && wt.done, wt.changed
		}
		w.mu.Unlock()
		if done {
			return nil
		}
		if changed == nil {
			// Not started yet: the plan is being put in force.
			changed = make(chan struct{})
			go func() { time.Sleep(time.Millisecond); close(changed) }()
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", d.Seconds()*1000) }

// percentile is the p-th percentile of ds (nearest rank).
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

// legoValue is the dns-01 TXT value of a key authorization, as lego
// computes it (GetChallengeInfo without its CNAME lookup).
func legoValue(keyAuth string) string {
	return dns01.GetChallengeInfo(context.Background(), "unused.invalid", keyAuth).Value
}

// nopProvider publishes nothing: the benchmark stages the record itself.
type nopProvider struct{}

func (nopProvider) Present(context.Context, string, string, string) error { return nil }
func (nopProvider) CleanUp(context.Context, string, string, string) error { return nil }

// legoCore is a lego api.Core on a loopback directory: Solve needs one only
// to compute key authorizations.
func legoCore(b *testing.B) *api.Core {
	b.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := "https://" + r.Host
		_ = json.NewEncoder(w).Encode(map[string]string{"newNonce": base + "/nonce", "newAccount": base + "/account", "newOrder": base + "/order"})
	}))
	b.Cleanup(srv.Close)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	core, err := api.New(srv.Client(), "acmediag-bench", srv.URL, "", key)
	if err != nil {
		b.Fatal(err)
	}
	return core
}

// pointLegoAt makes lego's process-wide DNS client use the universe's
// resolver and the universe's port for authoritative servers (a field lego
// keeps for its own tests, set here through reflection), and Go's resolver
// (which lego uses for name server host names) ask the universe's resolver.
// The returned func restores both, and lego's logger.
func pointLegoAt(b *testing.B, resolver string, port int) func() {
	b.Helper()
	c := dns01.NewClient(&dns01.Options{RecursiveNameservers: []string{resolver}})
	f := reflect.ValueOf(c).Elem().FieldByName("authoritativeNSPort")
	if !f.IsValid() || f.Kind() != reflect.String {
		b.Fatal("lego's dns01.Client has no authoritativeNSPort field any more: update the benchmark")
	}
	reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem().SetString(strconv.Itoa(port))
	prevClient, prevResolver, prevLog := dns01.DefaultClient(), net.DefaultResolver, legolog.Default()
	// lego logs every poll at INFO: keep the benchmark's output readable.
	legolog.SetDefault(slog.New(slog.DiscardHandler))
	dns01.SetDefaultClient(c)
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, resolver)
	}}
	return func() {
		dns01.SetDefaultClient(prevClient)
		net.DefaultResolver = prevResolver
		legolog.SetDefault(prevLog)
	}
}

// nftCounters counts UDP queries to the universe with nftables rules. The
// table name must not start with "acmediag_": starting universes delete
// such tables when they cannot read a live owner pid from the name.
type nftCounters struct{ table string }

// startCounters installs the counters, or returns nil when not root.
func startCounters(b *testing.B, port int, zone []string, resolver string) *nftCounters {
	b.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil
	}
	res, _, _ := net.SplitHostPort(resolver)
	c := &nftCounters{table: fmt.Sprintf("propbench_%d", os.Getpid())}
	set := "{ " + strings.Join(zone, ", ") + " }"
	p := strconv.Itoa(port)
	script := fmt.Sprintf(`table inet %[1]s {
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr %[2]s ip daddr %[3]s udp dport %[4]s counter comment "ours_zone"
    ip saddr %[2]s udp dport %[4]s counter comment "ours_all"
    ip saddr != %[2]s ip daddr %[3]s udp dport %[4]s counter comment "lego_zone"
    ip saddr != %[2]s ip daddr %[5]s udp dport %[4]s counter comment "lego_resolver"
    ip saddr != %[2]s ip daddr 127.0.0.0/8 udp dport %[4]s counter comment "lego_all"
  }
}
`, c.table, benchWatcherSource, set, p, res)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("nft: %v: %s", err, out)
	}
	b.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "inet", c.table).Run() })
	return c
}

// read returns the packet count of each rule by its comment.
func (c *nftCounters) read(b *testing.B) map[string]int64 {
	if c == nil {
		return nil
	}
	out, err := exec.Command("nft", "-j", "list", "table", "inet", c.table).Output()
	if err != nil {
		b.Fatalf("nft list: %v", err)
	}
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Comment string           `json:"comment"`
				Expr    []map[string]any `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		b.Fatalf("nft json: %v", err)
	}
	counts := map[string]int64{}
	for _, e := range doc.Nftables {
		if e.Rule == nil {
			continue
		}
		for _, x := range e.Rule.Expr {
			if cnt, ok := x["counter"].(map[string]any); ok {
				if p, ok := cnt["packets"].(float64); ok {
					counts[e.Rule.Comment] = int64(p)
				}
			}
		}
	}
	return counts
}
