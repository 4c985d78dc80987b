package probes

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when the test says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]struct{}
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, timers: map[*fakeTimer]struct{}{}}
}

type fakeTimer struct {
	c     chan time.Time
	at    time.Time
	clock *fakeClock
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: make(chan time.Time, 1), at: c.now.Add(d), clock: c}
	if d <= 0 {
		t.c <- c.now
		return t
	}
	c.timers[t] = struct{}{}
	return t
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	_, ok := t.clock.timers[t]
	delete(t.clock.timers, t)
	return ok
}

// Set moves the clock to now and fires the timers due by then.
func (c *fakeClock) Set(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
	for t := range c.timers {
		if !t.at.After(now) {
			t.c <- now
			delete(c.timers, t)
		}
	}
}

// stepUntil runs the scheduler's timeline up to until: wait until it is
// quiet (no run in flight, the dispatcher asleep until some time), move
// the clock to that time, repeat.
func stepUntil(t *testing.T, s *Scheduler, clk *fakeClock, until time.Time) {
	t.Helper()
	for {
		next := waitQuiet(t, s, clk)
		if next.After(until) {
			clk.Set(until)
			return
		}
		clk.Set(next)
	}
}

// waitQuiet waits (bounded: 10 s of real time) until the scheduler sleeps
// with nothing in flight, and returns when it will wake.
func waitQuiet(t *testing.T, s *Scheduler, clk *fakeClock) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if next, ok := s.quiet(); ok && next.After(clk.Now()) {
			return next
		}
		time.Sleep(200 * time.Microsecond)
	}
	t.Fatal("the scheduler did not become quiet within 10 s")
	return time.Time{}
}

func TestFakeClock(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t0)
	tm := clk.NewTimer(time.Minute)
	tests := []struct {
		desc  string
		set   time.Duration
		fired bool
	}{
		{desc: "not yet due", set: 59 * time.Second, fired: false},
		{desc: "due", set: time.Minute, fired: true},
	}
	for _, tc := range tests {
		clk.Set(t0.Add(tc.set))
		select {
		case <-tm.C():
			if !tc.fired {
				t.Errorf("%s: fired", tc.desc)
			}
		default:
			if tc.fired {
				t.Errorf("%s: did not fire", tc.desc)
			}
		}
	}
	if clk.NewTimer(time.Second).Stop() != true {
		t.Error("Stop of a pending timer returned false")
	}
}
