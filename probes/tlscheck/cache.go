package tlscheck

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"time"
)

// A probe that runs every minute sees the same chain at every run. The
// judgement of a chain — its facts and the verification against the roots,
// two signature checks and most of the allocations of a run after the
// handshake — depends only on the certificates served, the roots and the
// time, so a Checker remembers it per served chain for an hour (never past
// the first notAfter in it). The handshake, which reads what is served
// now, is never skipped.

const (
	// chainTTL bounds how long a judgement is reused.
	chainTTL = time.Hour
	// maxCachedChains bounds the memory: a judgement is a few KiB.
	maxCachedChains = 4096
)

type chainKey struct {
	der   [32]byte       // SHA-256 over the served DERs
	roots *x509.CertPool // by identity: reuse one pool across requests
}

type chainEntry struct {
	ch    Chain // CoversName is per name and recomputed
	until time.Time
}

// chainCache is a bounded map of judgements, safe for concurrent use.
type chainCache struct {
	mu sync.Mutex
	m  map[chainKey]chainEntry
}

func keyOf(served []*x509.Certificate, roots *x509.CertPool) chainKey {
	h := sha256.New()
	var n [4]byte
	for _, c := range served {
		binary.BigEndian.PutUint32(n[:], uint32(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	k := chainKey{roots: roots}
	h.Sum(k.der[:0])
	return k
}

func (cc *chainCache) get(k chainKey, now time.Time) (Chain, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e, ok := cc.m[k]
	if !ok || !now.Before(e.until) || now.Before(e.until.Add(-chainTTL)) {
		return Chain{}, false
	}
	return e.ch, true
}

func (cc *chainCache) put(k chainKey, ch Chain, served []*x509.Certificate, now time.Time) {
	until := now.Add(chainTTL)
	for _, c := range served {
		if c.NotAfter.After(now) && c.NotAfter.Before(until) {
			until = c.NotAfter
		}
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.m == nil {
		cc.m = make(map[chainKey]chainEntry)
	}
	if len(cc.m) >= maxCachedChains {
		for k, e := range cc.m {
			if !now.Before(e.until) || len(cc.m) >= maxCachedChains {
				delete(cc.m, k)
			}
			if len(cc.m) < maxCachedChains*3/4 {
				break
			}
		}
	}
	cc.m[k] = chainEntry{ch: ch, until: until}
}

// judge is analyse through the Checker's cache.
func (c *Checker) judge(name string, served []*x509.Certificate, roots *x509.CertPool, now time.Time) Chain {
	if c.NoCache || len(served) == 0 {
		return analyse(name, served, roots, now)
	}
	k := keyOf(served, roots)
	if ch, ok := c.chains.get(k, now); ok {
		ch.CoversName = ch.LeafCert.VerifyHostname(name) == nil
		return ch
	}
	ch := analyse(name, served, roots, now)
	c.chains.put(k, ch, served, now)
	return ch
}
