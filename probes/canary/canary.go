// Package canary runs real ACME orders against a (staging) directory with
// lego v5's core API client and reads the CA's verdict: the CA's own
// validation is the ground truth every local probe is checked against.
//
// ProbeOrder answers an HTTP-01 challenge without serving the token and reads
// the result the way Let's Debug does; FullOrder serves the token and
// completes issuance; DNS01Order publishes the TXT record through one of
// lego's DNS providers (DNSProvider builds it from the environment) and
// completes issuance, wildcards included. Both time every step, keep a local budget under the
// CA's rate limits, honour Retry-After within the caller's deadline, refuse
// Let's Encrypt's production directory unless allowed, and turn a bad
// directory (down, HTML, malformed JSON or problems, hangs) into a finding.
package canary

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/go-acme/lego/v5/challenge"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/reports"
)

// ErrProductionRefused is returned (wrapped) for a production directory
// when Config.AllowProduction is not set.
var ErrProductionRefused = errors.New("production ACME directory refused (set AllowProduction to use it)")

// productionHosts are directories that issue publicly trusted certificates.
var productionHosts = []string{"acme-v02.api.letsencrypt.org"}

const (
	userAgent = "acmediag-canary"
	// defaultDeadline bounds a run whose ctx has no deadline.
	defaultDeadline = 2 * time.Minute
	// requestTimeout bounds one HTTP exchange with the CA.
	requestTimeout = 30 * time.Second
	// maxBody bounds every response body read from the CA.
	maxBody = 1 << 20
	// maxRetryAfter caps one honoured Retry-After wait.
	maxRetryAfter = 30 * time.Second
	// maxPolls bounds the polls of one challenge or order.
	maxPolls = 200
	// firstPoll and maxPoll shape polling when the CA sends no Retry-After.
	firstPoll = 50 * time.Millisecond
	maxPoll   = 2 * time.Second
	// maxDetail bounds untrusted text copied into a finding.
	maxDetail = 512
	// cleanupTimeout bounds a provider's CleanUp, which runs even after
	// the run's deadline.
	cleanupTimeout = 30 * time.Second
)

// Config says which CA to order from and how.
type Config struct {
	DirectoryURL    string
	AllowProduction bool   // refuse LE production directories unless set
	CACertFile      string // extra CA bundle for the directory's TLS (Pebble)
	AccountKeyFile  string // created when missing (ECDSA P-256 PEM), reused after; "" = ephemeral
	Email           string
	Budget          *Budget // local rate budget; nil = a default (staging) one per call
	// DNS01Propagation, when set, is waited on between publishing the TXT
	// record and answering a dns-01 challenge (DNS01Order); nil answers at
	// once, trusting the provider.
	DNS01Propagation PropagationCheck
	// wrapTransport, set by this package's tests only, wraps the HTTP
	// transport (the benchmark adds the Retry-After a CA may send).
	wrapTransport func(http.RoundTripper) http.RoundTripper
	Logger        *zap.Logger
	Clock         func() time.Time // nil = time.Now
}

// Step is one timed stage of an order.
type Step struct {
	Name     string
	Start    time.Time
	Duration time.Duration
	Err      string
}

// Outcome is what one order showed.
type Outcome struct {
	Steps []Step
	// Problem is the CA's problem, verbatim, when the order failed.
	Problem *reports.Problem
	// Findings: acme.order_failed (with the problem), the specific code the
	// problem matches, acme.rate_limited, acme.directory_unreachable.
	Findings []reports.Finding
	// Reached: the CA's validation request got an HTTP answer from the
	// server (a probe order's pass: 404 or wrong body for the unserved token).
	Reached bool
	Valid   bool  // the authorization became valid
	Issued  bool  // a certificate was downloaded (full order only)
	Err     error // a local refusal or configuration error; nothing (more) was sent
}

// ProbeOrder creates an order for name, answers the HTTP-01 challenge
// without serving the token, reads the CA's verdict and deactivates the
// authorization.
func ProbeOrder(ctx context.Context, cfg Config, name string) Outcome {
	return run(ctx, cfg, name, solver{chalType: http01Type})
}

// Challenge types the canary answers.
const (
	http01Type = "http-01"
	dns01Type  = "dns-01"
)

// solver is how one run answers its challenge. A nil provider is a probe
// order: the challenge is answered without placing anything.
type solver struct {
	chalType string
	step     string // name of the timed Present step
	provider challenge.Provider
	// local, when set, says what Present does on this machine (serve a
	// token on a port): its failure is ours, not a DNS provider's, and
	// becomes Outcome.Err.
	local string
}

// order is the state of one run.
type order struct {
	cfg   Config
	log   *zap.Logger
	now   func() time.Time
	name  string // as ordered: "*.example.com" for a wildcard
	sol   solver
	out   Outcome
	core  *api.Core
	hc    *http.Client
	hdr   *lastHeader
	bud   *Budget
	authz string // authorization URL, for deactivation
	// jr is the journal next to the account key (nil for an ephemeral
	// key) and je this run's entry in it.
	jr *journal
	je journalEntry
}

// testHook, set by this package's tests only, is called at the points of
// a run where a kill must leave nothing behind for the next run:
// "published" (the TXT record is out), "answered" (the CA accepted the
// challenge response) and "cleanup" (before the record is removed).
var testHook func(point string)

func hook(point string) {
	if testHook != nil {
		testHook(point)
	}
}

func run(ctx context.Context, cfg Config, name string, sol solver) (out Outcome) {
	o := &order{cfg: cfg, name: name, now: cfg.Clock, bud: cfg.Budget, sol: sol}
	// Registered first, so it runs last: what the deferred cleanup records
	// reaches the caller.
	defer func() { out = o.out }()
	if o.now == nil {
		o.now = time.Now
	}
	o.log = cfg.Logger
	if o.log == nil {
		o.log = zap.NewNop()
	}
	o.log = o.log.Named("canary").With(zap.String("name", name), zap.String("directory", cfg.DirectoryURL), zap.String("challenge", sol.chalType))
	if o.bud == nil {
		o.bud = NewBudget(Limits{})
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultDeadline)
		defer cancel()
	}
	if err := o.checkConfig(); err != nil {
		o.out.Err = err
		return o.out
	}
	var key crypto.Signer
	if err := o.step("account_key", func() (err error) { key, err = loadOrCreateKey(cfg.AccountKeyFile); return err }); err != nil {
		o.out.Err = err
		return o.out
	}
	// The budget refuses before any request reaches the CA.
	if err := o.bud.ReserveOrder(name, o.now()); err != nil {
		o.out.Err = fmt.Errorf("canary %s: %w", name, err)
		return o.out
	}
	if err := o.step("directory", func() error { return o.directory(ctx, key) }); err != nil {
		return o.out
	}
	if err := o.step("account", func() error { return o.account(ctx) }); err != nil {
		return o.out
	}
	o.jr = journalFor(cfg.AccountKeyFile, o.log)
	o.recover(ctx)
	var ord acme.ExtendedOrder
	if err := o.step("order", func() (err error) { ord, err = o.core.Orders.New(ctx, []string{name}, nil); return o.caErr(err) }); err != nil {
		return o.out
	}
	o.log.Debug("order created", zap.String("order", ord.Location))
	chal, domain, err := o.challenge(ctx, ord)
	if o.authz != "" {
		o.journalOpen(ord.Location)
		// Registered before cleanup's defer, so it runs after it.
		defer o.journalEnd()
	}
	if err != nil {
		return o.out
	}
	if o.out.Valid {
		// A reused valid authorization: nothing to publish.
		if sol.provider != nil {
			o.finish(ctx, ord)
		}
		return o.out
	}
	if sol.provider != nil {
		keyAuth, err := o.core.GetKeyAuthorization(chal.Token)
		if err != nil {
			o.out.Err = fmt.Errorf("canary %s: key authorization: %w", name, err)
			o.deactivate(ctx)
			return o.out
		}
		if sol.chalType == dns01Type {
			o.journalTXT(domain, chal.Token, keyAuth)
		}
		if err := o.step(sol.step, func() error { return sol.provider.Present(ctx, domain, chal.Token, keyAuth) }); err != nil {
			// lego's contract: no CleanUp after a failed Present.
			o.journalTXT("", "", "")
			o.presentFailed(domain, err)
			o.deactivate(ctx)
			return o.out
		}
		hook("published")
		// lego's contract: CleanUp only after a successful Present; it
		// runs even when the run's ctx is done, briefly.
		defer o.cleanup(ctx, domain, chal.Token, keyAuth)
		if sol.chalType == dns01Type {
			o.waitPropagation(ctx, domain, keyAuth)
		}
	}
	if err := o.step("challenge", func() error { _, err := o.core.Challenges.New(ctx, chal.URL); return o.caErr(err) }); err != nil {
		o.deactivate(ctx)
		return o.out
	}
	hook("answered")
	var final acme.ExtendedChallenge
	if err := o.step("poll", func() (err error) { final, err = o.pollChallenge(ctx, chal.URL); return err }); err != nil {
		o.deactivate(ctx)
		return o.out
	}
	o.verdict(final)
	if sol.provider == nil || !o.out.Valid {
		if final.Status != acme.StatusInvalid {
			o.deactivate(ctx)
		} else {
			o.journalAuthzClosed()
		}
		return o.out
	}
	o.finish(ctx, ord)
	return o.out
}

// presentFailed records a failed Present: a local serving problem is a
// configuration error, a DNS provider's refusal is dns01.provider_error
// carrying the provider's own message.
func (o *order) presentFailed(domain string, err error) {
	if o.sol.local != "" {
		o.out.Err = fmt.Errorf("canary %s: %s: %w", o.name, o.sol.local, err)
		return
	}
	o.out.Findings = append(o.out.Findings, reports.New(reports.CodeDNS01ProviderError, o.name,
		"the DNS provider failed to publish the TXT record for "+challengeFQDN(domain)+": "+truncate(err.Error())).
		With("provider_error", truncate(err.Error())).With("stage", "present"))
}

// cleanup removes what Present placed. A DNS provider's failure here
// leaves a stale TXT behind: a warning, the certificate is not at stake.
func (o *order) cleanup(ctx context.Context, domain, token, keyAuth string) {
	hook("cleanup")
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := o.step("cleanup", func() error { return o.sol.provider.CleanUp(cctx, domain, token, keyAuth) })
	if err == nil && o.sol.chalType == dns01Type {
		o.journalTXT("", "", "")
	}
	if err != nil && o.sol.local == "" {
		o.out.Findings = append(o.out.Findings, reports.New(reports.CodeDNS01ProviderError, o.name,
			"the DNS provider failed to remove the TXT record at "+challengeFQDN(domain)+" (it stays behind): "+truncate(err.Error())).
			WithSeverity(reports.Warning).With("provider_error", truncate(err.Error())).With("stage", "cleanup"))
	}
}

// checkConfig refuses production and non-HTTPS directories.
func (o *order) checkConfig() error {
	u, err := url.Parse(o.cfg.DirectoryURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("canary: directory URL %q must be an https URL", o.cfg.DirectoryURL)
	}
	if o.name == "" {
		return errors.New("canary: no name to order")
	}
	if strings.HasPrefix(o.name, "*.") && o.sol.chalType != dns01Type {
		return fmt.Errorf("canary: %s: a wildcard can only be validated with dns-01", o.name)
	}
	if IsProduction(o.cfg.DirectoryURL) && !o.cfg.AllowProduction {
		return fmt.Errorf("canary: %s: %w", o.cfg.DirectoryURL, ErrProductionRefused)
	}
	return nil
}

// IsProduction reports whether a directory URL issues publicly trusted
// certificates (and counts against production rate limits).
func IsProduction(directoryURL string) bool {
	u, err := url.Parse(directoryURL)
	if err != nil {
		return false
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	for _, p := range productionHosts {
		if host == p {
			return true
		}
	}
	return false
}

// step runs fn as a timed step named name. The start comes from the
// injected clock; the duration is measured on the monotonic clock.
func (o *order) step(name string, fn func() error) error {
	start, t0 := o.now(), time.Now()
	err := fn()
	s := Step{Name: name, Start: start, Duration: time.Since(t0)}
	if err != nil {
		s.Err = truncate(err.Error())
	}
	o.out.Steps = append(o.out.Steps, s)
	o.log.Debug("step", zap.String("step", name), zap.Duration("duration", s.Duration), zap.String("err", s.Err))
	return err
}

// directory fetches and checks the directory itself (to say exactly what is
// wrong with it), then builds lego's core client on it.
func (o *order) directory(ctx context.Context, key crypto.Signer) error {
	hc, hdr, err := newHTTPClient(ctx, o.cfg.CACertFile, o.cfg.wrapTransport)
	if err != nil {
		o.out.Err = fmt.Errorf("canary: %w", err)
		return o.out.Err
	}
	o.hc, o.hdr = hc, hdr
	if err := o.fetchDirectory(ctx); err != nil {
		o.unreachable(err.Error())
		return err
	}
	core, err := api.New(hc, userAgent, o.cfg.DirectoryURL, "", key)
	if err != nil {
		o.unreachable(err.Error())
		return err
	}
	o.core = core
	return nil
}

// fetchDirectory checks that the directory answers 200 with a JSON object
// holding https newNonce, newAccount and newOrder URLs.
func (o *order) fetchDirectory(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.cfg.DirectoryURL, nil)
	if err != nil {
		return fmt.Errorf("directory %s: %w", o.cfg.DirectoryURL, err)
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := o.hc.Do(req)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		// The client's timeout and ctx's deadline race (both end at the
		// deadline); say the same thing whichever wins.
		return fmt.Errorf("directory %s: Timeout: no answer before the deadline: %w", o.cfg.DirectoryURL, err)
	}
	if err != nil {
		return fmt.Errorf("directory %s: %w", o.cfg.DirectoryURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("directory %s: reading body: %w", o.cfg.DirectoryURL, err)
	}
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("directory %s: status %d (%s): %s", o.cfg.DirectoryURL, resp.StatusCode, ct, quote(body))
	}
	var dir map[string]any
	if err := json.Unmarshal(body, &dir); err != nil {
		return fmt.Errorf("directory %s: not a JSON object (%s): %s", o.cfg.DirectoryURL, ct, quote(body))
	}
	for _, k := range []string{"newNonce", "newAccount", "newOrder"} {
		s, _ := dir[k].(string)
		if u, err := url.Parse(s); s == "" || err != nil || u.Scheme != "https" {
			return fmt.Errorf("directory %s: %q is %s, want an https URL", o.cfg.DirectoryURL, k, quote([]byte(fmt.Sprint(dir[k]))))
		}
	}
	return nil
}

// account registers the key, or finds the account it already has.
func (o *order) account(ctx context.Context) error {
	req := acme.Account{TermsOfServiceAgreed: true, Contact: []string{}}
	if o.cfg.Email != "" {
		req.Contact = []string{"mailto:" + o.cfg.Email}
	}
	acct, err := o.core.Accounts.New(ctx, req)
	if err != nil {
		return o.caErr(err)
	}
	o.log.Debug("account", zap.String("account", acct.Location))
	return nil
}

// challenge fetches the order's authorization and picks the challenge of
// the solver's type. domain is the authorization's identifier (the base
// name of a wildcard), which is what a provider publishes under.
func (o *order) challenge(ctx context.Context, ord acme.ExtendedOrder) (acme.Challenge, string, error) {
	var chal acme.Challenge
	var domain string
	err := o.step("authorization", func() error {
		if len(ord.Authorizations) != 1 {
			err := fmt.Errorf("order for one name has %d authorizations", len(ord.Authorizations))
			o.unreachable(err.Error())
			return err
		}
		o.authz = ord.Authorizations[0]
		az, err := o.core.Authorizations.Get(ctx, o.authz)
		if err != nil {
			return o.caErr(err)
		}
		domain = az.Identifier.Value
		if want := strings.TrimPrefix(o.name, "*."); !strings.EqualFold(domain, want) {
			err := fmt.Errorf("authorization %s is for %q, not %q", o.authz, truncate(domain), want)
			o.unreachable(err.Error())
			return err
		}
		if az.Status == acme.StatusValid {
			// Reused authorization: the CA did not validate anything now.
			o.out.Valid = true
			return nil
		}
		for _, c := range az.Challenges {
			if c.Type == o.sol.chalType {
				chal = c
				return nil
			}
		}
		err = fmt.Errorf("authorization %s (status %s) offers no %s challenge", o.authz, truncate(az.Status), o.sol.chalType)
		o.unreachable(err.Error())
		return err
	})
	return chal, domain, err
}

// pollChallenge polls the challenge until it leaves pending/processing,
// honouring Retry-After (capped, and never past the deadline).
func (o *order) pollChallenge(ctx context.Context, chalURL string) (acme.ExtendedChallenge, error) {
	// A Retry-After on the challenge's own response is the CA's advice for
	// the first poll too (RFC 8555 §7.5.1).
	if _, ok := parseRetryAfter(o.hdr.get(), time.Now()); ok {
		if err := o.sleep(ctx, 0, "waiting the Retry-After of the challenge response"); err != nil {
			return acme.ExtendedChallenge{}, err
		}
	}
	wait := firstPoll
	for i := range maxPolls {
		c, err := o.core.Challenges.Get(ctx, chalURL)
		if err != nil {
			return c, o.caErr(err)
		}
		switch c.Status {
		case acme.StatusValid, acme.StatusInvalid:
			return c, nil
		case acme.StatusPending, acme.StatusProcessing:
		default:
			err := fmt.Errorf("challenge %s has unknown status %q", chalURL, truncate(c.Status))
			o.unreachable(err.Error())
			return c, err
		}
		if err := o.sleep(ctx, wait, fmt.Sprintf("challenge still %s after %d polls", c.Status, i+1)); err != nil {
			return c, err
		}
		wait = min(wait*2, maxPoll)
	}
	err := fmt.Errorf("challenge %s still not done after %d polls", chalURL, maxPolls)
	o.unreachable(err.Error())
	return acme.ExtendedChallenge{}, err
}

// sleep waits d, or the CA's Retry-After when it asks for longer (capped),
// and gives up with a finding when the wait would pass the deadline.
func (o *order) sleep(ctx context.Context, d time.Duration, what string) error {
	if ra, ok := parseRetryAfter(o.hdr.get(), time.Now()); ok && ra > d {
		d = min(ra, maxRetryAfter)
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		err := fmt.Errorf("%s; the next poll (in %s) would pass the deadline", what, d)
		o.unreachable(err.Error())
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		err := fmt.Errorf("%s: %w", what, ctx.Err())
		o.unreachable(err.Error())
		return err
	case <-t.C:
		return nil
	}
}

// verdict reads a finished challenge.
func (o *order) verdict(c acme.ExtendedChallenge) {
	if c.Status == acme.StatusValid {
		o.out.Valid, o.out.Reached = true, true
		return
	}
	o.bud.FailedAuthz(o.name, o.now())
	if c.Error == nil {
		o.unreachable("challenge invalid without a problem document")
		return
	}
	p := reports.Problem{Type: c.Error.Type, Detail: c.Error.Detail}
	o.out.Problem = &p
	if o.sol.chalType == dns01Type {
		// Nothing counts as "reached" for dns-01: the record was published.
		o.out.Findings = append(o.out.Findings, failed(o.name, p)...)
		return
	}
	v, fs := classify(o.name, p)
	o.out.Reached = v == Reached
	o.out.Findings = append(o.out.Findings, fs...)
}

// finish finalizes a valid order and downloads the certificate.
func (o *order) finish(ctx context.Context, ord acme.ExtendedOrder) {
	// A valid authorization left in place would be reused by the next
	// order for the name (the CA keeps them for hours), which would then
	// validate nothing: the canary's next run would pass untested.
	defer o.deactivate(ctx)
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		o.out.Err = fmt.Errorf("canary: certificate key: %w", err)
		return
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{}, DNSNames: []string{o.name},
	}, certKey)
	if err != nil {
		o.out.Err = fmt.Errorf("canary: CSR: %w", err)
		return
	}
	var done acme.ExtendedOrder
	if err := o.step("finalize", func() (err error) {
		done, err = o.core.Orders.UpdateForCSR(ctx, ord.Finalize, csr)
		return o.caErr(err)
	}); err != nil {
		return
	}
	if done.Status != acme.StatusValid {
		if err := o.step("poll_order", func() (err error) { done, err = o.pollOrder(ctx, ord.Location); return err }); err != nil {
			return
		}
	}
	_ = o.step("download", func() error {
		raw, err := o.core.Certificates.Get(ctx, done.Certificate, true)
		if err != nil {
			return o.caErr(err)
		}
		blk, _ := pem.Decode(raw.Cert)
		if blk == nil {
			err := fmt.Errorf("certificate at %s is not PEM: %s", done.Certificate, quote(raw.Cert))
			o.unreachable(err.Error())
			return err
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err == nil && !covers(cert, o.name) {
			err = errors.New("name not in the certificate")
		}
		if err != nil {
			err := fmt.Errorf("certificate at %s does not cover %s (%v)", done.Certificate, o.name, err)
			o.unreachable(err.Error())
			return err
		}
		o.out.Issued = true
		return nil
	})
}

// pollOrder polls an order until it is valid (or fails).
func (o *order) pollOrder(ctx context.Context, orderURL string) (acme.ExtendedOrder, error) {
	wait := firstPoll
	for i := range maxPolls {
		ord, err := o.core.Orders.Get(ctx, orderURL)
		if err != nil {
			return ord, o.caErr(err)
		}
		switch ord.Status {
		case acme.StatusValid:
			return ord, nil
		case acme.StatusInvalid:
			if ord.Error != nil {
				p := reports.Problem{Type: ord.Error.Type, Detail: ord.Error.Detail}
				o.out.Problem = &p
				o.out.Findings = append(o.out.Findings, reports.New(reports.CodeACMEOrderFailed, o.name, p.Type+": "+p.Detail).WithProblem(p.Type, p.Detail))
			} else {
				o.unreachable("order invalid after finalize, without a problem document")
			}
			return ord, errors.New("order invalid after finalize")
		}
		if err := o.sleep(ctx, wait, fmt.Sprintf("order still %s after %d polls", ord.Status, i+1)); err != nil {
			return ord, err
		}
		wait = min(wait*2, maxPoll)
	}
	err := fmt.Errorf("order %s still not valid after %d polls", orderURL, maxPolls)
	o.unreachable(err.Error())
	return acme.ExtendedOrder{}, err
}

// deactivate gives up the pending or valid authorization so it cannot be
// reused by a later real order; failures only log (the CA expires it anyway).
func (o *order) deactivate(ctx context.Context) {
	if o.authz == "" || o.core == nil {
		return
	}
	// A cancelled run still deactivates, briefly.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := o.step("deactivate", func() error { return o.core.Authorizations.Deactivate(dctx, o.authz) }); err == nil {
		o.journalAuthzClosed()
	}
}

// caErr turns an error from lego into findings: a rate limit, a CA problem,
// or a directory that does not speak ACME. It returns err unchanged.
func (o *order) caErr(err error) error {
	if err == nil {
		return nil
	}
	if rl, ok := errors.AsType[*acme.RateLimitedError](err); ok && rl.ProblemDetails != nil {
		p := reports.Problem{Type: rl.Type, Detail: truncate(rl.Detail)}
		o.out.Problem = &p
		f := rateLimited(o.name, p)
		if rl.RetryAfter > 0 {
			until := o.now().Add(rl.RetryAfter)
			f = f.With("retry_after", until.UTC().Format(time.RFC3339))
			limit, _ := f.Evidence["limit"].(string)
			o.bud.Pause(until, limit)
		}
		o.out.Findings = append(o.out.Findings, f)
		return err
	}
	if pd, ok := errors.AsType[*acme.ProblemDetails](err); ok && pd.Type != "" {
		p := reports.Problem{Type: pd.Type, Detail: truncate(pd.Detail)}
		o.out.Problem = &p
		_, fs := classify(o.name, p)
		o.out.Findings = append(o.out.Findings, fs...)
		return err
	}
	o.unreachable(err.Error())
	return err
}

// unreachable records acme.directory_unreachable with what was seen.
func (o *order) unreachable(detail string) {
	o.out.Findings = append(o.out.Findings, reports.New(reports.CodeACMEDirectoryUnreachable, o.name, truncate(detail)).With("directory", o.cfg.DirectoryURL))
}

// covers reports whether cert is valid for name; a wildcard must be
// listed as such (VerifyHostname takes only concrete host names).
func covers(cert *x509.Certificate, name string) bool {
	if !strings.HasPrefix(name, "*.") {
		return cert.VerifyHostname(name) == nil
	}
	for _, n := range cert.DNSNames {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

// newHTTPClient trusts the system roots plus caFile, caps bodies, bounds
// every exchange by the deadline and remembers the last Retry-After.
func newHTTPClient(ctx context.Context, caFile string, wrap func(http.RoundTripper) http.RoundTripper) (*http.Client, *lastHeader, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("CA file %s: %w", caFile, err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, nil, fmt.Errorf("CA file %s: no PEM certificate", caFile)
		}
	}
	timeout := requestTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(dl), time.Millisecond))
	}
	hdr := &lastHeader{}
	tr := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	// Timeout matters beyond ctx: lego's api.New fetches the directory with
	// context.Background, so only the client bounds that request.
	var rt http.RoundTripper = tr
	if wrap != nil {
		rt = wrap(rt)
	}
	return &http.Client{Timeout: timeout, Transport: &capped{rt: rt, hdr: hdr}}, hdr, nil
}

// capped limits response bodies to maxBody and records Retry-After.
type capped struct {
	rt  http.RoundTripper
	hdr *lastHeader
}

// RoundTrip implements http.RoundTripper.
func (c *capped) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	c.hdr.set(resp.Header.Get("Retry-After"))
	resp.Body = &limitedBody{r: io.LimitReader(resp.Body, maxBody), c: resp.Body}
	return resp, nil
}

type limitedBody struct {
	r io.Reader
	c io.Closer
}

func (l *limitedBody) Read(p []byte) (int, error) { return l.r.Read(p) }
func (l *limitedBody) Close() error               { return l.c.Close() }

// lastHeader holds the Retry-After of the latest response.
type lastHeader struct {
	mu sync.Mutex
	v  string
}

func (h *lastHeader) set(v string) { h.mu.Lock(); h.v = v; h.mu.Unlock() }
func (h *lastHeader) get() string  { h.mu.Lock(); defer h.mu.Unlock(); return h.v }

// truncate bounds untrusted text copied into findings and steps.
func truncate(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	return strings.ToValidUTF8(s[:maxDetail], "") + "…"
}

// quote renders the start of an untrusted body for a message.
func quote(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return fmt.Sprintf("%q", b)
}
