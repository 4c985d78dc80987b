package agent

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// panicBody panics when read, as a bug on a request's path would.
type panicBody struct{}

func (panicBody) Read([]byte) (int, error) { panic("injected: reading the body") }
func (panicBody) Close() error             { return nil }

// A panic while handling a request is a 500 with a short message, the
// stack only in the log, and the agent keeps serving: its in-flight slot
// is given back and the next request is answered.
func TestAgentHandlerPanic(t *testing.T) {
	t.Parallel()
	cfg := agentConfig(t, startDeadDNS(t), 100*time.Millisecond)
	cfg.Limits = Limits{MaxInFlight: 1, Rate: 1000, Burst: 1000}
	h := NewHandler(cfg)
	for range 3 {
		req := httptest.NewRequest(http.MethodPost, ProbePath, nil)
		req.Body = panicBody{}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if body := rec.Body.String(); rec.Code != http.StatusInternalServerError || strings.Contains(body, "injected") || strings.Contains(body, "goroutine") {
			t.Errorf("status %d body %q, want a 500 without the panic's text", rec.Code, body)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, ProbePath, strings.NewReader(`{"kind":"nope"}`)))
	if rec.Code == http.StatusInternalServerError || rec.Code == http.StatusTooManyRequests {
		t.Errorf("after the panics: status %d %s, want the request judged", rec.Code, rec.Body)
	}
}
