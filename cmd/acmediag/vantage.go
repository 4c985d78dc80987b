package main

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/acmediag/acmediag/probes"
)

var rirs = []string{"ARIN", "RIPE", "APNIC", "LACNIC", "AFRINIC"}

// parseVantages reads --vantage NAME=SRCADDR[,resolver=ADDR][,rir=RIR]
// [,region=R][,kind=external|cluster]; none gives the one vantage "local".
func parseVantages(specs []string) ([]probes.Vantage, error) {
	if len(specs) == 0 {
		return []probes.Vantage{{Name: "local", Kind: probes.KindExternal}}, nil
	}
	var out []probes.Vantage
	for _, spec := range specs {
		parts := strings.Split(spec, ",")
		name, addr, ok := strings.Cut(parts[0], "=")
		if !ok || name == "" {
			return nil, usagef("--vantage %q: want NAME=SRCADDR[,resolver=ADDR][,rir=RIR][,region=R][,kind=external|cluster]", spec)
		}
		src, err := netip.ParseAddr(addr)
		if err != nil {
			return nil, usagef("--vantage %q: source address %q is not an IP address", spec, addr)
		}
		v := probes.Vantage{Name: name, SourceAddr: src, Kind: probes.KindExternal}
		for _, kv := range parts[1:] {
			k, val, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, usagef("--vantage %q: %q is not KEY=VALUE", spec, kv)
			}
			switch k {
			case "resolver":
				ap, err := parseAddrPort(val, 53)
				if err != nil {
					return nil, usagef("--vantage %q: resolver %q: %v", spec, val, err)
				}
				v.Resolvers = append(v.Resolvers, ap)
			case "rir":
				v.RIR = strings.ToUpper(val)
				if v.RIR != "" && !slices.Contains(rirs, v.RIR) {
					return nil, usagef("--vantage %q: rir %q: want one of %s", spec, val, strings.Join(rirs, " "))
				}
			case "region":
				v.Region = val
			case "kind":
				if val != probes.KindExternal && val != probes.KindCluster {
					return nil, usagef("--vantage %q: kind %q: want external or cluster", spec, val)
				}
				v.Kind = val
			default:
				return nil, usagef("--vantage %q: unknown key %q (resolver, rir, region, kind)", spec, k)
			}
		}
		for _, o := range out {
			if o.Name == v.Name {
				return nil, usagef("--vantage %q: the name %q is used twice", spec, name)
			}
		}
		out = append(out, v)
	}
	return out, nil
}
