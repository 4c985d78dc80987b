package dnscheck

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv/dnsserver"
)

// The hostile-resolver matrix: a small signed DNS tree of its own (root,
// the TLD "com.", the zone "hostile.com.") on loopback servers this
// test controls, plus a "resolver" that answers from all three zones. For
// every question type the checks ask, at every label from the challenge
// name up to the root, the resolver and each authoritative server in turn
// give each hostile answer; every combination must end in findings, in
// time, without a panic. Each combination has a source address of its own
// (Checker.LocalAddr) and its faults name that source, so combinations run
// side by side against one set of servers.

const (
	hostileName  = "www.hostile.com."
	hostileToken = "hostile-token-value"
)

// hostileAnswers are the answers of the matrix, by name.
var hostileAnswers = []struct {
	name string
	kind dnsserver.FaultKind
}{
	{"NXDOMAIN", dnsserver.FaultNXDomain},
	{"NODATA", dnsserver.FaultNoData},
	{"SERVFAIL", dnsserver.FaultServFail},
	{"REFUSED", dnsserver.FaultRefused},
	{"NOTIMP", dnsserver.FaultNotImp},
	{"FORMERR", dnsserver.FaultFormErr},
	{"empty reply", dnsserver.FaultEmpty},
	{"wrong question", dnsserver.FaultWrongQuestion},
	{"truncated without TCP", dnsserver.FaultTCNoTCP},
	{"timeout", dnsserver.FaultDrop},
}

// hostileTypes are the question types the checks ask.
var hostileTypes = []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeTXT, dns.TypeCAA,
	dns.TypeNS, dns.TypeSOA, dns.TypeDS, dns.TypeDNSKEY}

// hostileLabels run from the dns-01 record's name up to the root.
var hostileLabels = []string{"_acme-challenge." + hostileName, hostileName, "hostile.com.", "com.", "."}

// changesVerdict says whether the CA, meeting this answer, would fail the
// challenge: the resolver is the CA's view, and the checks must say so.
// What it meets harmlessly, as Boulder does: a failed AAAA lookup when the
// A lookup works (it falls back), no CAA set where there is one (no CAA is
// no restriction) and a failure above the closest CAA set (Boulder takes
// the closest set and ignores the labels above it). An authoritative
// server's answer changes the verdict only through the CA's resolver,
// which in this tree answers from its own copy: "the CA's view decides,
// the authoritative view explains" (checkAddresses), so those
// combinations are held to no panic, no hang and coded findings only.
func (c hostileCombo) changesVerdict() bool {
	if c.target != "resolver" || c.qtype == dns.TypeAAAA {
		return false
	}
	if c.qtype == dns.TypeCAA {
		nothing := hostileAnswers[c.answer].kind == dnsserver.FaultNXDomain || hostileAnswers[c.answer].kind == dnsserver.FaultNoData
		return !nothing && c.label != "com." && c.label != "."
	}
	return true
}

// hostileTree is the running tree.
type hostileTree struct {
	port    int
	servers map[string]*dnsserver.Server // "resolver", "root", "tld", "auth"
	anchor  dns.RR
}

// hostileServers are the tree's servers and their addresses.
var hostileServers = []struct{ id, host, addr string }{
	{"root", "a.ns.com.", "127.77.0.1"},
	{"tld", "b.ns.com.", "127.77.0.2"},
	{"auth", "ns.hostile.com.", "127.77.0.3"},
	{"resolver", "resolver.invalid.", "127.77.0.4"},
}

// hostileCombo is one cell of the matrix.
type hostileCombo struct {
	target string // a hostileServers id
	answer int    // index in hostileAnswers
	qtype  uint16
	label  string
	source string
	fault  int // index in the target server's faults
}

func (c hostileCombo) String() string {
	return fmt.Sprintf("%s answers %s for %s %s", c.target, hostileAnswers[c.answer].name, dns.TypeToString[c.qtype], c.label)
}

func hostileCombos() []hostileCombo {
	var out []hostileCombo
	for _, sv := range hostileServers {
		for a := range hostileAnswers {
			for _, qt := range hostileTypes {
				for _, l := range hostileLabels {
					i := len(out)
					out = append(out, hostileCombo{target: sv.id, answer: a, qtype: qt, label: l,
						source: fmt.Sprintf("127.78.%d.%d", i/250, i%250+1)})
				}
			}
		}
	}
	return out
}

// startHostileTree builds the zones, signs them, and starts every server
// with every combination's fault (each scoped to its source).
func startHostileTree(t testing.TB, combos []hostileCombo) *hostileTree {
	t.Helper()
	keys := map[string]*dnsserver.Keys{}
	for _, o := range []string{".", "com.", "hostile.com."} {
		k, err := dnsserver.NewKeys(o)
		if err != nil {
			t.Fatal(err)
		}
		keys[o] = k
	}
	ds := func(o string) string { d := keys[o].DS(); d.Hdr.Ttl = 3600; return d.String() + "\n" }
	texts := map[string]string{
		".": `. 3600 IN SOA a.ns.com. hostmaster.com. 1 3600 900 604800 300
. 3600 IN NS a.ns.com.
com. 3600 IN NS b.ns.com.
a.ns.com. 3600 IN A 127.77.0.1
b.ns.com. 3600 IN A 127.77.0.2
` + ds("com."),
		"com.": `com. 3600 IN SOA b.ns.com. hostmaster.com. 1 3600 900 604800 300
com. 3600 IN NS b.ns.com.
a.ns.com. 3600 IN A 127.77.0.1
b.ns.com. 3600 IN A 127.77.0.2
hostile.com. 3600 IN NS ns.hostile.com.
ns.hostile.com. 3600 IN A 127.77.0.3
` + ds("hostile.com."),
		"hostile.com.": `hostile.com. 3600 IN SOA ns.hostile.com. hostmaster.hostile.com. 1 3600 900 604800 300
hostile.com. 3600 IN NS ns.hostile.com.
hostile.com. 3600 IN CAA 0 issue "letsencrypt.org"
ns.hostile.com. 3600 IN A 127.77.0.3
www.hostile.com. 60 IN A 127.77.1.1
_acme-challenge.www.hostile.com. 60 IN TXT "` + hostileToken + `"
`,
	}
	zone := func(o string) *dnsserver.Zone {
		rrs, err := dnsserver.ParseZone(o, texts[o])
		if err != nil {
			t.Fatal(err)
		}
		z, err := dnsserver.NewZone(dnsserver.ZoneConfig{Origin: o, Records: rrs, Keys: keys[o]})
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	serves := map[string][]string{"root": {"."}, "tld": {"com."}, "auth": {"hostile.com."},
		"resolver": {".", "com.", "hostile.com."}}
	tree := &hostileTree{port: freeHostilePort(t), servers: map[string]*dnsserver.Server{}, anchor: keys["."].DS()}
	for _, sv := range hostileServers {
		var faults []dnsserver.Fault
		for i, c := range combos {
			if c.target == sv.id {
				combos[i].fault = len(faults)
				faults = append(faults, dnsserver.Fault{Kind: hostileAnswers[c.answer].kind, QType: c.qtype, Name: c.label, Sources: []string{c.source}})
			}
		}
		s := dnsserver.New(dnsserver.Config{Name: sv.id, Host: sv.host, Addrs: []string{sv.addr}, Port: tree.port, Faults: faults, Logger: zap.NewNop()})
		for _, o := range serves[sv.id] {
			s.AddZone(zone(o))
		}
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		tree.servers[sv.id] = s
	}
	return tree
}

// freeHostilePort finds a port free on every address of the tree.
func freeHostilePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.77.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		_ = pc.Close()
		free := true
		for _, sv := range hostileServers {
			for _, network := range []string{"udp", "tcp"} {
				addr := net.JoinHostPort(sv.addr, strconv.Itoa(port))
				var c interface{ Close() error }
				if network == "udp" {
					c, err = net.ListenPacket(network, addr)
				} else {
					c, err = net.Listen(network, addr)
				}
				if err != nil {
					free = false
					continue
				}
				_ = c.Close()
			}
		}
		if free {
			return port
		}
	}
	t.Fatal("no port free on every address of the hostile tree")
	return 0
}

// checker is a Checker on the tree with short timeouts, asking from source.
func (h *hostileTree) checker(source string) *Checker {
	return &Checker{
		Roots:           []netip.Addr{netip.MustParseAddr("127.77.0.1")},
		Port:            uint16(h.port),
		Resolvers:       []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.77.0.4"), uint16(h.port))},
		TrustAnchors:    []dns.RR{h.anchor},
		Allow:           []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		CAIdentities:    []string{"letsencrypt.org"},
		QueryTimeout:    150 * time.Millisecond,
		ResolverTimeout: 400 * time.Millisecond,
		LocalAddr:       netip.MustParseAddr(source),
	}
}

// hostileRequests are the two challenges' questions for the name.
var hostileRequests = []Request{
	{Name: strings.TrimSuffix(hostileName, "."), Challenge: reports.HTTP01},
	{Name: strings.TrimSuffix(hostileName, "."), Challenge: reports.DNS01, ExpectTXT: hostileToken},
}

// hostileRunDeadline bounds one combination; the checks' own timeouts end
// a run long before it.
const hostileRunDeadline = 30 * time.Second

// runHostile runs both requests from source, turning a panic into an error
// with its stack.
func (h *hostileTree) run(source string) (results []Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), hostileRunDeadline)
	defer cancel()
	results, _ = h.checker(source).Check(ctx, hostileRequests)
	if ctx.Err() != nil {
		return results, fmt.Errorf("the run was still going at its %s deadline", hostileRunDeadline)
	}
	return results, nil
}

// TestHostileResolverMatrix runs every combination (1,800) and holds each
// to: no panic, done before its deadline, every finding with a code, and
// findings wherever the CA would fail (changesVerdict).
func TestHostileResolverMatrix(t *testing.T) {
	combos := hostileCombos()
	tree := startHostileTree(t, combos)

	// The healthy tree (a source no fault names) passes, so every finding
	// below comes from the hostile answer.
	base, err := tree.run("127.78.255.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range base {
		for _, f := range r.Findings {
			if f.Severity >= reports.Warning {
				t.Errorf("healthy tree: %s %s: %s", f.Severity, f.Code, f.Detail)
			}
		}
	}

	type outcome struct {
		combo   hostileCombo
		err     error
		results []Result
	}
	work := make(chan hostileCombo)
	outs := make(chan outcome)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for c := range work {
				rs, err := tree.run(c.source)
				outs <- outcome{c, err, rs}
			}
		})
	}
	go func() {
		for _, c := range combos {
			work <- c
		}
		close(work)
		wg.Wait()
		close(outs)
	}()
	unasked := map[string]int{} // per target: combinations whose question was never asked
	silent := map[string]int{}  // per target: asked, harmless, no finding
	for o := range outs {
		if o.err != nil {
			t.Errorf("%s: %v", o.combo, o.err)
			continue
		}
		n := 0
		for _, r := range o.results {
			for _, f := range r.Findings {
				n++
				if f.Code == "" {
					t.Errorf("%s: a finding without a code: %+v", o.combo, f)
				}
			}
		}
		switch {
		case tree.servers[o.combo.target].FaultHits()[o.combo.fault] == 0:
			unasked[o.combo.target]++
		case n == 0 && o.combo.changesVerdict():
			t.Errorf("%s: the CA would fail, and the run has no finding", o.combo)
		case n == 0:
			silent[o.combo.target]++
		}
	}
	t.Logf("%d combinations; never asked, per server: %v; asked, harmless and without finding: %v", len(combos), unasked, silent)
}
