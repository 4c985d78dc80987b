package main

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

// closedDNSPort is a loopback UDP port nothing listens on: a watch against
// it ends at once with "unknown" (the servers cannot be found).
func closedDNSPort(t *testing.T) uint16 {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return uint16(port)
}

// runWatches runs propagation watches (workers at once) against a
// universe that does not answer, until the test ends.
func runWatches(t *testing.T, workers int) (*propagationWatches, dnscheck.Checker, propagationSettings) {
	t.Helper()
	checker := dnscheck.Checker{Roots: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Port: closedDNSPort(t),
		QueryTimeout: 200 * time.Millisecond, ResolverTimeout: 200 * time.Millisecond,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	p := newPropagationWatches(zaptest.NewLogger(t), nil, workers)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, checker, propagationSettings{Timeout: 5 * time.Second, Concurrency: workers}
}

// waitResult polls until name has a result for value.
func waitResult(t *testing.T, p *propagationWatches, name, value string) propagationOutcome {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if o, ok := p.Result(name); ok && o.Value == value {
			return o
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no propagation result for %s = %q", name, value)
	return propagationOutcome{}
}

// The watches follow the configuration: one per dns-01 target with a
// value, a new value replaces the old one's result, a removed target
// forgets it, and a re-probe watches a value again only when it was not
// seen everywhere.
func TestPropagationWatches(t *testing.T) {
	t.Parallel()
	p, checker, settings := runWatches(t, 2)

	targets := func(value string) []probes.Target {
		return []probes.Target{
			{Name: "a.example.com", Challenge: dnscheck.DNS01, ExpectTXT: value},
			{Name: "web.example.com", Challenge: dnscheck.HTTP01},
			{Name: "novalue.example.com", Challenge: dnscheck.DNS01},
		}
	}
	p.Set(targets("v1"), checker, settings)
	o := waitResult(t, p, "a.example.com", "v1")
	if o.Verdict != probes.PropagationUnknown || len(o.Findings) != 1 {
		t.Fatalf("result %+v, want unknown with one finding", o)
	}
	f := o.Findings[0]
	if f.Code != reports.CodeDNS01TXTNotPropagated || f.Name != "a.example.com" || f.Evidence["challenge_name"] != "_acme-challenge.a.example.com" {
		t.Errorf("finding %+v: want dns01.txt_not_propagated named after the target", f)
	}
	if c := o.check("a.example.com"); c.Status != reports.CheckFail || c.Name != "dns01.propagation" {
		t.Errorf("check %+v", c)
	}
	if n := len(p.Results()); n != 1 {
		t.Errorf("%d results, want 1 (only the dns-01 target with a value)", n)
	}

	steps := []struct {
		desc        string
		do          func() bool
		want        bool   // what do returns
		wantValue   string // a result for this value follows; "" → no result at all
		wantResults int
	}{
		{desc: "an unknown name is not re-watched", do: func() bool { return p.Restart("web.example.com") }, want: false,
			wantValue: "v1", wantResults: 1},
		{desc: "a value not seen everywhere is re-watched", do: func() bool { return p.Restart("a.example.com") }, want: true,
			wantValue: "v1", wantResults: 1},
		{desc: "a reload with a new value watches it", do: func() bool { p.Set(targets("v2"), checker, settings); return true }, want: true,
			wantValue: "v2", wantResults: 1},
		{desc: "a reload without the target forgets it", do: func() bool { p.Set(targets("")[1:], checker, settings); return true }, want: true,
			wantResults: 0},
	}
	for _, st := range steps {
		if got := st.do(); got != st.want {
			t.Errorf("%s: got %v, want %v", st.desc, got, st.want)
		}
		if st.wantValue != "" {
			waitResult(t, p, "a.example.com", st.wantValue)
		} else if _, ok := p.Result("a.example.com"); ok {
			t.Errorf("%s: a result is still kept", st.desc)
		}
		if n := len(p.Results()); n != st.wantResults {
			t.Errorf("%s: %d results, want %d", st.desc, n, st.wantResults)
		}
	}
}

// pageRows lists served addresses only, the slowest name first, bounded.
func TestPropagationPageRows(t *testing.T) {
	t.Parallel()
	results := map[string]propagationOutcome{
		"fast.com": {Elapsed: time.Second, Addresses: []propagationAddr{{Server: "ns1.fast.com", Served: true, FirstSeen: time.Second}}},
		"slow.com": {Elapsed: 9 * time.Second, Addresses: []propagationAddr{{Server: "ns1.slow.com", Served: true, FirstSeen: 2 * time.Second},
			{Server: "ns2.slow.com", Served: true, FirstSeen: 9 * time.Second}}},
		"none.com": {Elapsed: 60 * time.Second, Addresses: []propagationAddr{{Server: "ns1.none.com"}}},
	}
	for i := range maxPagePropagationRows {
		results["bulk"+string(rune('a'+i%26))+time.Duration(i).String()+".com"] = propagationOutcome{Elapsed: time.Millisecond,
			Addresses: []propagationAddr{{Server: "ns", Served: true, FirstSeen: time.Millisecond}}}
	}
	rows := pageRows(results)
	if len(rows) != maxPagePropagationRows {
		t.Fatalf("%d rows, want the bound %d", len(rows), maxPagePropagationRows)
	}
	want := []reports.PropagationTime{{Name: "slow.com", Server: "ns1.slow.com", Seconds: 2}, {Name: "slow.com", Server: "ns2.slow.com", Seconds: 9},
		{Name: "fast.com", Server: "ns1.fast.com", Seconds: 1}}
	for i, w := range want {
		if rows[i] != w {
			t.Errorf("row %d: %+v, want %+v", i, rows[i], w)
		}
	}
	for _, r := range rows {
		if r.Name == "none.com" {
			t.Error("an address that never served the value has a row")
		}
	}
}

// The canary's watches: run on the order's goroutine, kept per target
// beside the expect_txt watch (the later one is the name's result),
// forgotten with the target.
func TestPropagationCanaryWatch(t *testing.T) {
	t.Parallel()
	p, checker, settings := runWatches(t, 1)

	targets := []probes.Target{
		{Name: "a.example.com", Challenge: dnscheck.DNS01, ExpectTXT: "expected"},
		{Name: "b.example.com", Challenge: dnscheck.DNS01},
	}
	p.Set(targets, checker, settings)
	waitResult(t, p, "a.example.com", "expected")

	for _, name := range []string{"a.example.com", "b.example.com"} {
		err := p.CanaryCheck(name)(context.Background(), "_acme-challenge."+name+".", "canary-value")
		if err == nil || !strings.Contains(err.Error(), "_acme-challenge."+name+" not served everywhere yet") {
			t.Errorf("%s: wait error %v, want one naming the record", name, err)
		}
		o, ok := p.Result(name)
		if !ok || !o.Canary || o.Value != "canary-value" || o.Verdict != probes.PropagationUnknown {
			t.Errorf("%s: result %+v, want the canary's (later) watch", name, o)
		}
		if c := o.check(name); !strings.HasPrefix(c.Note, `canary order's value "canary-value" unknown`) {
			t.Errorf("%s: check note %q", name, c.Note)
		}
		if len(o.Findings) == 0 || o.Findings[0].Evidence["source"] != "canary order's propagation watch" {
			t.Errorf("%s: findings %+v, want the canary's watch named as their source", name, o.Findings)
		}
	}
	if n := len(p.Results()); n != 2 {
		t.Errorf("%d results, want 2", n)
	}
	// A re-probe watches the expect_txt value again; that watch ends later.
	if !p.Restart("a.example.com") {
		t.Fatal("the unseen expected value is not watched again")
	}
	waitResult(t, p, "a.example.com", "expected")
	p.Set(targets[:1], checker, settings)
	if _, ok := p.Result("b.example.com"); ok {
		t.Error("a target removed by a reload keeps its canary watch")
	}
	if n := len(p.Results()); n != 1 {
		t.Errorf("%d results after the reload, want 1", n)
	}
}

// Canary orders whose TXT records share an owner name (a wildcard and its
// base name) run one at a time; others do not wait.
func TestRecordLocks(t *testing.T) {
	t.Parallel()
	var l recordLocks
	unlock := l.lock("*.Example.com.")
	acquired := make(chan string, 2)
	var wg sync.WaitGroup
	for _, name := range []string{"example.com", "other.example.com"} {
		wg.Go(func() {
			defer l.lock(name)()
			acquired <- name
		})
	}
	if got := <-acquired; got != "other.example.com" {
		t.Fatalf("%s published while *.example.com held the record", got)
	}
	select {
	case got := <-acquired:
		t.Fatalf("%s published while *.example.com held the record", got)
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	if got := <-acquired; got != "example.com" {
		t.Fatalf("got %s, want example.com once the record is free", got)
	}
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) != 0 {
		t.Errorf("%d record locks kept after every order ended, want 0", len(l.m))
	}
}
