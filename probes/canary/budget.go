package canary

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrBudgetExhausted is returned (wrapped) when the local budget refuses a
// request before anything is sent to the CA.
var ErrBudgetExhausted = errors.New("local ACME budget exhausted")

// Limits are the rates the local budget keeps under.
type Limits struct {
	NewOrders         int           // new orders per account per NewOrdersWindow
	NewOrdersWindow   time.Duration //
	FailedAuthz       int           // failed authorizations per name per FailedAuthzWindow
	FailedAuthzWindow time.Duration //
	MaxNames          int           // names tracked at once; the oldest is forgotten beyond it
}

// StagingLimits are Let's Encrypt staging's limits: 1,500 new orders per
// 3 hours per account and 200 failed authorizations per name per hour.
func StagingLimits() Limits {
	return Limits{NewOrders: 1500, NewOrdersWindow: 3 * time.Hour, FailedAuthz: 200, FailedAuthzWindow: time.Hour, MaxNames: 10000}
}

// Budget counts requests in memory so a canary never hits the CA's limits,
// and remembers a CA's Retry-After so it does not knock again too early.
// It is safe for concurrent use; one Budget serves one account.
type Budget struct {
	mu      sync.Mutex
	lim     Limits
	orders  []time.Time            // sliding window, at most lim.NewOrders entries
	failed  map[string][]time.Time // per name, at most lim.FailedAuthz entries each
	seen    []string               // insertion order of failed, for eviction
	pausedT time.Time              // no request before this (Retry-After of a rateLimited answer)
	pausedW string                 // which limit the CA named
}

// NewBudget returns a budget with the given limits; zero fields take the
// staging values.
func NewBudget(l Limits) *Budget {
	d := StagingLimits()
	if l.NewOrders <= 0 {
		l.NewOrders = d.NewOrders
	}
	if l.NewOrdersWindow <= 0 {
		l.NewOrdersWindow = d.NewOrdersWindow
	}
	if l.FailedAuthz <= 0 {
		l.FailedAuthz = d.FailedAuthz
	}
	if l.FailedAuthzWindow <= 0 {
		l.FailedAuthzWindow = d.FailedAuthzWindow
	}
	if l.MaxNames <= 0 {
		l.MaxNames = d.MaxNames
	}
	return &Budget{lim: l, failed: map[string][]time.Time{}}
}

// prune drops the entries older than window before now.
func prune(ts []time.Time, now time.Time, window time.Duration) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(now.Add(-window)) {
		i++
	}
	return ts[i:]
}

// ReserveOrder takes one new order for name from the budget at now, or
// refuses with ErrBudgetExhausted saying which limit and when it frees up.
func (b *Budget) ReserveOrder(name string, now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Before(b.pausedT) {
		return fmt.Errorf("%w: the CA asked to wait until %s (%s)", ErrBudgetExhausted, b.pausedT.UTC().Format(time.RFC3339), b.pausedW)
	}
	b.orders = prune(b.orders, now, b.lim.NewOrdersWindow)
	if len(b.orders) >= b.lim.NewOrders {
		return fmt.Errorf("%w: %d new orders in %s, next at %s", ErrBudgetExhausted, len(b.orders),
			b.lim.NewOrdersWindow, b.orders[0].Add(b.lim.NewOrdersWindow).UTC().Format(time.RFC3339))
	}
	f := prune(b.failed[name], now, b.lim.FailedAuthzWindow)
	if len(f) >= b.lim.FailedAuthz {
		return fmt.Errorf("%w: %d failed authorizations for %s in %s, next at %s", ErrBudgetExhausted, len(f), name,
			b.lim.FailedAuthzWindow, f[0].Add(b.lim.FailedAuthzWindow).UTC().Format(time.RFC3339))
	}
	b.orders = append(b.orders, now)
	return nil
}

// FailedAuthz records one failed authorization for name at now.
func (b *Budget) FailedAuthz(name string, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	f, ok := b.failed[name]
	if !ok {
		if len(b.seen) >= b.lim.MaxNames {
			delete(b.failed, b.seen[0])
			b.seen = b.seen[1:]
		}
		b.seen = append(b.seen, name)
	}
	f = append(prune(f, now, b.lim.FailedAuthzWindow), now)
	if len(f) > b.lim.FailedAuthz {
		f = f[len(f)-b.lim.FailedAuthz:]
	}
	b.failed[name] = f
}

// Pause refuses every request until until; limit says which CA limit asked.
func (b *Budget) Pause(until time.Time, limit string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if until.After(b.pausedT) {
		b.pausedT, b.pausedW = until, limit
	}
}
