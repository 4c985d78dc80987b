package probes

import (
	"context"
	"net/netip"
	"sync"

	"github.com/acmediag/acmediag/dnscheck"
)

// ServerTXT is what one server answered, asked directly (RD=0), for a
// dns-01 record's TXT.
type ServerTXT struct {
	Host   string // NS host name; "" for a server asked by address only
	Addr   netip.AddrPort
	Values []string // TXT strings of an authoritative answer
	Answer string   // what it answered (dnscheck.AnswerText)
}

// TXTView is a dns-01 record as every server that should hold it sees it:
// the name holding it (CNAMEs followed), its zone, each address of the
// zone's authoritative servers, and the extra servers asked too (a
// solver's hidden primary, which the NS set does not list).
type TXTView struct {
	Owner, Zone string
	Servers     []ServerTXT
	Extra       []ServerTXT
}

// AskTXT walks to the zone of the dns-01 record of name
// (_acme-challenge.NAME) from the plan's own vantage and asks every
// authoritative server address of it, and every extra server, for the
// record once, concurrently. The answers are fresh: nothing is reused from
// earlier questions.
func (p *Plan) AskTXT(ctx context.Context, name string, extra ...netip.AddrPort) (TXTView, error) {
	sess := p.Env.Checker.NewSession()
	srv, err := sess.TXTServers(ctx, dnscheck.ChallengeName(name))
	if err != nil {
		return TXTView{}, err
	}
	v := TXTView{Owner: srv.Owner, Zone: srv.Zone, Servers: make([]ServerTXT, len(srv.Servers)), Extra: make([]ServerTXT, len(extra))}
	ask := func(out *ServerTXT, host string, addr netip.AddrPort) {
		values, resp := sess.AskTXT(ctx, addr, srv.Owner)
		*out = ServerTXT{Host: host, Addr: addr, Values: values, Answer: dnscheck.AnswerText(resp)}
	}
	var wg sync.WaitGroup
	for i, ha := range srv.Servers {
		wg.Go(func() { ask(&v.Servers[i], ha.Host, netip.AddrPortFrom(ha.Addr, srv.Port)) })
	}
	for i, a := range extra {
		wg.Go(func() { ask(&v.Extra[i], "", a) })
	}
	wg.Wait()
	return v, nil
}
