package probes

// An agent is a remote vantage: `acmediag agent` runs the DNS and challenge
// probes from where it is, for a daemon (or diagnose) that asks over mutual
// TLS. It is deliberately narrow: one endpoint, the three known probe
// kinds, a target that is a DNS name and nothing else. Every address, port
// and resolver it uses is its operator's configuration; a request can only
// name what to validate, so the agent cannot be made into a proxy toward
// arbitrary hosts or ports.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/http01"
	"github.com/acmediag/acmediag/reports"
)

// AgentProbePath is the agent's one endpoint: POST an AgentRequest, get an
// AgentResult.
const AgentProbePath = "/v1/probe"

// agentKinds are the probe kinds an agent runs; nothing else is ever run.
var agentKinds = []string{"dns", dnscheck.HTTP01, dnscheck.TLSALPN01}

// AgentKinds lists the probe kinds an agent runs.
func AgentKinds() []string { return slices.Clone(agentKinds) }

// Agent defaults (AgentLimits zero values).
const (
	DefaultAgentRate        = 5.0 // requests per second
	DefaultAgentBurst       = 10
	DefaultAgentMaxInFlight = 8
	DefaultAgentMaxBody     = 4 << 10
	DefaultAgentTimeout     = 30 * time.Second
)

// Bounds on what an agent's answer may make a client hold: the agent is
// trusted by certificate, but a bug or a compromise there must not exhaust
// the daemon.
const (
	maxAgentResponse = 2 << 20
	maxAgentFindings = 256
	maxAgentChecks   = 512
	maxAgentErrorMsg = 512
)

// Field bounds of a request. An ACME token is base64url (RFC 8555 §8.1:
// at least 128 bits of entropy, 43 characters in practice); a key
// authorization is token "." thumbprint. Anything else in the URL path
// would let a caller fetch arbitrary paths through the agent.
var (
	tokenRE   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	keyAuthRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}\.[A-Za-z0-9_-]{1,128}$`)
)

// AgentRequest asks an agent to run one probe kind for one target.
type AgentRequest struct {
	Kind   string      `json:"kind"`
	Target AgentTarget `json:"target"`
}

// AgentTarget is a Target as it travels to an agent: a DNS name and what
// to validate, never an address, a port or a URL.
type AgentTarget struct {
	Name      string `json:"name"`
	Challenge string `json:"challenge,omitempty"` // default: the kind, or http-01 for dns
	Token     string `json:"token,omitempty"`
	KeyAuth   string `json:"key_auth,omitempty"`
	ExpectTXT string `json:"expect_txt,omitempty"`
}

// agentRequestKeys and agentTargetKeys are the only JSON keys a request
// may carry; anything else (a port, an address, a URL, a resolver) is
// refused by name.
var (
	agentRequestKeys = []string{"kind", "target"}
	agentTargetKeys  = []string{"name", "challenge", "token", "key_auth", "expect_txt"}
)

// AgentVantage is how an agent describes itself.
type AgentVantage struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`
	Region string `json:"region,omitempty"`
	RIR    string `json:"rir,omitempty"`
}

// AgentResult is an Observation as an agent returns it: the findings and
// checks, without the probe's trace (hop records and DNS answers stay on
// the agent: they are large, and an agent answers verdicts, not content).
type AgentResult struct {
	Vantage    AgentVantage      `json:"vantage"`
	Kind       string            `json:"kind"`
	Target     AgentTarget       `json:"target"`
	Start      time.Time         `json:"start"`
	DurationMS int64             `json:"duration_ms"`
	OK         bool              `json:"ok"`
	Findings   []reports.Finding `json:"findings"`
	Checks     []reports.Check   `json:"checks"`
}

// agentErrorBody is the JSON of every refusal.
type agentErrorBody struct {
	Error string `json:"error"`
}

// AgentLimits bound what an agent does for its callers. Zero fields take
// the defaults.
type AgentLimits struct {
	Rate        float64       // requests per second, token bucket refill; default 5
	Burst       int           // token bucket size; default 10
	MaxInFlight int           // probes running at once; default 8
	MaxBody     int64         // request body bytes; default 4 KiB
	Timeout     time.Duration // per probe run; default 30s
}

func (l AgentLimits) withDefaults() AgentLimits {
	if l.Rate <= 0 || math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) {
		l.Rate = DefaultAgentRate
	}
	if l.Burst <= 0 {
		l.Burst = DefaultAgentBurst
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = DefaultAgentMaxInFlight
	}
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultAgentMaxBody
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultAgentTimeout
	}
	return l
}

// AgentConfig is what an agent runs with.
type AgentConfig struct {
	// Vantage is the agent itself: its name, kind, region and RIR are
	// reported with every result; SourceAddr and Resolvers are where its
	// packets leave from and who resolves for it.
	Vantage Vantage
	// Checker and Validator are the base DNS and HTTP-01/TLS-ALPN-01
	// configuration (roots, ports, allowed ranges); the vantage's source
	// address and resolvers override theirs per run.
	Checker   dnscheck.Checker
	Validator http01.Validator
	Limits    AgentLimits
	Logger    *zap.Logger      // nil → zap.NewNop()
	Now       func() time.Time // the rate limiter's clock; nil → time.Now
}

// AgentHandler serves AgentProbePath. It is an http.Handler meant to sit
// behind a TLS listener that requires and verifies client certificates
// (AgentServerTLS, NewAgentServer): it does no authentication itself.
type AgentHandler struct {
	cfg      AgentConfig
	log      *zap.Logger
	bucket   *tokenBucket
	inflight chan struct{}
	mux      *http.ServeMux
}

// NewAgentHandler returns the agent's handler.
func NewAgentHandler(cfg AgentConfig) *AgentHandler {
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Vantage.Kind == "" {
		cfg.Vantage.Kind = KindExternal
	}
	h := &AgentHandler{cfg: cfg, log: cfg.Logger.Named("agent"),
		bucket:   newTokenBucket(cfg.Limits.Rate, cfg.Limits.Burst, cfg.Now),
		inflight: make(chan struct{}, cfg.Limits.MaxInFlight)}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc(AgentProbePath, h.probe)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Rate-limited like the probe endpoint: a scan of paths is a flood too.
		if !h.admit(w) {
			return
		}
		writeAgentError(w, http.StatusNotFound, "not found: the agent serves only POST "+AgentProbePath)
	})
	return h
}

// ServeHTTP implements http.Handler.
func (h *AgentHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// admit takes a token from the bucket, or answers 429 with Retry-After.
func (h *AgentHandler) admit(w http.ResponseWriter) bool {
	ok, wait := h.bucket.take()
	if ok {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	writeAgentError(w, http.StatusTooManyRequests, fmt.Sprintf("rate limit: at most %g probe requests per second (burst %d); retry in %s",
		h.cfg.Limits.Rate, h.cfg.Limits.Burst, wait.Round(time.Millisecond)))
	return false
}

func (h *AgentHandler) probe(w http.ResponseWriter, r *http.Request) {
	if !h.admit(w) {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeAgentError(w, http.StatusMethodNotAllowed, "method "+truncateUntrusted(r.Method, 16)+": the agent serves only POST "+AgentProbePath)
		return
	}
	select {
	case h.inflight <- struct{}{}:
		defer func() { <-h.inflight }()
	default:
		w.Header().Set("Retry-After", "1")
		writeAgentError(w, http.StatusTooManyRequests, fmt.Sprintf("busy: %d probes are already running", h.cfg.Limits.MaxInFlight))
		return
	}
	req, status, err := decodeAgentRequest(http.MaxBytesReader(w, r.Body, h.cfg.Limits.MaxBody), h.cfg.Limits.MaxBody)
	if err == nil {
		status, err = validateAgentRequest(&req)
	}
	log := h.log.With(zap.String("remote", r.RemoteAddr), zap.String("client", clientName(r)))
	if err != nil {
		log.Warn("probe request refused", zap.Int("status", status), zap.Error(err))
		writeAgentError(w, status, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Limits.Timeout)
	defer cancel()
	t := Target{Name: req.Target.Name, Challenge: req.Target.Challenge, Token: req.Target.Token,
		KeyAuth: req.Target.KeyAuth, ExpectTXT: req.Target.ExpectTXT}
	obs := h.run(ctx, req.Kind, t)
	v := h.cfg.Vantage
	res := AgentResult{Vantage: AgentVantage{Name: v.Name, Kind: v.Kind, Region: v.Region, RIR: v.RIR},
		Kind: obs.Kind, Target: req.Target, Start: obs.Start.UTC(), DurationMS: obs.Duration.Milliseconds(),
		OK: obs.OK, Findings: obs.Findings, Checks: obs.Checks}
	if res.Findings == nil {
		res.Findings = []reports.Finding{}
	}
	if res.Checks == nil {
		res.Checks = []reports.Check{}
	}
	log.Info("probe", zap.String("kind", req.Kind), zap.String("name", t.Name), zap.Bool("ok", obs.OK),
		zap.Int("findings", len(obs.Findings)), zap.Duration("duration", obs.Duration))
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(res); err != nil {
		writeAgentError(w, http.StatusInternalServerError, "encoding the result: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}

// run builds the probe afresh for every request: a DNS session caches
// answers without expiry, right for one diagnosis, wrong for an agent that
// must see a record change between two requests.
func (h *AgentHandler) run(ctx context.Context, kind string, t Target) Observation {
	sessions := &Sessions{Checker: h.cfg.Checker}
	if sessions.Checker.Logger == nil {
		sessions.Checker.Logger = h.log.Named("dnscheck")
	}
	var p Probe
	if kind == "dns" {
		p = &DNSProbe{Sessions: sessions}
	} else {
		val := h.cfg.Validator
		if val.Logger == nil {
			val.Logger = h.log.Named("http01")
		}
		p = &ChallengeProbe{Challenge: kind, Sessions: sessions, Validator: val}
	}
	return p.Run(ctx, t, h.cfg.Vantage)
}

// clientName is the verified client certificate's subject, for the log.
func clientName(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	return r.TLS.VerifiedChains[0][0].Subject.String()
}

// decodeAgentRequest reads one JSON object with only the known keys.
func decodeAgentRequest(body io.Reader, limit int64) (AgentRequest, int, error) {
	var req AgentRequest
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return req, http.StatusRequestEntityTooLarge, fmt.Errorf("the request body is larger than %d bytes", limit)
		}
		return req, http.StatusBadRequest, fmt.Errorf("reading the request: %w", err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		return req, http.StatusBadRequest, errors.New(`the body is not a JSON object such as {"kind":"dns","target":{"name":"www.example.com"}}`)
	}
	if k := unknownKey(top, agentRequestKeys); k != "" {
		return req, http.StatusForbidden, forbiddenKey(k, "")
	}
	var target map[string]json.RawMessage
	if raw, ok := top["target"]; ok {
		if err := json.Unmarshal(raw, &target); err != nil || target == nil {
			return req, http.StatusBadRequest, errors.New(`target: want a JSON object such as {"name":"www.example.com"}`)
		}
		if k := unknownKey(target, agentTargetKeys); k != "" {
			return req, http.StatusForbidden, forbiddenKey(k, "target.")
		}
	}
	if err := json.Unmarshal(data, &req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return req, http.StatusBadRequest, fmt.Errorf("%s: want a JSON %s", te.Field, te.Type)
		}
		return req, http.StatusBadRequest, fmt.Errorf("the body is not a valid request: %w", err)
	}
	return req, 0, nil
}

// unknownKey returns the first key (in sorted order, for a stable
// message) that is not allowed.
func unknownKey(m map[string]json.RawMessage, allowed []string) string {
	var bad []string
	for k := range m {
		if !slices.Contains(allowed, k) {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	slices.Sort(bad)
	return bad[0]
}

func forbiddenKey(k, prefix string) error {
	return fmt.Errorf("%s%q is not accepted: an agent probes a DNS name on ports 53, 80 and 443 (as its operator configured them) and takes no ports, addresses, URLs or resolvers from a request; known keys: kind, target{%s}",
		prefix, truncateUntrusted(k, 40), strings.Join(agentTargetKeys, ", "))
}

// validateAgentRequest refuses whatever is not one known probe of one DNS
// name, and fills in the default challenge.
func validateAgentRequest(req *AgentRequest) (int, error) {
	if !slices.Contains(agentKinds, req.Kind) {
		return http.StatusForbidden, fmt.Errorf("kind %q: an agent runs only the probe kinds %s", truncateUntrusted(req.Kind, 40), strings.Join(agentKinds, ", "))
	}
	t := &req.Target
	if t.Name == "" {
		return http.StatusBadRequest, errors.New("target.name is missing")
	}
	n, err := dnscheck.NormalizeName(t.Name)
	if err != nil {
		reason := err.Error()
		var ne *dnscheck.NameError
		if errors.As(err, &ne) {
			reason = ne.Reason
		}
		return http.StatusForbidden, fmt.Errorf("target.name %q is not a DNS name an ACME CA would validate (%s): an agent probes DNS names only, never addresses, ports or URLs",
			truncateUntrusted(t.Name, 80), reason)
	}
	t.Name = n.ASCII
	if t.Challenge == "" {
		t.Challenge = req.Kind
		if req.Kind == "dns" {
			t.Challenge = dnscheck.HTTP01
			if strings.HasPrefix(t.Name, "*.") {
				t.Challenge = dnscheck.DNS01
			}
		}
	}
	switch {
	case !slices.Contains([]string{dnscheck.HTTP01, dnscheck.DNS01, dnscheck.TLSALPN01}, t.Challenge):
		return http.StatusForbidden, fmt.Errorf("target.challenge %q: want http-01, dns-01 or tls-alpn-01", truncateUntrusted(t.Challenge, 40))
	case req.Kind != "dns" && t.Challenge != req.Kind:
		return http.StatusForbidden, fmt.Errorf("target.challenge %q: a %s probe validates %s targets only", t.Challenge, req.Kind, req.Kind)
	case t.Token != "" && !tokenRE.MatchString(t.Token):
		// The token becomes the URL path: only a base64url token, so no
		// request can make the agent fetch another path.
		return http.StatusForbidden, fmt.Errorf("target.token %q is not an ACME token (base64url, at most 128 characters)", truncateUntrusted(t.Token, 40))
	case t.KeyAuth != "" && !keyAuthRE.MatchString(t.KeyAuth):
		return http.StatusForbidden, fmt.Errorf("target.key_auth %q is not a key authorization (TOKEN.THUMBPRINT, base64url)", truncateUntrusted(t.KeyAuth, 40))
	case t.Token != "" && t.Challenge != dnscheck.HTTP01:
		return http.StatusForbidden, fmt.Errorf("target.token: only an http-01 target fetches a token (this one is %s)", t.Challenge)
	case len(t.ExpectTXT) > 255 || strings.IndexFunc(t.ExpectTXT, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0:
		return http.StatusForbidden, errors.New("target.expect_txt: want at most 255 printable ASCII characters")
	case t.ExpectTXT != "" && t.Challenge != dnscheck.DNS01:
		return http.StatusForbidden, fmt.Errorf("target.expect_txt: only a dns-01 target has a TXT value (this one is %s)", t.Challenge)
	}
	return 0, nil
}

func writeAgentError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(agentErrorBody{Error: msg})
}

// truncateUntrusted shortens a caller's string for a message and quotes
// nothing: callers format it with %q.
func truncateUntrusted(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// tokenBucket is a token bucket: rate tokens a second, at most burst.
type tokenBucket struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newTokenBucket(rate float64, burst int, now func() time.Time) *tokenBucket {
	return &tokenBucket{rate: rate, burst: float64(burst), now: now, tokens: float64(burst), last: now()}
}

// take removes a token if there is one; otherwise it says how long until
// there will be.
func (b *tokenBucket) take() (bool, time.Duration) {
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
	return false, time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// AgentServerTLS is the agent's TLS configuration: its own certificate,
// TLS 1.3 only, and a client certificate required and verified against
// the pinned client CA (and nothing else: not the system roots).
func AgentServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("agent certificate: %w", err)
	}
	pool, err := loadCAPool(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("client CA: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

// AgentClientTLS is a client's TLS configuration toward an agent: its
// client certificate, TLS 1.3 only, and the agent's CA pinned (the system
// roots are not trusted for an agent).
func AgentClientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	pool, err := loadCAPool(caFile)
	if err != nil {
		return nil, fmt.Errorf("agent CA: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool}, nil
}

func loadCAPool(file string) (*x509.CertPool, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	return pool, nil
}

// NewAgentServer wraps h in an http.Server with the agent's TLS
// configuration and timeouts that a slow or silent client cannot hold
// open: serve it with ServeTLS(ln, "", "").
func NewAgentServer(h http.Handler, tlsCfg *tls.Config, limits AgentLimits, logger *zap.Logger) *http.Server {
	if logger == nil {
		logger = zap.NewNop()
	}
	limits = limits.withDefaults()
	// TLS handshake failures (a missing or wrong client certificate) are
	// logged by net/http through ErrorLog: worth a warning, not an error.
	errLog, _ := zap.NewStdLogAt(logger.Named("agent.http"), zap.WarnLevel)
	return &http.Server{
		Handler:           h,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      limits.Timeout + 10*time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errLog,
	}
}

// AgentClient asks one agent to probe, over mutual TLS.
type AgentClient struct {
	url  string // https://HOST:PORT, without the path
	http *http.Client
}

// NewAgentClient returns a client for the agent at rawURL (https://HOST:PORT)
// using tlsCfg (AgentClientTLS). timeout bounds one request; 0 → the
// agent's default run timeout plus 10 s.
func NewAgentClient(rawURL string, tlsCfg *tls.Config, timeout time.Duration) (*AgentClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("agent URL %q: want https://HOST:PORT", rawURL)
	}
	if tlsCfg == nil || len(tlsCfg.Certificates) == 0 && tlsCfg.GetClientCertificate == nil {
		return nil, errors.New("agent client: a client certificate is required")
	}
	if timeout <= 0 {
		timeout = DefaultAgentTimeout + 10*time.Second
	}
	tr := &http.Transport{
		// HTTP/1.1: over HTTP/2 a refused client certificate reads as
		// "client conn could not be established"; over HTTP/1.1 the TLS
		// alert itself ("unknown certificate authority") reaches the log.
		TLSClientConfig:       tlsCfg.Clone(),
		ForceAttemptHTTP2:     false,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		Proxy:                 nil, // an agent is reached directly, never through HTTPS_PROXY
	}
	return &AgentClient{url: "https://" + u.Host, http: &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// URL is the agent's base URL.
func (c *AgentClient) URL() string { return c.url }

// CloseIdleConnections closes the client's idle connections (after a
// reload replaced it).
func (c *AgentClient) CloseIdleConnections() { c.http.CloseIdleConnections() }

// AgentError is an agent's refusal: an HTTP status and its message.
type AgentError struct {
	URL     string
	Status  int
	Message string
}

func (e *AgentError) Error() string {
	return fmt.Sprintf("agent %s: %d %s: %s", e.URL, e.Status, http.StatusText(e.Status), e.Message)
}

// Probe asks the agent to run one probe kind for t.
func (c *AgentClient) Probe(ctx context.Context, kind string, t Target) (*AgentResult, error) {
	body, err := json.Marshal(AgentRequest{Kind: kind, Target: AgentTarget(t)})
	if err != nil {
		return nil, fmt.Errorf("agent %s: encoding the request: %w", c.url, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+AgentProbePath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", c.url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentResponse+1))
	if err != nil {
		return nil, fmt.Errorf("agent %s: reading the answer: %w", c.url, err)
	}
	if len(data) > maxAgentResponse {
		return nil, fmt.Errorf("agent %s: the answer is larger than %d bytes", c.url, maxAgentResponse)
	}
	if resp.StatusCode != http.StatusOK {
		var eb agentErrorBody
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		return nil, &AgentError{URL: c.url, Status: resp.StatusCode, Message: truncateUntrusted(strings.ToValidUTF8(msg, "?"), maxAgentErrorMsg)}
	}
	var res AgentResult
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("agent %s: the answer is not a probe result: %w", c.url, err)
	}
	if res.Kind != kind {
		return nil, fmt.Errorf("agent %s: asked for a %s probe, got %q", c.url, kind, truncateUntrusted(res.Kind, 40))
	}
	if !sameName(res.Target.Name, t.Name) {
		return nil, fmt.Errorf("agent %s: asked about %s, got an answer about %q", c.url, t.Name, truncateUntrusted(res.Target.Name, 80))
	}
	if len(res.Findings) > maxAgentFindings || len(res.Checks) > maxAgentChecks {
		return nil, fmt.Errorf("agent %s: %d findings and %d checks: more than the %d and %d accepted", c.url,
			len(res.Findings), len(res.Checks), maxAgentFindings, maxAgentChecks)
	}
	if res.DurationMS < 0 {
		return nil, fmt.Errorf("agent %s: negative duration %d ms", c.url, res.DurationMS)
	}
	return &res, nil
}

// sameName compares the name an agent answered about with the one asked
// about; the agent canonicalises (A-labels, lower case).
func sameName(got, asked string) bool {
	if strings.EqualFold(got, asked) {
		return true
	}
	n, err := dnscheck.NormalizeName(asked)
	return err == nil && strings.EqualFold(n.ASCII, got)
}

// RemoteProbe runs one probe kind on an agent: the agent's findings from
// the agent's place in the network, recorded under the vantage the
// scheduler runs it for, so an agent is a vantage like a local one and
// counts toward the MPIC quorum by its kind.
type RemoteProbe struct {
	ProbeKind string // dns, http-01 or tls-alpn-01
	Client    *AgentClient
}

// RemoteTrace is a remote observation's trace: which agent answered and
// how it describes itself.
type RemoteTrace struct {
	URL       string
	Agent     AgentVantage
	RoundTrip time.Duration
}

// Kind implements Probe.
func (p *RemoteProbe) Kind() string { return p.ProbeKind }

// Applies implements Applier: like the local probe of the same kind.
func (p *RemoteProbe) Applies(t Target) bool {
	return p.ProbeKind == "dns" || t.Challenge == p.ProbeKind
}

// Run implements Probe. When the agent cannot answer, the observation
// fails with an "agent.probe" check saying why and no findings: the
// agent's trouble is not the name's.
func (p *RemoteProbe) Run(ctx context.Context, t Target, v Vantage) Observation {
	start := time.Now()
	obs := Observation{Target: t, Vantage: v, Kind: p.ProbeKind, Start: start}
	res, err := p.Client.Probe(ctx, p.ProbeKind, t)
	obs.Duration = time.Since(start)
	if err != nil {
		obs.Checks = []reports.Check{{Name: "agent.probe", Target: t.Name, Status: reports.CheckFail, Duration: obs.Duration, Note: err.Error()}}
		obs.Trace = RemoteTrace{URL: p.Client.URL(), RoundTrip: obs.Duration}
		return obs // OK false
	}
	if v.Name == "" {
		// Asked without a configured vantage (diagnose --agent): the
		// agent's own description stands.
		obs.Vantage = Vantage{Name: res.Vantage.Name, Kind: res.Vantage.Kind, Region: res.Vantage.Region, RIR: res.Vantage.RIR}
		if obs.Vantage.Kind != KindCluster {
			obs.Vantage.Kind = KindExternal
		}
	}
	obs.Duration = time.Duration(res.DurationMS) * time.Millisecond
	obs.Findings = res.Findings
	for i := range obs.Findings {
		obs.Findings[i].Vantage = "" // the report assigns vantages
	}
	obs.Checks = res.Checks
	obs.Trace = RemoteTrace{URL: p.Client.URL(), Agent: res.Vantage, RoundTrip: time.Since(start)}
	obs = finish(obs)
	obs.OK = obs.OK && res.OK
	return obs
}
