package testenv

import "github.com/acmediag/acmediag/reports"

// The cert-manager part of the catalogue: what a solver's configuration
// explains beyond the public DNS.
const (
	// HiddenPrimaryScenario is an RFC 2136 hidden primary: the server
	// cert-manager's rfc2136 solver writes to serves the zone with the
	// challenge's TXT, but it is not in the NS set, and the two public
	// secondaries never received the record (no zone transfer or NOTIFY is
	// staged: they serve the zone's previous version).
	HiddenPrimaryScenario = "rfc2136-hidden-primary"
	// HiddenPrimaryServer is the hidden primary's server id (Universe.ServerAddr).
	HiddenPrimaryServer = "hidden-primary.com-primary"
)

func (c *cat) certManagerScenarios() {
	const zone = "hidden-primary.com."
	secondaries := c.ns(zone, 2, nil)
	primary := serverSpec{name: HiddenPrimaryServer, host: "primary." + zone, addrs: []string{c.addr()}, zones: []string{zone}}
	// The SOA's MNAME names the primary, as it does in a real hidden-primary
	// setup; the NS set names the secondaries only.
	nsSet := "@ NS ns1." + zone + "\n@ NS ns2." + zone + "\n"
	soa := func(serial string) string {
		return "@ SOA primary." + zone + " hostmaster." + zone + " " + serial + " 3600 900 604800 300\n"
	}
	for i := range secondaries {
		secondaries[i].stale = map[string]string{zone: soa("1000") + nsSet + web}
	}
	c.add(entry{
		s: Scenario{Name: HiddenPrimaryScenario, Domain: "www.hidden-primary.com", Args: dns01Args(HiddenPrimaryScenario),
			Description: "an RFC 2136 hidden primary holds the new TXT; the public secondaries never got it",
			Expect:      []Expectation{exp(reports.CodeDNS01TXTMissing, reports.Error, "ns1.hidden-primary.com")}},
		zones: []zoneSpec{{origin: zone, parentNS: []string{"ns1." + zone, "ns2." + zone},
			text: soa("1001") + nsSet + web + txt("_acme-challenge.www", Token(HiddenPrimaryScenario))}},
		servers: append(secondaries, primary),
	})
}
