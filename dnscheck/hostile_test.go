package dnscheck

import (
	"context"
	"fmt"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
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

const hostileName = testenv.HostileName + "."

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

// hostileCombo is one cell of the matrix.
type hostileCombo struct {
	target string // a testenv.HostileServers id
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
	for _, sv := range testenv.HostileServers {
		for a := range hostileAnswers {
			for _, qt := range hostileTypes {
				for _, l := range hostileLabels {
					i := len(out)
					out = append(out, hostileCombo{target: sv, answer: a, qtype: qt, label: l,
						source: fmt.Sprintf("127.78.%d.%d", i/250, i%250+1)})
				}
			}
		}
	}
	return out
}

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
	if c.target != testenv.HostileResolver || c.qtype == dns.TypeAAAA {
		return false
	}
	if c.qtype == dns.TypeCAA {
		nothing := hostileAnswers[c.answer].kind == dnsserver.FaultNXDomain || hostileAnswers[c.answer].kind == dnsserver.FaultNoData
		return !nothing && c.label != "com." && c.label != "."
	}
	return true
}

// startHostileTree starts the tree with every combination's fault (each
// scoped to its source).
func startHostileTree(t testing.TB, combos []hostileCombo) *testenv.Hostile {
	t.Helper()
	faults := map[string][]dnsserver.Fault{}
	for i, c := range combos {
		combos[i].fault = len(faults[c.target])
		faults[c.target] = append(faults[c.target], dnsserver.Fault{Kind: hostileAnswers[c.answer].kind, QType: c.qtype, Name: c.label, Sources: []string{c.source}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := testenv.StartHostile(ctx, "127.77.0", faults, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// hostileChecker is a Checker on the tree with short timeouts, asking
// from source.
func hostileChecker(h *testenv.Hostile, source string) *Checker {
	return &Checker{
		Roots:           []netip.Addr{h.Root()},
		Port:            uint16(h.Port()),
		Resolvers:       []netip.AddrPort{h.Resolver()},
		TrustAnchors:    []dns.RR{h.TrustAnchor()},
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
	{Name: strings.TrimSuffix(hostileName, "."), Challenge: reports.DNS01, ExpectTXT: testenv.HostileToken},
}

// hostileRunDeadline bounds one combination; the checks' own timeouts end
// a run long before it.
const hostileRunDeadline = 30 * time.Second

// runHostile runs both requests from source, turning a panic into an error
// with its stack.
func runHostile(h *testenv.Hostile, source string) (results []Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), hostileRunDeadline)
	defer cancel()
	results, _ = hostileChecker(h, source).Check(ctx, hostileRequests)
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
	base, err := runHostile(tree, "127.78.255.1")
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
				rs, err := runHostile(tree, c.source)
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
		case tree.Server(o.combo.target).FaultHits()[o.combo.fault] == 0:
			unasked[o.combo.target]++
		case n == 0 && o.combo.changesVerdict():
			t.Errorf("%s: the CA would fail, and the run has no finding", o.combo)
		case n == 0:
			silent[o.combo.target]++
		}
	}
	t.Logf("%d combinations; never asked, per server: %v; asked, harmless and without finding: %v", len(combos), unasked, silent)
}
