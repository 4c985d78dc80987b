package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/miekg/dns"
	"gopkg.in/yaml.v3"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/canary"
)

// The daemon's configuration is one YAML file. It is read in three steps:
// a walk of the YAML node tree against the Go types below, which rejects
// unknown keys, duplicate keys and values of the wrong shape with the file
// line of each; defaults for every key the file leaves out (applyDefaults,
// the one place defaults live); then validation of the values, which turns
// the file into a daemonConfig the daemon runs with. Every problem is
// reported as "FILE:LINE: KEY.PATH: what is wrong", all of them at once.

// Bounds on what a configuration file may make the daemon hold.
const (
	maxConfigBytes  = 16 << 20
	maxConfigNodes  = 4_000_000 // YAML nodes walked, aliases expanded
	maxTargets      = 100_000
	maxVantages     = 64
	maxListLen      = 1_000 // any other list (roots, resolvers, ...)
	maxConfigIssues = 20
	defaultListen   = ":9464"
	minInterval     = time.Second
	// defaultMemoryLimit is the Go runtime's soft memory limit when the
	// file sets none: the store (16 MiB by default), the run heap of
	// 100,000 targets and the transient memory of reading their YAML fit
	// under it with room for the GC to work without thrashing.
	defaultMemoryLimit = 192 << 20
	// minMemoryLimit: below this the GC would run almost continuously.
	minMemoryLimit = 32 << 20
)

// Probe kinds a schedule interval may name.
var scheduleKinds = []string{"dns", dnscheck.HTTP01, dnscheck.TLSALPN01}

// fileConfig is the YAML file as written. Keys are snake_case; every
// field's meaning and default is in applyDefaults and validate.
type fileConfig struct {
	Listen   string          `yaml:"listen"`
	Vantages []vantageConfig `yaml:"vantages"`
	Agents   []agentConfig   `yaml:"agents"`
	DNS      dnsConfig       `yaml:"dns"`
	HTTP     httpConfig      `yaml:"http"`
	Targets  []targetConfig  `yaml:"targets"`
	Schedule scheduleConfig  `yaml:"schedule"`
	Store    storeConfig     `yaml:"store"`
	API      apiConfig       `yaml:"api"`
	Canary   *canaryConfig   `yaml:"canary"`
	// Propagation paces the watch of each expect_txt value.
	Propagation propagationConfig `yaml:"propagation"`
	// MemoryLimit is the Go runtime's soft memory limit (debug.SetMemoryLimit).
	MemoryLimit byteSize `yaml:"memory_limit"`
}

// propagationConfig is the watch of a dns-01 target's expect_txt value
// reaching every authoritative server address.
type propagationConfig struct {
	Timeout     duration `yaml:"timeout"`
	IssuerWait  duration `yaml:"issuer_wait"`
	Concurrency int      `yaml:"concurrency"`
}

type vantageConfig struct {
	Name     string `yaml:"name"`
	Source   string `yaml:"source"`   // local source address of every packet
	Resolver string `yaml:"resolver"` // its own recursive resolver, ADDR[:PORT]
	RIR      string `yaml:"rir"`
	Region   string `yaml:"region"`
	Kind     string `yaml:"kind"` // external (default) or cluster
}

// agentConfig is a remote vantage: an `acmediag agent` reached over
// mutual TLS, whose probes run where it is.
type agentConfig struct {
	Name       string `yaml:"name"`
	URL        string `yaml:"url"` // https://HOST:PORT
	Region     string `yaml:"region"`
	RIR        string `yaml:"rir"`
	Kind       string `yaml:"kind"`        // external (default) or cluster
	ClientCert string `yaml:"client_cert"` // the daemon's client certificate (PEM)
	ClientKey  string `yaml:"client_key"`
	CAFile     string `yaml:"ca_file"` // the CA the agent's certificate must chain to; nothing else is trusted
}

type dnsConfig struct {
	Roots           []string `yaml:"roots"`
	Resolvers       []string `yaml:"resolvers"`
	TrustAnchor     string   `yaml:"trust_anchor"`
	DNSPort         int      `yaml:"dns_port"`
	AllowAddresses  []string `yaml:"allow_addresses"`
	QueryTimeout    duration `yaml:"query_timeout"`
	ResolverTimeout duration `yaml:"resolver_timeout"`
	CAIdentities    []string `yaml:"ca_identities"`
	AccountURI      string   `yaml:"account_uri"`
}

type httpConfig struct {
	HTTPPort  int `yaml:"http_port"`
	HTTPSPort int `yaml:"https_port"`
}

type targetConfig struct {
	Name      string `yaml:"name"`
	Challenge string `yaml:"challenge"`
	Token     string `yaml:"token"`
	KeyAuth   string `yaml:"key_auth"`
	ExpectTXT string `yaml:"expect_txt"`
}

type scheduleConfig struct {
	Intervals   map[string]duration `yaml:"intervals"`
	Jitter      float64             `yaml:"jitter"`
	Concurrency int                 `yaml:"concurrency"`
	Timeout     duration            `yaml:"timeout"`
	MaxBackoff  duration            `yaml:"max_backoff"`
}

type storeConfig struct {
	PerKey   int      `yaml:"per_key"`
	MaxBytes byteSize `yaml:"max_bytes"`
}

type apiConfig struct {
	MaxConcurrent   int `yaml:"max_concurrent"`
	MaxObservations int `yaml:"max_observations"`
}

type canaryConfig struct {
	Directory       string   `yaml:"directory"`
	CACert          string   `yaml:"ca_cert"`
	AccountKey      string   `yaml:"account_key"`
	AllowProduction bool     `yaml:"allow_production"`
	Interval        duration `yaml:"interval"`
	Names           []string `yaml:"names"`
	DNSProvider     string   `yaml:"dns_provider"`
}

// duration is a time.Duration written as Go writes it: 30s, 5m, 1h30m.
type duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("not a duration")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 30s or 5m", n.Value)
	}
	*d = duration(v)
	return nil
}

// byteSize is a number of bytes, plain or with a unit: 67108864, 64MiB, 512KiB.
type byteSize int64

var byteUnits = map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1e3, "MB": 1e6, "GB": 1e9}

var byteSizeRE = regexp.MustCompile(`^([0-9]{1,15})\s*([KMG]i?B|B)?$`)

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *byteSize) UnmarshalYAML(n *yaml.Node) error {
	m := byteSizeRE.FindStringSubmatch(strings.TrimSpace(n.Value))
	unit, ok := byteUnits[m2(m)]
	if n.Kind != yaml.ScalarNode || m == nil || !ok {
		return fmt.Errorf("%q is not a size such as 67108864, 512KiB or 64MiB", n.Value)
	}
	v, _ := strconv.ParseInt(m[1], 10, 64)
	if v > math.MaxInt64/unit {
		return fmt.Errorf("%q is too large", n.Value)
	}
	*b = byteSize(v * unit)
	return nil
}

func m2(m []string) string {
	if len(m) < 3 {
		return "?"
	}
	return m[2]
}

// daemonConfig is a validated configuration: what the daemon runs with.
type daemonConfig struct {
	Path      string
	Listen    string
	Vantages  []probes.Vantage // local vantages, then agents
	Targets   []probes.Target
	Checker   dnscheck.Checker // without Logger; the daemon sets it
	HTTPPort  int
	HTTPSPort int
	Schedule  scheduleSettings
	Store     storeSettings
	API       apiSettings
	Canary    *canarySettings // nil: no canary
	// Agents are the vantages whose probes run remotely, by vantage name.
	Agents      map[string]*probes.AgentClient
	Propagation propagationSettings
	// MemoryLimit is the Go runtime's soft memory limit in bytes; 0 leaves
	// the runtime's own (GOMEMLIMIT, or none).
	MemoryLimit int64
}

// propagationSettings pace the daemon's propagation watches: one per
// (dns-01 target, expect_txt value), at most Concurrency at once, each
// ending after Timeout; a value slower than IssuerWait to reach every
// server address gives dns01.propagation_slow (0: never).
type propagationSettings struct {
	Timeout     time.Duration
	IssuerWait  time.Duration
	Concurrency int
}

// scheduleSettings mirror probes.Schedule.
type scheduleSettings struct {
	Intervals   map[string]time.Duration
	Jitter      float64
	Concurrency int
	Timeout     time.Duration
	MaxBackoff  time.Duration
}

// storeSettings mirror probes.StoreLimits.
type storeSettings struct {
	PerKey   int
	MaxBytes int64
}

// apiSettings bound the HTTP API.
type apiSettings struct {
	MaxConcurrent   int // API and page requests served at once; more get 429
	MaxObservations int // the most observations one response carries
}

// canarySettings is the canary issuance: probe orders at a (staging) ACME
// directory for Names, every Interval; dns-01 names get full orders whose
// TXT records DNSProvider publishes.
type canarySettings struct {
	Config      canary.Config
	Interval    time.Duration
	Names       []string
	DNSProvider challenge.Provider // nil: http-01 names only
}

// configIssue is one problem in the file.
type configIssue struct {
	line int // 0: not tied to a line
	msg  string
}

// configError lists every problem found in a configuration file, one per
// line, sorted by line.
type configError struct {
	file   string
	issues []configIssue
}

func (e *configError) Error() string {
	var b strings.Builder
	for i, is := range e.issues {
		if i == maxConfigIssues {
			fmt.Fprintf(&b, "\n%s: %d more problems not shown", e.file, len(e.issues)-maxConfigIssues)
			break
		}
		if i > 0 {
			b.WriteByte('\n')
		}
		if is.line > 0 {
			fmt.Fprintf(&b, "%s:%d: %s", e.file, is.line, is.msg)
		} else {
			fmt.Fprintf(&b, "%s: %s", e.file, is.msg)
		}
	}
	return b.String()
}

// loader carries one load's state: which keys the file set (and on which
// line) and the problems found so far.
type loader struct {
	file   string // as given, for messages
	dir    string // relative paths in the file are relative to it
	lines  map[string]int
	issues []configIssue
	nodes  int
}

// loadConfig reads, checks and validates the configuration file at path.
// Its error, when a problem is in the file, is a *configError naming the
// file line and key of every problem.
func loadConfig(path string) (*daemonConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	return parseConfig(path, data)
}

// parseConfig is loadConfig on the file's contents; path names the file in
// messages and anchors relative paths.
func parseConfig(path string, data []byte) (*daemonConfig, error) {
	l := &loader{file: path, dir: filepath.Dir(path), lines: map[string]int{}}
	if len(data) > maxConfigBytes {
		l.issue(0, fmt.Sprintf("the file is larger than %d MiB", maxConfigBytes>>20))
		return nil, l.err()
	}
	var fc fileConfig
	if !l.decode(data, &fc) {
		return nil, l.err()
	}
	l.applyDefaults(&fc)
	cfg := l.validate(&fc)
	if len(l.issues) > 0 {
		return nil, l.err()
	}
	cfg.Path = path
	return cfg, nil
}

func (l *loader) err() error {
	sort.SliceStable(l.issues, func(i, j int) bool {
		a, b := l.issues[i].line, l.issues[j].line
		if a == 0 || b == 0 {
			return a != 0 && b == 0 // issues without a line go last
		}
		return a < b
	})
	return &configError{file: l.file, issues: l.issues}
}

func (l *loader) issue(line int, msg string) { l.issues = append(l.issues, configIssue{line, msg}) }

// errf records a problem with the value at key path, on the line of that
// key, or of the nearest enclosing key the file has when it lacks this one.
func (l *loader) errf(path, format string, args ...any) {
	l.issue(l.lineOf(path), path+": "+fmt.Sprintf(format, args...))
}

func (l *loader) lineOf(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if n, ok := l.lines[p]; ok {
			return n
		}
	}
	return 0
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// set reports whether the file gave a (non-null) value for the key path.
func (l *loader) set(path string) bool { _, ok := l.lines[path]; return ok }

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// decode parses data as one YAML document, walks it against fileConfig,
// then decodes it strictly. It returns false when the file has problems.
func (l *loader) decode(data []byte, fc *fileConfig) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.issue(0, "the file is empty: want at least a list of targets")
			return false
		}
		l.yamlError(err)
		return false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		l.issue(extra.Line, "only one YAML document is allowed (found a second one)")
		return false
	} else if !errors.Is(err, io.EOF) {
		l.yamlError(err)
		return false
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Tag == "!!null" {
		l.issue(0, "the file is empty: want at least a list of targets")
		return false
	}
	l.walk(root, reflect.TypeOf(fileConfig{}), "")
	if len(l.issues) > 0 {
		return false
	}
	// The walk has checked every key and value; the strict decoder is the
	// second line of defence, and its messages get the file name too.
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(fc); err != nil {
		l.yamlError(err)
		return false
	}
	return true
}

// yamlError turns the parser's "yaml: line N: msg" into "FILE:N: msg".
func (l *loader) yamlError(err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			l.yamlMessage("yaml: " + e)
		}
		return
	}
	l.yamlMessage(err.Error())
}

func (l *loader) yamlMessage(s string) {
	if m := yamlLineRE.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[1])
		l.issue(n, m[2])
		return
	}
	l.issue(0, strings.TrimPrefix(s, "yaml: "))
}

var (
	durationType = reflect.TypeOf(duration(0))
	byteSizeType = reflect.TypeOf(byteSize(0))
)

// walk checks node n against type t at key path p, recording the line of
// every key the file sets.
func (l *loader) walk(n *yaml.Node, t reflect.Type, p string) {
	l.nodes++
	if l.nodes > maxConfigNodes {
		if l.nodes == maxConfigNodes+1 {
			l.issue(n.Line, fmt.Sprintf("%s: the document has more than %d nodes (aliases expanded)", orRoot(p), maxConfigNodes))
		}
		return
	}
	for depth := 0; n.Kind == yaml.AliasNode && n.Alias != nil; depth++ {
		if depth > 100 {
			l.issue(n.Line, orRoot(p)+": alias chain too long")
			return
		}
		n = n.Alias
	}
	if n.Tag == "!!null" {
		delete(l.lines, p) // an empty value leaves the key unset: its default applies
		return
	}
	if _, ok := l.lines[p]; !ok && p != "" {
		l.lines[p] = n.Line // a list item; a mapping's keys are recorded with their own line
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType || t == byteSizeType:
		l.scalar(n, t, p)
	case t.Kind() == reflect.Struct:
		if !l.want(n, yaml.MappingNode, p) {
			return
		}
		known := map[string]reflect.Type{}
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			known[tag] = f.Type
			names = append(names, tag)
		}
		l.mapping(n, p, func(key string, kn, vn *yaml.Node) {
			ft, ok := known[key]
			if !ok {
				l.issue(kn.Line, fmt.Sprintf("%s: unknown key%s", join(p, key), suggest(key, names)))
				return
			}
			l.lines[join(p, key)] = kn.Line
			l.walk(vn, ft, join(p, key))
		})
	case t.Kind() == reflect.Map:
		if !l.want(n, yaml.MappingNode, p) {
			return
		}
		l.mapping(n, p, func(key string, kn, vn *yaml.Node) {
			l.lines[join(p, key)] = kn.Line
			l.walk(vn, t.Elem(), join(p, key))
		})
	case t.Kind() == reflect.Slice:
		if !l.want(n, yaml.SequenceNode, p) {
			return
		}
		limit := maxListLen
		if p == "targets" {
			limit = maxTargets
		}
		if len(n.Content) > limit {
			l.issue(n.Line, fmt.Sprintf("%s: %d entries; at most %d are allowed", p, len(n.Content), limit))
			return
		}
		for i, c := range n.Content {
			l.walk(c, t.Elem(), fmt.Sprintf("%s[%d]", p, i))
		}
	default:
		l.scalar(n, t, p)
	}
}

// mapping walks the pairs of a mapping node, refusing non-string and
// duplicate keys.
func (l *loader) mapping(n *yaml.Node, p string, each func(key string, kn, vn *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			l.issue(kn.Line, orRoot(p)+": a key must be a plain string")
			continue
		}
		if first, dup := seen[kn.Value]; dup {
			l.issue(kn.Line, fmt.Sprintf("%s: duplicate key (first set on line %d)", join(p, kn.Value), first))
			continue
		}
		seen[kn.Value] = kn.Line
		each(kn.Value, kn, vn)
	}
}

var kindNames = map[yaml.Kind]string{yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.ScalarNode: "a single value"}

func (l *loader) want(n *yaml.Node, k yaml.Kind, p string) bool {
	if n.Kind == k {
		return true
	}
	got := kindNames[n.Kind]
	if n.Kind == yaml.ScalarNode {
		got = fmt.Sprintf("%q", truncate(n.Value, 40))
	}
	l.issue(n.Line, fmt.Sprintf("%s: want %s, got %s", orRoot(p), kindNames[k], got))
	return false
}

// scalar checks that n decodes into a value of type t.
func (l *loader) scalar(n *yaml.Node, t reflect.Type, p string) {
	if !l.want(n, yaml.ScalarNode, p) {
		return
	}
	v := reflect.New(t).Interface()
	err := n.Decode(v)
	if err == nil {
		return
	}
	var msg string
	switch {
	case t == durationType || t == byteSizeType:
		msg = strings.TrimPrefix(err.Error(), "yaml: ")
		if i := strings.LastIndex(msg, ": "); i >= 0 && strings.HasPrefix(msg, "line ") {
			msg = msg[i+2:]
		}
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		msg = fmt.Sprintf("%q is not an integer", truncate(n.Value, 40))
	case t.Kind() == reflect.Float64:
		msg = fmt.Sprintf("%q is not a number", truncate(n.Value, 40))
	case t.Kind() == reflect.Bool:
		msg = fmt.Sprintf("%q is not true or false", truncate(n.Value, 40))
	default:
		msg = fmt.Sprintf("%q is not a %s", truncate(n.Value, 40), t.Kind())
	}
	l.issue(n.Line, p+": "+msg)
}

func join(p, key string) string {
	if p == "" {
		return key
	}
	return p + "." + key
}

func orRoot(p string) string {
	if p == "" {
		return "the document"
	}
	return p
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// suggest names the known key closest to a misspelt one, or lists them.
func suggest(key string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if d := editDistance(strings.ToLower(key), k); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return " (known keys: " + strings.Join(known, ", ") + ")"
}

// editDistance is the Levenshtein distance, for short keys only.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// applyDefaults fills in every key the file leaves out. It is the one place
// defaults live; a key the file sets, even to a zero, is left for validate
// to judge.
func (l *loader) applyDefaults(c *fileConfig) {
	def := func(path string, apply func()) {
		if !l.set(path) {
			apply()
		}
	}
	def("listen", func() { c.Listen = defaultListen })
	def("vantages", func() { c.Vantages = []vantageConfig{{Name: "local"}} })
	for i := range c.Vantages {
		def(fmt.Sprintf("vantages[%d].kind", i), func() { c.Vantages[i].Kind = probes.KindExternal })
	}
	for i := range c.Agents {
		def(fmt.Sprintf("agents[%d].kind", i), func() { c.Agents[i].Kind = probes.KindExternal })
	}
	def("dns.roots", func() { c.DNS.Roots = slices.Clone(ianaRoots) })
	// dns.resolvers defaults to /etc/resolv.conf, read in validate.
	def("dns.dns_port", func() { c.DNS.DNSPort = 53 })
	def("dns.query_timeout", func() { c.DNS.QueryTimeout = duration(dnscheck.DefaultQueryTimeout) })
	def("dns.resolver_timeout", func() { c.DNS.ResolverTimeout = duration(dnscheck.DefaultResolverTimeout) })
	def("dns.ca_identities", func() { c.DNS.CAIdentities = []string{"letsencrypt.org"} })
	// dns.trust_anchor "" means the IANA root KSKs.
	def("http.http_port", func() { c.HTTP.HTTPPort = 80 })
	def("http.https_port", func() { c.HTTP.HTTPSPort = 443 })
	for i := range c.Targets {
		def(fmt.Sprintf("targets[%d].challenge", i), func() {
			c.Targets[i].Challenge = dnscheck.HTTP01
			if strings.HasPrefix(c.Targets[i].Name, "*.") {
				c.Targets[i].Challenge = dnscheck.DNS01
			}
		})
	}
	if c.Schedule.Intervals == nil {
		c.Schedule.Intervals = map[string]duration{}
	}
	for _, k := range scheduleKinds {
		if _, ok := c.Schedule.Intervals[k]; !ok {
			c.Schedule.Intervals[k] = duration(60 * time.Second)
		}
	}
	def("schedule.jitter", func() { c.Schedule.Jitter = 0.1 })
	def("schedule.concurrency", func() { c.Schedule.Concurrency = 32 })
	def("schedule.timeout", func() { c.Schedule.Timeout = duration(30 * time.Second) })
	def("schedule.max_backoff", func() { c.Schedule.MaxBackoff = duration(10 * time.Minute) })
	def("store.per_key", func() { c.Store.PerKey = 32 })
	def("store.max_bytes", func() { c.Store.MaxBytes = probes.DefaultStoreMaxBytes })
	def("api.max_concurrent", func() { c.API.MaxConcurrent = 16 })
	def("api.max_observations", func() { c.API.MaxObservations = 1000 })
	// Replication rarely takes minutes; a watch that long is a finding.
	def("propagation.timeout", func() { c.Propagation.Timeout = duration(10 * time.Minute) })
	// lego's default propagation timeout: the most common fixed wait.
	def("propagation.issuer_wait", func() { c.Propagation.IssuerWait = duration(60 * time.Second) })
	def("propagation.concurrency", func() { c.Propagation.Concurrency = 8 })
	def("memory_limit", func() {
		// A GOMEMLIMIT in the environment (a Deployment deriving it from
		// the container's limit) is the operator's choice: keep it.
		if os.Getenv("GOMEMLIMIT") == "" {
			c.MemoryLimit = defaultMemoryLimit
		}
	})
	if c.Canary != nil {
		def("canary.interval", func() { c.Canary.Interval = duration(time.Hour) })
		def("canary.names", func() {
			for _, t := range c.Targets {
				if t.Challenge == dnscheck.HTTP01 || t.Challenge == dnscheck.DNS01 && c.Canary.DNSProvider != "" {
					c.Canary.Names = append(c.Canary.Names, t.Name)
				}
			}
		})
	}
}

var vantageNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// validate checks every value and builds the daemon's configuration.
func (l *loader) validate(c *fileConfig) *daemonConfig {
	cfg := &daemonConfig{Listen: c.Listen}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		l.errf("listen", "%q is not HOST:PORT (such as :9464 or 127.0.0.1:9464)", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		l.errf("listen", "%q: port %q is not 0-65535", c.Listen, port)
	}
	cfg.Vantages = l.vantages(c.Vantages)
	cfg.Checker = l.checker(&c.DNS)
	cfg.HTTPPort = l.port("http.http_port", c.HTTP.HTTPPort)
	cfg.HTTPSPort = l.port("http.https_port", c.HTTP.HTTPSPort)
	cfg.Targets = l.targets(c.Targets)
	cfg.Schedule = l.schedule(&c.Schedule)
	cfg.Agents, cfg.Vantages = l.agents(c.Agents, cfg.Vantages, cfg.Schedule.Timeout)

	if c.Store.PerKey < 1 || c.Store.PerKey > 10_000 {
		l.errf("store.per_key", "%d: want 1-10000 observations per (name, vantage, kind)", c.Store.PerKey)
	}
	if c.Store.MaxBytes < 1<<20 {
		l.errf("store.max_bytes", "%d bytes: want at least 1MiB", c.Store.MaxBytes)
	}
	cfg.Store = storeSettings{PerKey: c.Store.PerKey, MaxBytes: int64(c.Store.MaxBytes)}
	if c.API.MaxConcurrent < 1 || c.API.MaxConcurrent > 10_000 {
		l.errf("api.max_concurrent", "%d: want 1-10000", c.API.MaxConcurrent)
	}
	if c.API.MaxObservations < 1 || c.API.MaxObservations > 100_000 {
		l.errf("api.max_observations", "%d: want 1-100000", c.API.MaxObservations)
	}
	cfg.API = apiSettings{MaxConcurrent: c.API.MaxConcurrent, MaxObservations: c.API.MaxObservations}
	cfg.Propagation = propagationSettings{Timeout: time.Duration(c.Propagation.Timeout),
		IssuerWait: time.Duration(c.Propagation.IssuerWait), Concurrency: c.Propagation.Concurrency}
	if cfg.Propagation.Timeout < time.Second || cfg.Propagation.Timeout > 24*time.Hour {
		l.errf("propagation.timeout", "%s: want 1s to 24h", cfg.Propagation.Timeout)
	}
	if cfg.Propagation.IssuerWait < 0 {
		l.errf("propagation.issuer_wait", "%s: want 0 (no propagation_slow finding) or a positive duration", cfg.Propagation.IssuerWait)
	}
	if cfg.Propagation.Concurrency < 1 || cfg.Propagation.Concurrency > 1000 {
		l.errf("propagation.concurrency", "%d: want 1-1000 watches at once", cfg.Propagation.Concurrency)
	}
	cfg.MemoryLimit = int64(c.MemoryLimit)
	if cfg.MemoryLimit != 0 && cfg.MemoryLimit < minMemoryLimit {
		l.errf("memory_limit", "%d bytes: want 0 (the Go runtime's own) or at least 32MiB", cfg.MemoryLimit)
	}
	if c.Canary != nil {
		cfg.Canary = l.canary(c.Canary, cfg.Targets)
	}
	return cfg
}

func (l *loader) port(path string, v int) int {
	if v < 1 || v > 65535 {
		l.errf(path, "%d: want 1-65535", v)
	}
	return v
}

func (l *loader) vantages(vs []vantageConfig) []probes.Vantage {
	if len(vs) == 0 {
		l.errf("vantages", "the list is empty: leave the key out for one vantage \"local\"")
		return nil
	}
	if len(vs) > maxVantages {
		l.errf("vantages", "%d vantages; at most %d are allowed", len(vs), maxVantages)
		return nil
	}
	out := make([]probes.Vantage, 0, len(vs))
	first := map[string]int{}
	for i, vc := range vs {
		p := fmt.Sprintf("vantages[%d]", i)
		v := probes.Vantage{Name: vc.Name, Region: vc.Region, Kind: vc.Kind}
		switch j, dup := first[vc.Name]; {
		case vc.Name == "":
			l.errf(p+".name", "missing: every vantage needs a name")
		case !vantageNameRE.MatchString(vc.Name):
			l.errf(p+".name", "%q: want letters, digits, '.', '_' or '-' (at most 63)", truncate(vc.Name, 70))
		case dup:
			l.errf(p+".name", "%q is already the name of vantages[%d]", vc.Name, j)
		default:
			first[vc.Name] = i
		}
		if vc.Source != "" {
			a, err := netip.ParseAddr(vc.Source)
			if err != nil {
				l.errf(p+".source", "%q is not an IP address", truncate(vc.Source, 60))
			}
			v.SourceAddr = a
		}
		if vc.Resolver != "" {
			ap, err := parseAddrPort(vc.Resolver, 53)
			if err != nil {
				l.errf(p+".resolver", "%q: %v", truncate(vc.Resolver, 60), err)
			}
			v.Resolvers = []netip.AddrPort{ap}
		}
		if vc.RIR != "" {
			v.RIR = strings.ToUpper(vc.RIR)
			if !slices.Contains(rirs, v.RIR) {
				l.errf(p+".rir", "%q is not one of %s", truncate(vc.RIR, 40), strings.Join(rirs, ", "))
			}
		}
		if vc.Kind != probes.KindExternal && vc.Kind != probes.KindCluster {
			l.errf(p+".kind", "%q is not external or cluster", truncate(vc.Kind, 40))
		}
		out = append(out, v)
	}
	return out
}

// agents validates the agents section and returns a client per agent and
// the vantages with the agents' appended: an agent is a vantage like a
// local one, its probes run remotely.
func (l *loader) agents(as []agentConfig, local []probes.Vantage, timeout time.Duration) (map[string]*probes.AgentClient, []probes.Vantage) {
	if len(as) == 0 {
		return nil, local
	}
	if len(as)+len(local) > maxVantages {
		l.errf("agents", "%d vantages and %d agents; at most %d in all are allowed", len(local), len(as), maxVantages)
		return nil, local
	}
	taken := map[string]string{}
	for i, v := range local {
		taken[v.Name] = fmt.Sprintf("vantages[%d]", i)
	}
	clients := map[string]*probes.AgentClient{}
	out := slices.Clone(local)
	for i, ac := range as {
		p := fmt.Sprintf("agents[%d]", i)
		v := probes.Vantage{Name: ac.Name, Region: ac.Region, Kind: ac.Kind}
		switch other, dup := taken[ac.Name]; {
		case ac.Name == "":
			l.errf(p+".name", "missing: every agent needs a name")
		case !vantageNameRE.MatchString(ac.Name):
			l.errf(p+".name", "%q: want letters, digits, '.', '_' or '-' (at most 63)", truncate(ac.Name, 70))
		case dup:
			l.errf(p+".name", "%q is already the name of %s", ac.Name, other)
		default:
			taken[ac.Name] = p
		}
		if ac.RIR != "" {
			v.RIR = strings.ToUpper(ac.RIR)
			if !slices.Contains(rirs, v.RIR) {
				l.errf(p+".rir", "%q is not one of %s", truncate(ac.RIR, 40), strings.Join(rirs, ", "))
			}
		}
		if ac.Kind != probes.KindExternal && ac.Kind != probes.KindCluster {
			l.errf(p+".kind", "%q is not external or cluster", truncate(ac.Kind, 40))
		}
		missing := false
		for _, f := range []struct{ key, v string }{{"url", ac.URL}, {"client_cert", ac.ClientCert}, {"client_key", ac.ClientKey}, {"ca_file", ac.CAFile}} {
			if f.v == "" {
				l.errf(p+"."+f.key, "missing: an agent is reached over mutual TLS at an https URL, with a client certificate and key, trusting only ca_file")
				missing = true
			}
		}
		if !missing {
			cert, key := l.resolvePath(ac.ClientCert), l.resolvePath(ac.ClientKey)
			if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
				l.errf(p+".client_cert", "%v", err)
			} else if tlsCfg, err := probes.AgentClientTLS(cert, key, l.resolvePath(ac.CAFile)); err != nil {
				// The key pair loaded: what is left wrong is the CA file.
				l.errf(p+".ca_file", "%v", err)
			} else if c, err := probes.NewAgentClient(ac.URL, tlsCfg, timeout+5*time.Second); err != nil {
				l.errf(p+".url", "%q is not https://HOST:PORT", truncate(ac.URL, 80))
			} else {
				clients[ac.Name] = c
			}
		}
		out = append(out, v)
	}
	return clients, out
}

func (l *loader) checker(d *dnsConfig) dnscheck.Checker {
	c := dnscheck.Checker{CAIdentities: d.CAIdentities, AccountURI: d.AccountURI,
		QueryTimeout: time.Duration(d.QueryTimeout), ResolverTimeout: time.Duration(d.ResolverTimeout)}
	if d.DNSPort < 1 || d.DNSPort > 65535 {
		l.errf("dns.dns_port", "%d: want 1-65535", d.DNSPort)
	} else {
		c.Port = uint16(d.DNSPort)
	}
	if len(d.Roots) == 0 {
		l.errf("dns.roots", "the list is empty: leave the key out for the IANA root servers")
	}
	for i, s := range d.Roots {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			l.errf(fmt.Sprintf("dns.roots[%d]", i), "%q is not an IP address", truncate(s, 60))
		}
		c.Roots = append(c.Roots, a)
	}
	resolvers, rpath := d.Resolvers, "dns.resolvers"
	if !l.set(rpath) {
		rc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			l.errf(rpath, "not set, and /etc/resolv.conf is unreadable: %v", err)
		} else {
			resolvers = rc.Servers
		}
	} else if len(resolvers) == 0 {
		l.errf(rpath, "the list is empty: leave the key out for /etc/resolv.conf's servers")
	}
	for i, s := range resolvers {
		ap, err := parseAddrPort(s, 53)
		if err != nil {
			l.errf(fmt.Sprintf("%s[%d]", rpath, i), "%q: %v", truncate(s, 60), err)
		}
		c.Resolvers = append(c.Resolvers, ap)
	}
	for i, s := range d.AllowAddresses {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				l.errf(fmt.Sprintf("dns.allow_addresses[%d]", i), "%q is not a CIDR prefix such as 127.0.0.0/8", truncate(s, 60))
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.Allow = append(c.Allow, p.Masked())
	}
	if c.QueryTimeout <= 0 {
		l.errf("dns.query_timeout", "%s: want a positive duration", c.QueryTimeout)
	}
	if c.ResolverTimeout <= 0 {
		l.errf("dns.resolver_timeout", "%s: want a positive duration", c.ResolverTimeout)
	}
	if len(d.CAIdentities) == 0 {
		l.errf("dns.ca_identities", "the list is empty: leave the key out for letsencrypt.org")
	}
	for i, id := range d.CAIdentities {
		if id == "" || strings.ContainsAny(id, " ;\t") {
			l.errf(fmt.Sprintf("dns.ca_identities[%d]", i), "%q is not a CAA issuer domain such as letsencrypt.org", truncate(id, 60))
		}
	}
	if d.TrustAnchor == "" {
		c.TrustAnchors = dnscheck.DefaultTrustAnchors()
	} else {
		path := l.resolvePath(d.TrustAnchor)
		f, err := os.Open(path)
		if err != nil {
			l.errf("dns.trust_anchor", "%v", err)
		} else {
			c.TrustAnchors, err = dnscheck.ParseTrustAnchors(io.LimitReader(f, 1<<20), path)
			f.Close()
			if err != nil {
				l.errf("dns.trust_anchor", "%v", err)
			}
		}
	}
	return c
}

// resolvePath anchors a relative path at the configuration file's directory.
func (l *loader) resolvePath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.dir, p)
}

func (l *loader) targets(ts []targetConfig) []probes.Target {
	if len(ts) == 0 {
		l.errf("targets", "at least one target is required")
		return nil
	}
	out := make([]probes.Target, 0, len(ts))
	first := make(map[string]int, len(ts))
	for i, tc := range ts {
		p := fmt.Sprintf("targets[%d]", i)
		t := probes.Target{Name: tc.Name, Challenge: tc.Challenge, Token: tc.Token, KeyAuth: tc.KeyAuth, ExpectTXT: tc.ExpectTXT}
		if tc.Name == "" {
			l.errf(p+".name", "missing: every target needs a name")
		} else if n, err := dnscheck.NormalizeName(tc.Name); err != nil {
			var ne *dnscheck.NameError
			reason := err.Error()
			if errors.As(err, &ne) {
				reason = ne.Reason
				if ne.Hint != "" {
					reason += " (" + ne.Hint + ")"
				}
			}
			l.errf(p+".name", "%q: %s", truncate(tc.Name, 80), reason)
		} else {
			t.Name = n.ASCII
			if j, dup := first[t.Name]; dup {
				l.errf(p+".name", "%q is already the name of targets[%d]", tc.Name, j)
			}
			first[t.Name] = i
		}
		switch tc.Challenge {
		case dnscheck.HTTP01, dnscheck.TLSALPN01:
			if strings.HasPrefix(tc.Name, "*.") {
				l.errf(p+".challenge", "%s: a wildcard can only be validated with dns-01", tc.Challenge)
			}
		case dnscheck.DNS01:
		default:
			l.errf(p+".challenge", "%q is not http-01, dns-01 or tls-alpn-01", truncate(tc.Challenge, 40))
		}
		if tc.ExpectTXT != "" && tc.Challenge != dnscheck.DNS01 {
			l.errf(p+".expect_txt", "only a dns-01 target has a TXT value (this one is %s)", tc.Challenge)
		}
		if tc.Token != "" && tc.Challenge != dnscheck.HTTP01 {
			l.errf(p+".token", "only an http-01 target fetches a token (this one is %s)", tc.Challenge)
		} else if tc.Challenge == dnscheck.HTTP01 && (tc.Token == "") != (tc.KeyAuth == "") {
			l.errf(p, "token and key_auth go together")
		}
		if tc.KeyAuth != "" && tc.Challenge == dnscheck.DNS01 {
			l.errf(p+".key_auth", "a dns-01 target has expect_txt, not key_auth")
		}
		out = append(out, t)
	}
	return out
}

func (l *loader) schedule(s *scheduleConfig) scheduleSettings {
	out := scheduleSettings{Intervals: map[string]time.Duration{}, Jitter: s.Jitter, Concurrency: s.Concurrency,
		Timeout: time.Duration(s.Timeout), MaxBackoff: time.Duration(s.MaxBackoff)}
	keys := make([]string, 0, len(s.Intervals))
	for k := range s.Intervals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := "schedule.intervals." + k
		d := time.Duration(s.Intervals[k])
		if !slices.Contains(scheduleKinds, k) {
			l.errf(p, "unknown probe kind (want %s)", strings.Join(scheduleKinds, ", "))
			continue
		}
		if d < minInterval {
			l.errf(p, "%s: want at least %s", d, minInterval)
		}
		out.Intervals[k] = d
	}
	if s.Jitter < 0 || s.Jitter >= 1 || math.IsNaN(s.Jitter) {
		l.errf("schedule.jitter", "%v: want a fraction of the interval, 0 or more and below 1", s.Jitter)
	}
	if s.Concurrency < 1 || s.Concurrency > 10_000 {
		l.errf("schedule.concurrency", "%d: want 1-10000 runs at once", s.Concurrency)
	}
	if out.Timeout <= 0 {
		l.errf("schedule.timeout", "%s: want a positive duration", out.Timeout)
	}
	if out.MaxBackoff <= 0 {
		l.errf("schedule.max_backoff", "%s: want a positive duration", out.MaxBackoff)
	}
	return out
}

func (l *loader) canary(c *canaryConfig, targets []probes.Target) *canarySettings {
	out := &canarySettings{Interval: time.Duration(c.Interval), Names: c.Names}
	u, err := url.Parse(c.Directory)
	switch {
	case c.Directory == "":
		l.errf("canary.directory", "missing: the canary needs an ACME directory URL (a staging one)")
	case err != nil || u.Scheme != "https" || u.Host == "":
		l.errf("canary.directory", "%q is not an https URL of an ACME directory", truncate(c.Directory, 80))
	case canary.IsProduction(c.Directory) && !c.AllowProduction:
		l.errf("canary.directory", "%s is Let's Encrypt production: use https://acme-staging-v02.api.letsencrypt.org/directory, or set canary.allow_production: true", c.Directory)
	}
	ca := l.resolvePath(c.CACert)
	if ca != "" {
		if _, err := os.Stat(ca); err != nil {
			l.errf("canary.ca_cert", "%v", err)
		}
	}
	key := l.resolvePath(c.AccountKey)
	if key == "" && err == nil && u != nil && u.Host != "" {
		// One account per directory, kept across restarts: a new account per
		// order would spend the CA's account rate limit.
		if dir, derr := os.UserCacheDir(); derr == nil {
			key = filepath.Join(dir, "acmediag", "account-"+strings.ReplaceAll(u.Host, ":", "_")+".key")
		}
	}
	if out.Interval < time.Second {
		l.errf("canary.interval", "%s: want at least 1s", out.Interval)
	}
	byName := map[string]probes.Target{}
	for _, t := range targets {
		byName[t.Name] = t
	}
	if c.DNSProvider != "" {
		// Built now, from the environment as lego reads it, so that a
		// missing credential is a configuration error, not a failed order
		// an hour later.
		p, perr := canary.DNSProvider(c.DNSProvider)
		if perr != nil {
			l.errf("canary.dns_provider", "%s", strings.TrimPrefix(perr.Error(), "canary: "))
		}
		out.DNSProvider = p
	}
	for i, n := range c.Names {
		t, ok := byName[strings.ToLower(n)]
		switch {
		case !ok:
			l.errf(fmt.Sprintf("canary.names[%d]", i), "%q is not one of the targets", truncate(n, 80))
		case t.Challenge == dnscheck.DNS01 && c.DNSProvider == "":
			l.errf(fmt.Sprintf("canary.names[%d]", i), "%q is a dns-01 target: set canary.dns_provider to the lego DNS provider that publishes its TXT records (one of %s)", n, strings.Join(canary.DNSProviders(), ", "))
		case t.Challenge != dnscheck.HTTP01 && t.Challenge != dnscheck.DNS01:
			l.errf(fmt.Sprintf("canary.names[%d]", i), "%q is a %s target; canary orders are placed for http-01 targets, and dns-01 targets with canary.dns_provider", n, t.Challenge)
		}
	}
	out.Config = canary.Config{DirectoryURL: c.Directory, AllowProduction: c.AllowProduction, CACertFile: ca, AccountKeyFile: key}
	return out
}
