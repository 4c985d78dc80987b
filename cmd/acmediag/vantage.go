package main

import (
	"net/netip"
	neturl "net/url"
	"slices"
	"strings"
	"time"

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
		v, addr, err := parseVantageSpec("--vantage", spec, "SRCADDR", true)
		if err != nil {
			return nil, err
		}
		if v.SourceAddr, err = netip.ParseAddr(addr); err != nil {
			return nil, usagef("--vantage %q: source address %q is not an IP address", spec, addr)
		}
		if out, err = appendVantage(out, v, "--vantage", spec); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// remoteAgent is one --agent: a running `acmediag agent` asked to probe.
type remoteAgent struct {
	vantage probes.Vantage
	client  *probes.AgentClient
}

// parseAgents reads --agent NAME=URL[,rir=RIR][,region=R][,kind=K] with the
// client certificate, key and the agents' CA from their flags.
func parseAgents(specs []string, cert, key, ca string, timeout time.Duration, local []probes.Vantage) ([]remoteAgent, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	if cert == "" || key == "" || ca == "" {
		return nil, usagef("--agent needs --agent-cert, --agent-key and --agent-ca (mutual TLS)")
	}
	tlsCfg, err := probes.AgentClientTLS(cert, key, ca)
	if err != nil {
		return nil, usagef("--agent-cert/--agent-key/--agent-ca: %v", err)
	}
	var out []remoteAgent
	all := slices.Clone(local)
	for _, spec := range specs {
		v, url, err := parseVantageSpec("--agent", spec, "URL", false)
		if strings.HasPrefix(spec, "https://") {
			// The bare URL of DESIGN.md's contract: the agent's host names the vantage.
			u, perr := neturl.Parse(spec)
			if perr != nil || u.Hostname() == "" {
				return nil, usagef("--agent %q: want https://HOST:PORT or NAME=https://HOST:PORT[,rir=RIR][,region=R][,kind=K]", spec)
			}
			v, url, err = probes.Vantage{Name: u.Hostname(), Kind: probes.KindExternal}, spec, nil
		}
		if err != nil {
			return nil, err
		}
		if all, err = appendVantage(all, v, "--agent", spec); err != nil {
			return nil, err
		}
		client, err := probes.NewAgentClient(url, tlsCfg.Clone(), timeout)
		if err != nil {
			return nil, usagef("--agent %q: %v", spec, err)
		}
		out = append(out, remoteAgent{vantage: v, client: client})
	}
	return out, nil
}

// parseVantageSpec reads NAME=FIRST[,key=value...], the shape --vantage and
// --agent share; resolver= only where the vantage runs locally.
func parseVantageSpec(flag, spec, first string, resolver bool) (probes.Vantage, string, error) {
	keys, names := "[,rir=RIR][,region=R][,kind=external|cluster]", "rir, region, kind"
	if resolver {
		keys, names = "[,resolver=ADDR]"+keys, "resolver, "+names
	}
	parts := strings.Split(spec, ",")
	name, value, ok := strings.Cut(parts[0], "=")
	if !ok || name == "" || value == "" {
		return probes.Vantage{}, "", usagef("%s %q: want NAME=%s%s", flag, spec, first, keys)
	}
	v := probes.Vantage{Name: name, Kind: probes.KindExternal}
	for _, kv := range parts[1:] {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return v, "", usagef("%s %q: %q is not KEY=VALUE", flag, spec, kv)
		}
		switch {
		case k == "resolver" && resolver:
			ap, err := parseAddrPort(val, 53)
			if err != nil {
				return v, "", usagef("%s %q: resolver %q: %v", flag, spec, val, err)
			}
			v.Resolvers = append(v.Resolvers, ap)
		case k == "rir":
			v.RIR = strings.ToUpper(val)
			if v.RIR != "" && !slices.Contains(rirs, v.RIR) {
				return v, "", usagef("%s %q: rir %q: want one of %s", flag, spec, val, strings.Join(rirs, " "))
			}
		case k == "region":
			v.Region = val
		case k == "kind":
			if val != probes.KindExternal && val != probes.KindCluster {
				return v, "", usagef("%s %q: kind %q: want external or cluster", flag, spec, val)
			}
			v.Kind = val
		default:
			return v, "", usagef("%s %q: unknown key %q (%s)", flag, spec, k, names)
		}
	}
	return v, value, nil
}

func appendVantage(vs []probes.Vantage, v probes.Vantage, flag, spec string) ([]probes.Vantage, error) {
	for _, o := range vs {
		if o.Name == v.Name {
			return nil, usagef("%s %q: the name %q is used twice", flag, spec, v.Name)
		}
	}
	return append(vs, v), nil
}
