package testenv

import (
	"net"
	"strconv"
)

// Vantage is one vantage point of the universe: a source address that
// connections leave from and a recursive resolver of its own (own cache,
// its queries leaving from Addr too), as a CA's remote perspective or an
// in-cluster self-check has.
type Vantage struct {
	Name     string // "us-east", "eu-west", "ap-south", "cluster"
	Addr     string // source address of its connections and of its resolver's queries
	Resolver string // its Unbound, "ADDR:PORT"
	RIR      string // "ARIN", "RIPE", "APNIC"; "" for the cluster
	Region   string
	Kind     string // VantageExternal or VantageCluster
}

// Vantage kinds.
const (
	VantageExternal = "external" // a remote perspective on the Internet
	VantageCluster  = "cluster"  // inside the cluster (cert-manager's self-check)
)

// vantageDef is a vantage before the universe gives it a resolver port.
type vantageDef struct {
	name, addr, resolverAddr, rir, region, kind string
}

// vantageDefs are the universe's vantages in address block 0 (see
// MaxBlock). Two universes of one block share them; packet-drop rules also
// name the port, so they do not interfere.
var vantageDefs = [...]vantageDef{
	{"us-east", "127.10.0.1", "127.53.255.10", "ARIN", "us-east", VantageExternal},
	{"eu-west", "127.10.0.2", "127.53.255.11", "RIPE", "eu-west", VantageExternal},
	{"ap-south", "127.10.0.3", "127.53.255.12", "APNIC", "ap-south", VantageExternal},
	{"cluster", "127.10.0.9", "127.53.255.13", "", "in-cluster", VantageCluster},
}

// vantageAddr is the source address of the named vantage ("" when none).
func vantageAddr(name string) string {
	for _, v := range vantageDefs {
		if v.name == name {
			return v.addr
		}
	}
	return ""
}

// Vantages lists the universe's vantage points, external ones first.
func (u *Universe) Vantages() []Vantage {
	out := make([]Vantage, 0, len(vantageDefs))
	for _, vd := range vantageDefs {
		v := u.vantageIn(vd)
		out = append(out, Vantage{
			Name: v.name, Addr: v.addr, RIR: v.rir, Region: v.region, Kind: v.kind,
			Resolver: net.JoinHostPort(v.resolverAddr, strconv.Itoa(u.port)),
		})
	}
	return out
}

// vantageFlag renders one --vantage value:
// NAME=ADDR,resolver=R,rir=RIR,region=REGION,kind=KIND.
func vantageFlag(v Vantage) string {
	return v.Name + "=" + v.Addr + ",resolver=" + v.Resolver + ",rir=" + v.RIR + ",region=" + v.Region + ",kind=" + v.Kind
}
