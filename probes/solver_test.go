package probes

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/testenv"
)

// AskTXT on an RFC 2136 hidden primary: the zone's servers (the NS set)
// lack the value the primary, asked as an extra server, holds.
func TestAskTXTHiddenPrimary(t *testing.T) {
	u := startPropagationUniverse(t, zaptest.NewLogger(t))
	p, err := Build(universeSettings(u, Target{Name: "www.hidden-primary.com"}), BuildOptions{OneShot: true})
	if err != nil {
		t.Fatal(err)
	}
	primary := netip.MustParseAddrPort(u.ServerAddr(testenv.HiddenPrimaryServer))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := p.AskTXT(ctx, "www.hidden-primary.com", primary)
	if err != nil {
		t.Fatal(err)
	}
	want := testenv.Token(testenv.HiddenPrimaryScenario)
	if v.Zone != "hidden-primary.com." || v.Owner != "_acme-challenge.www.hidden-primary.com." {
		t.Errorf("zone %q owner %q", v.Zone, v.Owner)
	}
	var hosts []string
	for _, s := range v.Servers {
		hosts = append(hosts, s.Host)
		if slices.Contains(s.Values, want) {
			t.Errorf("secondary %s (%s) serves the value: %s", s.Host, s.Addr, s.Answer)
		}
	}
	slices.Sort(hosts)
	if !slices.Equal(hosts, []string{"ns1.hidden-primary.com.", "ns2.hidden-primary.com."}) {
		t.Errorf("servers %v: want the NS set only, not the primary", hosts)
	}
	if len(v.Extra) != 1 || v.Extra[0].Addr != primary || !slices.Contains(v.Extra[0].Values, want) {
		t.Errorf("primary: %+v, want it to serve %q", v.Extra, want)
	}
}
