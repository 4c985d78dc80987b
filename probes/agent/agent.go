// Package agent is the remote vantage protocol: `acmediag agent` runs the
// probe kinds that agents may run (probes.Registry.Remote) from where it
// is, for a daemon or diagnose that asks over mutual TLS (the Handler),
// and Client asks one agent, standing in for the vantage's probes
// (probes.Remote). It is deliberately narrow: one endpoint, the remote
// kinds, a target that is a DNS name and nothing else. Every address, port
// and resolver the agent uses is its operator's configuration; a request
// can only name what to validate, so the agent cannot be made into a proxy
// toward arbitrary hosts or ports. It owns the wire format (a Request in,
// a reports.Observation out) and must not schedule, store or report.
package agent

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
	"time"

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

// ProbePath is the agent's one endpoint: POST a Request, get the
// reports.Observation of one run as JSON.
const ProbePath = "/v1/probe"

// Defaults (Limits zero values).
const (
	DefaultRate        = 5.0 // requests per second
	DefaultBurst       = 10
	DefaultMaxInFlight = 8
	DefaultMaxBody     = 4 << 10
	DefaultTimeout     = 30 * time.Second
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

// Request asks an agent to run one probe kind for one target: a DNS name
// and what to validate, never an address, a port or a URL. The target's
// challenge defaults to the kind, or http-01 (dns-01 for a wildcard) for
// the dns kind.
type Request struct {
	Kind   reports.Kind  `json:"kind"`
	Target probes.Target `json:"target"`
}

// requestKeys and targetKeys are the only JSON keys a request may carry;
// anything else (a port, an address, a URL, a resolver) is refused by name.
var (
	requestKeys = []string{"kind", "target"}
	targetKeys  = []string{"name", "challenge", "token", "key_auth", "expect_txt", "tls"}
)

// errorBody is the JSON of every refusal.
type errorBody struct {
	Error string `json:"error"`
}

// Limits bound what an agent does for its callers. Zero fields take the
// defaults.
type Limits struct {
	Rate        float64       // requests per second, token bucket refill; default 5
	Burst       int           // token bucket size; default 10
	MaxInFlight int           // probes running at once; default 8
	MaxBody     int64         // request body bytes; default 4 KiB
	Timeout     time.Duration // per probe run; default 30s
}

// DefaultLimits are the limits an agent has when nobody set them.
func DefaultLimits() Limits { return Limits{}.withDefaults() }

func (l Limits) withDefaults() Limits {
	if l.Rate <= 0 || math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0) {
		l.Rate = DefaultRate
	}
	if l.Burst <= 0 {
		l.Burst = DefaultBurst
	}
	if l.MaxInFlight <= 0 {
		l.MaxInFlight = DefaultMaxInFlight
	}
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	return l
}

// Config is what an agent runs with.
type Config struct {
	// Plan is the agent's own: its one vantage (name, kind, region and RIR
	// are reported with every result; source address and resolvers are
	// where its packets leave from and who resolves for it) and the checks'
	// configuration. Requests name the targets.
	Plan   *probes.Plan
	Limits Limits
	Logger *zap.Logger      // nil → zap.NewNop()
	Now    func() time.Time // the rate limiter's clock; nil → time.Now
}

// Handler serves ProbePath. It is an http.Handler meant to sit behind a TLS
// listener that requires and verifies client certificates (ServerTLS,
// NewServer): it does no authentication itself.
type Handler struct {
	cfg      Config
	kinds    []reports.Kind // the kinds an agent runs
	log      *zap.Logger
	bucket   *probes.TokenBucket
	inflight chan struct{}
	mux      *http.ServeMux
	serve    http.Handler // mux, a panic in it a 500
}

// NewHandler returns the agent's handler.
func NewHandler(cfg Config) *Handler {
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Handler{cfg: cfg, kinds: cfg.Plan.Registry.Remote(), log: cfg.Logger.Named("agent"),
		bucket:   probes.NewTokenBucket(cfg.Limits.Rate, cfg.Limits.Burst, cfg.Now),
		inflight: make(chan struct{}, cfg.Limits.MaxInFlight)}
	h.mux = http.NewServeMux()
	h.mux.HandleFunc(ProbePath, h.probe)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// Rate-limited like the probe endpoint: a scan of paths is a flood too.
		if !h.admit(w) {
			return
		}
		writeError(w, http.StatusNotFound, "not found: the agent serves only POST "+ProbePath)
	})
	// A probe's own panic is already an observation (Plan.RunKind); this
	// net catches the rest of a request's handling.
	h.serve = probes.RecoverHTTP(h.mux, h.log, nil)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve.ServeHTTP(w, r) }

// vantage is the agent itself.
func (h *Handler) vantage() probes.Vantage { return h.cfg.Plan.Vantages[0] }

// admit takes a token from the bucket, or answers 429 with Retry-After.
func (h *Handler) admit(w http.ResponseWriter) bool {
	ok, wait := h.bucket.Take()
	if ok {
		return true
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("rate limit: at most %g probe requests per second (burst %d); retry in %s",
		h.cfg.Limits.Rate, h.cfg.Limits.Burst, wait.Round(time.Millisecond)))
	return false
}

func (h *Handler) probe(w http.ResponseWriter, r *http.Request) {
	if !h.admit(w) {
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method "+truncateUntrusted(r.Method, 16)+": the agent serves only POST "+ProbePath)
		return
	}
	select {
	case h.inflight <- struct{}{}:
		defer func() { <-h.inflight }()
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("busy: %d probes are already running", h.cfg.Limits.MaxInFlight))
		return
	}
	req, status, err := decodeRequest(http.MaxBytesReader(w, r.Body, h.cfg.Limits.MaxBody), h.cfg.Limits.MaxBody)
	if err == nil {
		status, err = h.validate(&req)
	}
	log := h.log.With(zap.String("remote", r.RemoteAddr), zap.String("client", clientName(r)))
	if err != nil {
		log.Warn("probe request refused", zap.Int("status", status), zap.Error(err))
		writeError(w, status, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Limits.Timeout)
	defer cancel()
	obs := h.cfg.Plan.RunKind(ctx, req.Kind, req.Target, h.vantage())
	// The trace stays here: hop records are the agent's business; an agent
	// answers verdicts, not content.
	obs.Trace = reports.Trace{}
	log.Info("probe", zap.String("kind", string(req.Kind)), zap.String("name", req.Target.Name), zap.Bool("ok", obs.OK),
		zap.Int("findings", len(obs.Findings)), zap.Duration("duration", obs.Duration))
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(obs); err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the result: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(buf.Bytes())
}

// clientName is the verified client certificate's subject, for the log.
func clientName(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return ""
	}
	return r.TLS.VerifiedChains[0][0].Subject.String()
}

// decodeRequest reads one JSON object with only the known keys.
func decodeRequest(body io.Reader, limit int64) (Request, int, error) {
	var req Request
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
	if k := unknownKey(top, requestKeys); k != "" {
		return req, http.StatusForbidden, forbiddenKey(k, "")
	}
	var target map[string]json.RawMessage
	if raw, ok := top["target"]; ok {
		if err := json.Unmarshal(raw, &target); err != nil || target == nil {
			return req, http.StatusBadRequest, errors.New(`target: want a JSON object such as {"name":"www.example.com"}`)
		}
		if k := unknownKey(target, targetKeys); k != "" {
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
		prefix, truncateUntrusted(k, 40), strings.Join(targetKeys, ", "))
}

// validate refuses whatever is not one known probe of one DNS name, and
// fills in the default challenge.
func (h *Handler) validate(req *Request) (int, error) {
	if !slices.Contains(h.kinds, req.Kind) {
		names := make([]string, len(h.kinds))
		for i, k := range h.kinds {
			names[i] = string(k)
		}
		return http.StatusForbidden, fmt.Errorf("kind %q: an agent runs only the probe kinds %s", truncateUntrusted(string(req.Kind), 40), strings.Join(names, ", "))
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
		t.Challenge = reports.DefaultChallenge(t.Name)
		if c, err := reports.ParseChallenge(string(req.Kind)); err == nil {
			t.Challenge = c
		}
	}
	if _, err := reports.ParseChallenge(string(t.Challenge)); err != nil {
		return http.StatusForbidden, fmt.Errorf("target.challenge %q: want http-01, dns-01 or tls-alpn-01", truncateUntrusted(string(t.Challenge), 40))
	}
	switch {
	case req.Kind == probes.KindTLS && !h.cfg.Plan.Applies(req.Kind, *t):
		return http.StatusForbidden, fmt.Errorf("target.tls: this agent reads %s's certificate only when asked (tls: true) or when its own tls.enabled is set", t.Name)
	case !h.cfg.Plan.Applies(req.Kind, *t):
		return http.StatusForbidden, fmt.Errorf("target.challenge %q: a %s probe does not validate %s targets", t.Challenge, req.Kind, t.Challenge)
	case t.Token != "" && !tokenRE.MatchString(t.Token):
		// The token becomes the URL path: only a base64url token, so no
		// request can make the agent fetch another path.
		return http.StatusForbidden, fmt.Errorf("target.token %q is not an ACME token (base64url, at most 128 characters)", truncateUntrusted(t.Token, 40))
	case t.KeyAuth != "" && !keyAuthRE.MatchString(t.KeyAuth):
		return http.StatusForbidden, fmt.Errorf("target.key_auth %q is not a key authorization (TOKEN.THUMBPRINT, base64url)", truncateUntrusted(t.KeyAuth, 40))
	case t.Token != "" && t.Challenge != reports.HTTP01:
		return http.StatusForbidden, fmt.Errorf("target.token: only an http-01 target fetches a token (this one is %s)", t.Challenge)
	case len(t.ExpectTXT) > 255 || strings.IndexFunc(t.ExpectTXT, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0:
		return http.StatusForbidden, errors.New("target.expect_txt: want at most 255 printable ASCII characters")
	case t.ExpectTXT != "" && t.Challenge != reports.DNS01:
		return http.StatusForbidden, fmt.Errorf("target.expect_txt: only a dns-01 target has a TXT value (this one is %s)", t.Challenge)
	}
	return 0, nil
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg})
}

// truncateUntrusted shortens a caller's string for a message and quotes
// nothing: callers format it with %q.
func truncateUntrusted(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ServerTLS is the agent's TLS configuration: its own certificate,
// TLS 1.3 only, and a client certificate required and verified against
// the pinned client CA (and nothing else: not the system roots).
func ServerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
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

// ClientTLS is a client's TLS configuration toward an agent: its
// client certificate, TLS 1.3 only, and the agent's CA pinned (the system
// roots are not trusted for an agent).
func ClientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
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

// NewServer wraps h in an http.Server with the agent's TLS
// configuration and timeouts that a slow or silent client cannot hold
// open: serve it with ServeTLS(ln, "", "").
func NewServer(h http.Handler, tlsCfg *tls.Config, limits Limits, logger *zap.Logger) *http.Server {
	if logger == nil {
		logger = zap.NewNop()
	}
	limits = limits.withDefaults()
	// TLS handshake failures (a missing or wrong client certificate) are
	// logged by net/http through ErrorLog: worth a warning, not an error.
	errLog, _ := zap.NewStdLogAt(logger.Named("agent.http"), zap.WarnLevel)
	return &http.Server{
		Handler:   h,
		TLSConfig: tlsCfg,
		// The TLS handshake and the headers within 2 s (a handshake is one
		// round trip in TLS 1.3): a slow client holds its slot no longer.
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      limits.Timeout + 10*time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          errLog,
	}
}

// Client asks one agent to probe, over mutual TLS: it is the vantage's
// probes.Remote.
type Client struct {
	url  string // https://HOST:PORT, without the path
	http *http.Client
}

// NewClient returns a client for the agent at rawURL (https://HOST:PORT)
// using tlsCfg (ClientTLS). timeout bounds one request; 0 → the agent's
// default run timeout plus 10 s.
func NewClient(rawURL string, tlsCfg *tls.Config, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("agent URL %q: want https://HOST:PORT", rawURL)
	}
	if tlsCfg == nil || len(tlsCfg.Certificates) == 0 && tlsCfg.GetClientCertificate == nil {
		return nil, errors.New("agent client: a client certificate is required")
	}
	if timeout <= 0 {
		timeout = DefaultTimeout + 10*time.Second
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
	return &Client{url: "https://" + u.Host, http: &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// Dial is the probes.BuildOptions.Remote of agent vantages: a Client for
// the agent settings, with the key of the setting at fault in its error.
func Dial(a probes.AgentSettings, timeout time.Duration) (probes.Remote, error) {
	if _, err := tls.LoadX509KeyPair(a.ClientCert, a.ClientKey); err != nil {
		return nil, &probes.Issue{Key: "client_cert", Msg: err.Error()}
	}
	tlsCfg, err := ClientTLS(a.ClientCert, a.ClientKey, a.CAFile)
	if err != nil {
		// The key pair loaded: what is left wrong is the CA file.
		return nil, &probes.Issue{Key: "ca_file", Msg: err.Error()}
	}
	c, err := NewClient(a.URL, tlsCfg, timeout)
	if err != nil {
		return nil, &probes.Issue{Key: "url", Msg: fmt.Sprintf("%q is not https://HOST:PORT", truncateUntrusted(a.URL, 80))}
	}
	return c, nil
}

// URL is the agent's base URL.
func (c *Client) URL() string { return c.url }

// Close closes the client's idle connections (a reload replaced it).
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Error is an agent's refusal: an HTTP status and its message.
type Error struct {
	URL     string
	Status  int
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("agent %s: %d %s: %s", e.URL, e.Status, http.StatusText(e.Status), e.Message)
}

// Probe asks the agent to run one probe kind for t and returns its
// observation as the agent made it.
func (c *Client) Probe(ctx context.Context, kind reports.Kind, t probes.Target) (*reports.Observation, error) {
	body, err := json.Marshal(Request{Kind: kind, Target: t})
	if err != nil {
		return nil, fmt.Errorf("agent %s: encoding the request: %w", c.url, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+ProbePath, bytes.NewReader(body))
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
		var eb errorBody
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			msg = eb.Error
		}
		return nil, &Error{URL: c.url, Status: resp.StatusCode, Message: truncateUntrusted(strings.ToValidUTF8(msg, "?"), maxAgentErrorMsg)}
	}
	var res reports.Observation
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("agent %s: the answer is not a probe result: %w", c.url, err)
	}
	if res.Kind != kind {
		return nil, fmt.Errorf("agent %s: asked for a %s probe, got %q", c.url, kind, truncateUntrusted(string(res.Kind), 40))
	}
	if !sameName(res.Name, t.Name) {
		return nil, fmt.Errorf("agent %s: asked about %s, got an answer about %q", c.url, t.Name, truncateUntrusted(res.Name, 80))
	}
	if len(res.Findings) > maxAgentFindings || len(res.Checks) > maxAgentChecks {
		return nil, fmt.Errorf("agent %s: %d findings and %d checks: more than the %d and %d accepted", c.url,
			len(res.Findings), len(res.Checks), maxAgentFindings, maxAgentChecks)
	}
	if len(res.Trace.Lines) > reports.MaxTraceLines {
		res.Trace.Lines = res.Trace.Lines[:reports.MaxTraceLines]
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

// Run implements probes.Remote: the agent's findings from the agent's place
// in the network, recorded under the vantage the plan runs it for, so an
// agent is a vantage like a local one and counts toward the MPIC quorum by
// its kind. When the agent cannot answer, the observation fails with an
// "agent.probe" check saying why and no findings: the agent's trouble is
// not the name's.
func (c *Client) Run(ctx context.Context, kind reports.Kind, t probes.Target, v probes.Vantage) reports.Observation {
	start, t0 := time.Now(), time.Now()
	obs := reports.Observation{Name: t.Name, Challenge: t.Challenge, Vantage: v.Vantage, Kind: kind, Start: start}
	res, err := c.Probe(ctx, kind, t)
	if err != nil {
		obs.Duration = time.Since(t0)
		obs.Checks = []reports.Check{{Name: "agent.probe", Target: t.Name, Status: reports.CheckFail, Duration: obs.Duration, Note: err.Error()}}
		obs.Trace.Add("agent %s", c.url)
		return obs // OK false
	}
	obs.Duration = res.Duration
	obs.Findings = res.Findings
	for i := range obs.Findings {
		obs.Findings[i].Vantage = "" // the report assigns vantages
	}
	obs.Checks = res.Checks
	obs.Trace.Add("agent %s (%s) answered in %s", c.url, res.Vantage.Name, time.Since(t0).Round(time.Millisecond))
	ok := res.OK
	obs = obs.Finish()
	obs.OK = obs.OK && ok
	return obs
}
