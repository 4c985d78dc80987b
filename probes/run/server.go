package run

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

// The daemon's HTTP side: /metrics, /healthz, /readyz, the JSON API and the
// report page, on its own ServeMux. A flood must not take the daemon down:
// connections are accounted per client address at the listener
// (probes.ClientListener: at most maxConnsPerClient from one address,
// maxConnections in all, the rest closed at once instead of queueing in
// the kernel), the server has a short header deadline and read, write and
// idle timeouts, and the API and page (which assemble reports) run at
// most api.max_concurrent at once; the rest are refused with 429 at once.
// /healthz and /readyz stay outside that limit, and the per-client cap
// keeps slots free for the kubelet's address whatever a few flooding
// addresses do, so a flood never makes the kubelet restart a healthy pod.
// Requests that assemble the report of every name (the page,
// /api/v1/report without a name) cost memory in proportion to the targets,
// so at most maxHeavyInFlight of them run at once; /api/v1/report?name= is
// cheap. A panic in a handler is a 500 (probes.RecoverHTTP), counted as
// acmediag_probe_panics_total{kind="api"}.
//
// POST /api/v1/reprobe is the one request that makes the daemon send
// traffic, so it is guarded: api.reprobe.enabled: false removes it (404),
// api.reprobe.token_file requires "Authorization: Bearer TOKEN" (401
// without), a token bucket across names (api.reprobe.rate, .burst) bounds
// re-probes in all and reprobeMinGap each name's, and
// http.CrossOriginProtection refuses a browser's request whose
// Sec-Fetch-Site or Origin says it comes from another site (a form or
// fetch on a page elsewhere riding the user's network position); clients
// that are not browsers send neither header and pass.

// Server limits that are not configuration.
const (
	// maxConnections and maxConnsPerClient: a connection costs some 20KiB
	// (its goroutine and buffers) while it waits for headers, so 2,048 hold
	// at most ~40MiB; 64 per address is far above what Prometheus, the
	// kubelet or a browser open, and keeps 32 addresses from filling it.
	maxConnections    = 2048
	maxConnsPerClient = 64
	// headerTimeout: a client on loopback or in the cluster sends its
	// headers within milliseconds; a slow one holds its slot this long.
	headerTimeout      = 2 * time.Second
	maxMetricsInFlight = 4
	pageRefreshSeconds = 30
	// maxHeavyInFlight: at 100,000 targets one report of every name holds
	// some 60 MiB while it is assembled; two at once pushed the RSS past
	// the memory limit.
	maxHeavyInFlight = 1
	// reprobeMinGap: a re-probe queues every probe of the name, so a loop
	// of POSTs must not keep the name's runs going back to back.
	reprobeMinGap = 5 * time.Second
	// maxReprobeMemory bounds the per-name times kept for reprobeMinGap.
	maxReprobeMemory = 4096
)

// observationSource is the part of probes.Store the API and a View read.
type observationSource interface {
	Query(name string, since time.Time) []reports.Observation
	Latest(name string) []reports.Observation
}

// apiServer serves the daemon's HTTP endpoints.
type apiServer struct {
	log      *zap.Logger
	gatherer prometheus.Gatherer
	source   observationSource
	ready    func() bool
	plan     func() *probes.Plan // the plan in force
	version  string
	now      func() time.Time
	sem      chan struct{} // one slot per API or page request in flight
	heavy    chan struct{} // one slot per request over every name
	// reprobe, when set, serves POST /api/v1/reprobe: it re-runs every
	// probe of a configured name and reports whether a propagation watch
	// runs too.
	reprobe func(name string) bool
	// peers, when set, are the vantages of the leader's peers, shown
	// beside the plan's (cluster mode).
	peers func() []reports.Vantage
	csrf  *http.CrossOriginProtection
	// reprobes bounds re-probes across names (api.reprobe.rate, .burst).
	reprobes *probes.TokenBucket
	// onPanic counts a handler's panic; reprobeResult a re-probe request's
	// result; refused a connection closed at the listener (nil: not counted).
	onPanic       func()
	reprobeResult func(result string)
	refused       func(reason string)

	reprobeMu   sync.Mutex
	lastReprobe map[string]time.Time

	// certs, when set, serves /api/v1/certificates (certificates.go).
	certsMu sync.Mutex
	certs   CertificateSource
}

// newAPIServer builds the handlers; maxConcurrent bounds API and page
// requests served at once.
func newAPIServer(log *zap.Logger, g prometheus.Gatherer, src observationSource, ready func() bool,
	plan func() *probes.Plan, version string, api probes.APISettings) *apiServer {
	if log == nil {
		log = zap.NewNop()
	}
	s := &apiServer{log: log.Named("http"), gatherer: g, source: src, ready: ready, plan: plan, version: version,
		now: time.Now, sem: make(chan struct{}, max(api.MaxConcurrent, 1)), heavy: make(chan struct{}, maxHeavyInFlight),
		csrf: http.NewCrossOriginProtection(), lastReprobe: map[string]time.Time{}}
	s.reprobes = probes.NewTokenBucket(api.Reprobe.Rate, api.Reprobe.Burst, func() time.Time { return s.now() })
	return s
}

// handler routes every endpoint.
func (s *apiServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{
		ErrorLog: zap.NewStdLog(s.log), MaxRequestsInFlight: maxMetricsInFlight, Timeout: 10 * time.Second}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if s.ready() {
			writeText(w, http.StatusOK, "ready\n")
			return
		}
		writeText(w, http.StatusServiceUnavailable, "not ready: some probes have not completed a first run\n")
	})
	mux.Handle("GET /api/v1/observations", s.limit(s.observations))
	mux.Handle("GET /api/v1/report", s.limit(s.report))
	mux.Handle("GET /{$}", s.limit(s.page))
	mux.Handle("GET /api/v1/certificates", s.limit(s.certificate))
	// Every method, so that a wrong one gets a JSON 405 inside the limit.
	mux.Handle("/api/v1/reprobe", s.limit(s.reprobeName))
	return probes.RecoverHTTP(mux, s.log, s.onPanic)
}

// listener is ln with the daemon's connection accounting.
func (s *apiServer) listener(ln net.Listener) net.Listener {
	l := probes.NewClientListener(ln, probes.ConnLimits{Total: maxConnections, PerClient: maxConnsPerClient}, s.refused)
	l.Refuse = probes.RefuseHTTP
	return l
}

// limit serves h only while a slot is free; otherwise it refuses at once
// with 429 and Retry-After, so a flood costs little and queues nothing.
func (s *apiServer) limit(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case s.sem <- struct{}{}:
			defer func() { <-s.sem }()
			h(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			writeJSONError(w, http.StatusTooManyRequests, "too many requests in flight; retry shortly")
		}
	})
}

// heavyOK takes a slot for a request over every name, or refuses it with
// 429; the caller calls the returned release when it got one.
func (s *apiServer) heavyOK(w http.ResponseWriter) (release func(), ok bool) {
	select {
	case s.heavy <- struct{}{}:
		return func() { <-s.heavy }, true
	default:
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusTooManyRequests, "too many reports of every name in flight; retry shortly, or ask for one name")
		return nil, false
	}
}

// newHTTPServer is the daemon's http.Server: timeouts on every phase.
func newHTTPServer(h http.Handler, log *zap.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		writeJSONError(w, http.StatusInternalServerError, "encoding the response: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// apiError is the body of every API error response.
type apiError struct {
	Error string `json:"error"`
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(apiError{Error: msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// targetName checks the name query parameter: "" (every name) or one of
// the configured targets, in canonical form.
func targetName(p *probes.Plan, raw string) (string, int, error) {
	if raw == "" {
		return "", 0, nil
	}
	if len(raw) > 300 {
		return "", http.StatusBadRequest, errors.New("name: too long")
	}
	n, err := dnscheck.NormalizeName(raw)
	if err != nil {
		return "", http.StatusBadRequest, fmt.Errorf("name %q: %w", raw, err)
	}
	for _, t := range p.Targets {
		if t.Name == n.ASCII {
			return n.ASCII, 0, nil
		}
	}
	return "", http.StatusNotFound, fmt.Errorf("name %q is not a target of this daemon", n.ASCII)
}

// observations serves GET /api/v1/observations?name=&since=&limit=: the
// newest observations (at most api.max_observations, oldest first), of one
// name or all, since an RFC 3339 time. X-Acmediag-Truncated says whether
// older ones matched too.
func (s *apiServer) observations(w http.ResponseWriter, r *http.Request) {
	p := s.plan()
	q := r.URL.Query()
	name, code, err := targetName(p, q.Get("name"))
	if err != nil {
		writeJSONError(w, code, err.Error())
		return
	}
	var since time.Time
	if v := q.Get("since"); v != "" {
		if since, err = time.Parse(time.RFC3339, v); err != nil {
			writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("since %q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", truncate(v, 60)))
			return
		}
	}
	limit := p.Settings.API.MaxObservations
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeJSONError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a positive integer", truncate(v, 20)))
			return
		}
		limit = min(n, limit)
	}
	obs := s.source.Query(name, since)
	truncated := len(obs) > limit
	if truncated {
		obs = obs[len(obs)-limit:]
	}
	if obs == nil {
		obs = []reports.Observation{}
	}
	w.Header().Set("X-Acmediag-Truncated", strconv.FormatBool(truncated))
	writeJSON(w, http.StatusOK, obs)
}

// report serves GET /api/v1/report?name=: diagnose's JSON over the latest
// observations of one name or of every target.
func (s *apiServer) report(w http.ResponseWriter, r *http.Request) {
	p := s.plan()
	name, code, err := targetName(p, r.URL.Query().Get("name"))
	if err != nil {
		writeJSONError(w, code, err.Error())
		return
	}
	if name == "" {
		release, ok := s.heavyOK(w)
		if !ok {
			return
		}
		defer release()
	}
	var buf bytes.Buffer
	if err := reports.RenderJSON(&buf, snapshot(p, s.source, name, s.peerVantages()).Report); err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}

// page serves GET /: the HTML report page. The page runs no script, and
// the Content-Security-Policy says so to the browser; its only form is
// each name's re-probe button, posting to this server.
func (s *apiServer) page(w http.ResponseWriter, _ *http.Request) {
	release, ok := s.heavyOK(w)
	if !ok {
		return
	}
	defer release()
	p := s.plan()
	peers := s.peerVantages()
	v := snapshot(p, s.source, "", peers)
	v.Report.Timelines = s.pageTimelines()
	info := reports.PageInfo{Version: s.version, Generated: s.now(), Ready: s.ready(), Refresh: pageRefreshSeconds,
		Vantages: append(vantagesOf(p), peers...), Latest: v.Latest, CanaryConfigured: p.Canary != nil, Orders: v.Orders,
		Propagation: v.Watches, Correlations: v.Correlations}
	if r := p.Settings.API.Reprobe; s.reprobe != nil && r.Enabled && p.ReprobeToken == "" {
		// A form cannot carry a bearer token: with one, the page has no button.
		info.ReprobePath = "/api/v1/reprobe"
	}
	var buf bytes.Buffer
	if err := reports.RenderHTML(&buf, v.Report, info); err != nil {
		s.log.Error("rendering the page", zap.Error(err))
		writeText(w, http.StatusInternalServerError, "rendering the page failed\n")
		return
	}
	page := buf.Bytes()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(page)
}

// peerVantages are the peers' vantages, or none.
func (s *apiServer) peerVantages() []reports.Vantage {
	if s.peers == nil {
		return nil
	}
	return s.peers()
}

// vantagesOf is the identity of the plan's vantages.
func vantagesOf(p *probes.Plan) []reports.Vantage {
	out := make([]reports.Vantage, len(p.Vantages))
	for i, v := range p.Vantages {
		out[i] = v.Vantage
	}
	return out
}

// reprobeJSON is the answer to a re-probe.
type reprobeJSON struct {
	Name string `json:"name"`
	// Propagation says whether the name's propagation watch runs too.
	Propagation bool `json:"propagation_watch"`
}

// reprobeName serves POST /api/v1/reprobe?name=NAME: every probe of a
// configured name from every vantage runs now (202); the canary is not
// re-run, its orders spend the CA's rate limits. 404 when
// api.reprobe.enabled is false or for a name that is not a target, 405 for
// another method, 403 for a cross-site browser request, 401 without the
// bearer token api.reprobe.token_file holds, 429 within reprobeMinGap of
// the name's last re-probe or when the budget across names is spent. A
// form posting from the page itself (Accept: text/html) is sent back to
// the page with 303.
func (s *apiServer) reprobeName(w http.ResponseWriter, r *http.Request) {
	p := s.plan()
	result := s.reprobeResult
	if result == nil {
		result = func(string) {}
	}
	if !p.Settings.API.Reprobe.Enabled {
		// As if the endpoint were not there: nothing to learn about it.
		result("disabled")
		writeJSONError(w, http.StatusNotFound, "re-probes are turned off (api.reprobe.enabled: false)")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSONError(w, http.StatusMethodNotAllowed, "use POST /api/v1/reprobe?name=NAME")
		return
	}
	if err := s.csrf.Check(r); err != nil {
		result("forbidden")
		writeJSONError(w, http.StatusForbidden, "a cross-origin request cannot re-probe: "+err.Error())
		return
	}
	if !bearerOK(r, p.ReprobeToken) {
		result("unauthorized")
		w.Header().Set("WWW-Authenticate", `Bearer realm="acmediag re-probe"`)
		writeJSONError(w, http.StatusUnauthorized, "a re-probe needs Authorization: Bearer TOKEN (the token of api.reprobe.token_file)")
		return
	}
	if s.reprobe == nil {
		writeJSONError(w, http.StatusServiceUnavailable, "re-probing is not available")
		return
	}
	raw := r.URL.Query().Get("name")
	if raw == "" {
		writeJSONError(w, http.StatusBadRequest, "name: missing; POST /api/v1/reprobe?name=NAME")
		return
	}
	name, code, err := targetName(p, raw)
	if err != nil {
		writeJSONError(w, code, err.Error())
		return
	}
	if wait, global := s.reprobeWait(name); wait > 0 {
		result("rate_limited")
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(wait.Seconds())))))
		msg := fmt.Sprintf("%s was re-probed less than %s ago", name, reprobeMinGap)
		if global {
			msg = fmt.Sprintf("re-probes across names are at most %g a second (burst %d); retry shortly",
				p.Settings.API.Reprobe.Rate, p.Settings.API.Reprobe.Burst)
		}
		writeJSONError(w, http.StatusTooManyRequests, msg)
		return
	}
	result("accepted")
	watched := s.reprobe(name)
	s.log.Info("re-probe requested", zap.String("name", name), zap.Bool("propagation_watch", watched),
		zap.String("remote", r.RemoteAddr))
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		http.Redirect(w, r, "/#name-"+name, http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusAccepted, reprobeJSON{Name: name, Propagation: watched})
}

// bearerOK reports whether r carries the bearer token want ("" none asked),
// compared in constant time.
func bearerOK(r *http.Request, want string) bool {
	if want == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) == 1
}

// reprobeWait is how long name must wait for its next re-probe, and
// whether the budget across names (rather than the name's gap) is why; 0
// takes a token and records one now.
func (s *apiServer) reprobeWait(name string) (wait time.Duration, global bool) {
	now := s.now()
	s.reprobeMu.Lock()
	defer s.reprobeMu.Unlock()
	if last, ok := s.lastReprobe[name]; ok && now.Sub(last) < reprobeMinGap && !now.Before(last) {
		return reprobeMinGap - now.Sub(last), false
	}
	if ok, wait := s.reprobes.Take(); !ok {
		return wait, true
	}
	if len(s.lastReprobe) >= maxReprobeMemory {
		for n, t := range s.lastReprobe {
			if now.Sub(t) >= reprobeMinGap || now.Before(t) {
				delete(s.lastReprobe, n)
			}
		}
		if len(s.lastReprobe) >= maxReprobeMemory {
			// Thousands of names re-probed within seconds: forget them all
			// rather than grow; the scheduler coalesces repeats anyway.
			clear(s.lastReprobe)
		}
	}
	s.lastReprobe[name] = now
	return 0, false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
