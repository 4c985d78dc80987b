package testenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/acmediag/acmediag/testenv/dnsserver"
	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// updateKeyName is the universe's one TSIG key for RFC 2136 UPDATE.
const updateKeyName = "acmediag-testenv-update."

// TSIG is the key the universe's primaries accept RFC 2136 UPDATEs with
// (hmac-sha256; the secret is random per universe), in the shape lego's
// dnsupdate provider reads from DNSUPDATE_TSIG_KEY / _ALGORITHM / _SECRET
// (or the RFC2136_ names). The first call turns updates on (see
// EnableUpdates); it returns empty strings only if that failed, which it
// logs.
func (u *Universe) TSIG() (name, algorithm, secretB64 string) {
	k, err := u.enableUpdates()
	if err != nil {
		u.log.Error("enabling RFC 2136 updates", zap.Error(err))
		return "", "", ""
	}
	return k.Name, k.Algorithm, k.Secret
}

// EnableUpdates makes the first server listed for every zone its primary:
// it accepts TSIG-signed (TSIG) RFC 2136 UPDATEs of TXT RRsets, re-signs
// signed zones, and passes each change to the zone's other servers at
// once (see SetReplicationLag). A server the catalogue stages as a stale
// secondary of a zone keeps its stale copy: it gets no changes. Calling it
// again, or concurrently, changes nothing.
func (u *Universe) EnableUpdates() error {
	_, err := u.enableUpdates()
	return err
}

func (u *Universe) enableUpdates() (dnsserver.TSIGKey, error) {
	if len(u.servers) == 0 {
		return dnsserver.TSIGKey{}, fmt.Errorf("testenv: no servers")
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return dnsserver.TSIGKey{}, fmt.Errorf("testenv: TSIG secret: %w", err)
	}
	// The first server keeps the universe's key: concurrent first calls
	// agree on the secret it holds.
	k, err := u.servers[0].EnsureTSIGKey(dnsserver.TSIGKey{
		Name: updateKeyName, Algorithm: dns.HmacSHA256, Secret: base64.StdEncoding.EncodeToString(secret),
	})
	if err != nil {
		return k, fmt.Errorf("testenv: %w", err)
	}
	for _, z := range u.spec.zones {
		primary, secondaries := u.replicaSet(z.origin)
		if primary < 0 {
			continue
		}
		p := u.servers[primary]
		if _, err := p.EnsureTSIGKey(k); err != nil {
			return k, fmt.Errorf("testenv: %w", err)
		}
		var secs []dnsserver.Secondary
		for _, i := range secondaries {
			// Secondaries share the key (as for transfers and NOTIFY), so an
			// UPDATE sent to one is verified and then REFUSED, as a BIND
			// secondary without update forwarding answers.
			if _, err := u.servers[i].EnsureTSIGKey(k); err != nil {
				return k, fmt.Errorf("testenv: %w", err)
			}
			secs = append(secs, dnsserver.Secondary{Name: u.servers[i].Name(), Zone: u.servers[i].Zone(z.origin)})
		}
		if err := p.AllowUpdate(z.origin, secs...); err != nil {
			return k, fmt.Errorf("testenv: %w", err)
		}
	}
	return k, nil
}

// replicaSet returns the indexes (into u.servers, which follow
// u.spec.servers) of origin's primary (-1 when no server holds a current
// copy) and of its secondaries.
func (u *Universe) replicaSet(origin string) (primary int, secondaries []int) {
	primary = -1
	for i, sv := range u.spec.servers {
		if !slices.Contains(sv.zones, origin) {
			continue
		}
		if _, stale := sv.stale[origin]; stale {
			continue
		}
		if primary < 0 {
			primary = i
			continue
		}
		secondaries = append(secondaries, i)
	}
	return primary, secondaries
}

// UpdatePrimary is "ADDR:PORT" of the server that accepts UPDATEs for
// zone (DNSUPDATE_NAMESERVER), or "" when the universe has no such zone.
func (u *Universe) UpdatePrimary(zone string) string {
	primary, _ := u.replicaSet(dns.CanonicalName(zone))
	if primary < 0 || len(u.servers[primary].Addrs()) == 0 {
		return ""
	}
	return net.JoinHostPort(u.servers[primary].Addrs()[0], strconv.Itoa(u.port))
}

// SetReplicationLag delays the changes UPDATEs make to zone on the given
// secondaries (server ids, hosts or addresses; none: all of them) by lag
// (0 restores immediate propagation), so a test can stage secondaries
// that lag behind their primary. It enables updates if needed.
func (u *Universe) SetReplicationLag(zone string, lag time.Duration, servers ...string) error {
	if _, err := u.enableUpdates(); err != nil {
		return err
	}
	zone = dns.CanonicalName(zone)
	primary, _ := u.replicaSet(zone)
	if primary < 0 {
		return fmt.Errorf("testenv: no zone %s", zone)
	}
	var names []string
	for _, id := range servers {
		s := u.Server(id)
		if s == nil {
			return fmt.Errorf("testenv: no server %q", id)
		}
		names = append(names, s.Name())
	}
	if err := u.servers[primary].SetReplicationLag(zone, lag, names...); err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return nil
}

// UpdateTXT replaces owner's TXT RRset in zone with value at the zone's
// primary, by a TSIG-signed RFC 2136 UPDATE over TCP — what lego's
// rfc2136 provider or external-dns send. The secondaries get it after
// their replication lag (SetReplicationLag).
func (u *Universe) UpdateTXT(ctx context.Context, zone, owner, value string, ttl uint32) error {
	keyName, alg, secret := u.TSIG()
	if keyName == "" {
		return errors.New("testenv: the universe has no TSIG key")
	}
	primary := u.UpdatePrimary(zone)
	if primary == "" {
		return fmt.Errorf("testenv: no primary for %s", zone)
	}
	m := new(dns.Msg)
	m.SetUpdate(dns.CanonicalName(zone))
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: dns.CanonicalName(owner), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl}, Txt: []string{value}}
	m.RemoveRRset([]dns.RR{rr})
	m.Insert([]dns.RR{rr})
	m.SetTsig(keyName, alg, 300, time.Now().Unix())
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second, TsigSecret: map[string]string{keyName: secret}}
	resp, _, err := c.ExchangeContext(ctx, m, primary)
	if err != nil {
		return fmt.Errorf("testenv: UPDATE to %s: %w", primary, err)
	}
	if resp.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("testenv: UPDATE to %s: %s", primary, dns.RcodeToString[resp.Rcode])
	}
	return nil
}

// DNSUpdateEnv is the environment lego's dnsupdate provider reads to
// publish in zone through its primary with the universe's key, waiting
// up to propagation for the record to show.
func (u *Universe) DNSUpdateEnv(zone string, propagation time.Duration) map[string]string {
	keyName, alg, secret := u.TSIG()
	return map[string]string{
		"DNSUPDATE_NAMESERVER":          u.UpdatePrimary(zone),
		"DNSUPDATE_TSIG_KEY":            keyName,
		"DNSUPDATE_TSIG_ALGORITHM":      alg,
		"DNSUPDATE_TSIG_SECRET":         secret,
		"DNSUPDATE_PROPAGATION_TIMEOUT": propagation.String(),
	}
}
