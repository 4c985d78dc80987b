package probes

import (
	"sync"
	"time"
)

// TokenBucket is a token bucket: rate tokens a second, at most burst. It
// bounds what callers from outside may make the process do (an agent's
// requests, the daemon's re-probes) without queueing them: a request
// without a token is refused at once and told when to come back.
type TokenBucket struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// NewTokenBucket returns a full bucket; now nil is time.Now.
func NewTokenBucket(rate float64, burst int, now func() time.Time) *TokenBucket {
	if now == nil {
		now = time.Now
	}
	return &TokenBucket{rate: rate, burst: float64(burst), now: now, tokens: float64(burst), last: now()}
}

// Take removes a token if there is one; otherwise it says how long until
// there will be.
func (b *TokenBucket) Take() (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(b.burst, b.tokens+el*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	if b.rate <= 0 {
		return false, time.Hour
	}
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}
