package probes

import (
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/acmediag/acmediag/reports"
)

// Settings is everything acmediag is told: by the daemon's YAML file or by
// diagnose's and the agent's flags, one struct for both. Field tags are the
// YAML keys (a public contract: never rename one); the flags name the same
// settings (cmd maps each key to its flag). DefaultSettings is the one
// table of defaults; Build validates every value and makes the Plan.
type Settings struct {
	Listen      string              `yaml:"listen"`
	Vantages    []VantageSettings   `yaml:"vantages"`
	Agents      []AgentSettings     `yaml:"agents"`
	DNS         DNSSettings         `yaml:"dns"`
	HTTP        HTTPSettings        `yaml:"http"`
	Targets     []Target            `yaml:"targets"`
	Schedule    ScheduleSettings    `yaml:"schedule"`
	Store       StoreSettings       `yaml:"store"`
	API         APISettings         `yaml:"api"`
	Canary      *CanarySettings     `yaml:"canary"`
	Propagation PropagationSettings `yaml:"propagation"`
	TLS         TLSSettings         `yaml:"tls"`
	Kube        KubeSettings        `yaml:"kube"`
	Cluster     ClusterSettings     `yaml:"cluster"`
	// MemoryLimit is the Go runtime's soft memory limit (the daemon's):
	// with store.max_bytes it bounds the RSS; 0 leaves the runtime's own.
	MemoryLimit ByteSize `yaml:"memory_limit"`
}

// VantageSettings is a local vantage: probes leave from Source and ask
// Resolver for names.
type VantageSettings struct {
	Name     string `yaml:"name"`
	Source   string `yaml:"source"`   // local source address of every packet
	Resolver string `yaml:"resolver"` // its own recursive resolver, ADDR[:PORT]
	RIR      string `yaml:"rir"`
	Region   string `yaml:"region"`
	Kind     string `yaml:"kind"` // external (default) or cluster
}

// AgentSettings is a remote vantage: an `acmediag agent` reached over
// mutual TLS, whose probes run where it is.
type AgentSettings struct {
	Name       string `yaml:"name"`
	URL        string `yaml:"url"` // https://HOST:PORT
	Region     string `yaml:"region"`
	RIR        string `yaml:"rir"`
	Kind       string `yaml:"kind"`        // external (default) or cluster
	ClientCert string `yaml:"client_cert"` // presented to the agent (PEM)
	ClientKey  string `yaml:"client_key"`
	CAFile     string `yaml:"ca_file"` // the agents' CA, pinned: nothing else is trusted
}

// DNSSettings configure every DNS check.
type DNSSettings struct {
	Roots []string `yaml:"roots"`
	// Resolvers stand for the CA's view (the first) and the public one;
	// nil (unset): /etc/resolv.conf's; set but empty: an error.
	Resolvers       []string `yaml:"resolvers"`
	TrustAnchor     string   `yaml:"trust_anchor"` // DS/DNSKEY file; "" the IANA root KSKs
	DNSPort         int      `yaml:"dns_port"`
	AllowAddresses  []string `yaml:"allow_addresses"`
	QueryTimeout    Duration `yaml:"query_timeout"`
	ResolverTimeout Duration `yaml:"resolver_timeout"`
	CAIdentities    []string `yaml:"ca_identities"`
	AccountURI      string   `yaml:"account_uri"`
}

// HTTPSettings are the ports HTTP-01 and TLS-ALPN-01 use (80 and 443 but
// in a test universe): they take the place of 80/443 everywhere, redirect
// rules included.
type HTTPSettings struct {
	HTTPPort  int `yaml:"http_port"`
	HTTPSPort int `yaml:"https_port"`
}

// ScheduleSettings pace the probes.
type ScheduleSettings struct {
	Intervals   map[string]Duration `yaml:"intervals"` // per probe kind
	Jitter      float64             `yaml:"jitter"`    // fraction of the interval, 0 ≤ j < 1
	Concurrency int                 `yaml:"concurrency"`
	Timeout     Duration            `yaml:"timeout"` // per run
	MaxBackoff  Duration            `yaml:"max_backoff"`
}

// StoreSettings bound the history the daemon keeps (every key's latest
// observation is kept besides).
type StoreSettings struct {
	PerKey   int      `yaml:"per_key"`
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// APISettings bound the daemon's HTTP API.
type APISettings struct {
	MaxConcurrent   int             `yaml:"max_concurrent"`   // API and page requests served at once; more get 429
	MaxObservations int             `yaml:"max_observations"` // the most observations one response carries
	Reprobe         ReprobeSettings `yaml:"reprobe"`
}

// ReprobeSettings guard POST /api/v1/reprobe, the one API request that
// makes the daemon send traffic: off, behind a bearer token, and at most
// Rate re-probes a second across every name (Burst at once) besides the
// gap per name.
type ReprobeSettings struct {
	Enabled bool `yaml:"enabled"`
	// TokenFile holds the bearer token a re-probe must carry
	// (Authorization: Bearer TOKEN); "" none is asked.
	TokenFile string  `yaml:"token_file"`
	Rate      float64 `yaml:"rate"`  // re-probes a second, across names
	Burst     int     `yaml:"burst"` // re-probes at once
}

// CanarySettings is the canary issuance: orders at a (staging) ACME
// directory for Names, every Interval.
type CanarySettings struct {
	Directory       string   `yaml:"directory"`
	CACert          string   `yaml:"ca_cert"`
	AccountKey      string   `yaml:"account_key"` // "" one per directory in the user cache dir
	AllowProduction bool     `yaml:"allow_production"`
	Interval        Duration `yaml:"interval"`
	// Names default to every http-01 target, and the dns-01 ones when
	// DNSProvider is set.
	Names []string `yaml:"names"`
	// DNSProvider names the lego DNS provider that publishes dns-01 TXT
	// records (credentials from the environment, as lego reads them).
	DNSProvider string `yaml:"dns_provider"`
	// ServeToken (diagnose only) serves the HTTP-01 token on this address
	// and completes the order.
	ServeToken string `yaml:"-"`
}

// TLSSettings turn on the tls kind (the certificate each address serves)
// and the renewal rule that reads it.
type TLSSettings struct {
	Enabled bool `yaml:"enabled"`
	// Roots is a PEM file of the roots a served chain must lead to; ""
	// the system pool.
	Roots string `yaml:"roots"`
	// ARIDirectory is the ACME directory of the CA that issues the served
	// certificates, asked for their renewal window (RFC 9773); "" not
	// asked. ARICACert is an extra CA bundle for its TLS (a test CA).
	ARIDirectory string `yaml:"ari_directory"`
	ARICACert    string `yaml:"ari_ca_cert"`
	// RenewalHorizon is how far ahead of the window a failing challenge
	// path is renewal.at_risk; 0: 7 days, or a third of the lifetime when
	// that is shorter.
	RenewalHorizon Duration `yaml:"renewal_horizon"`
}

// KubeSettings turn on the cluster watch (probes/renewals): cert-manager's
// Certificates become targets, their failed renewals are explained with
// Events, their windows judged by the renewal rule.
type KubeSettings struct {
	Enabled bool `yaml:"enabled"`
	// Kubeconfig is the file to reach the API server with; "" the pod's
	// own ServiceAccount (in-cluster).
	Kubeconfig string `yaml:"kubeconfig"`
	// Namespaces are watched; none: every namespace (one watch per
	// resource type either way, per namespace when listed).
	Namespaces []string `yaml:"namespaces"`
	// Selector is a label selector the Certificates must match (their
	// requests, orders and challenges are followed whatever their labels).
	Selector string   `yaml:"selector"`
	Resync   Duration `yaml:"resync"`
	// Interval re-reads what time alone changes: a Challenge that has
	// become stuck, a renewalTime that has entered the horizon.
	Interval Duration `yaml:"interval"`
	// StuckAfter: a presented Challenge not valid after this long is
	// stuck (cert-manager's self-check retries every 10 s).
	StuckAfter Duration `yaml:"stuck_after"`
	// Retry: how soon to look again when the CRDs are missing or a call
	// is forbidden.
	Retry Duration `yaml:"retry"`
	// Events: write a Warning Event (RenewalDiagnosis) on the Certificate
	// of each failed attempt, and on a stuck Challenge.
	Events bool `yaml:"events"`
}

// PropagationSettings pace the watch of each dns-01 value reaching every
// authoritative server address.
type PropagationSettings struct {
	Timeout     Duration `yaml:"timeout"`     // a value not everywhere by then is a finding
	IssuerWait  Duration `yaml:"issuer_wait"` // slower than this: dns01.propagation_slow (0: never)
	Concurrency int      `yaml:"concurrency"` // watches polling at once
}

// ClusterSettings are cluster mode: the daemon's pods on Kubernetes elect a
// leader with a coordination.k8s.io Lease; every pod probes as a vantage,
// and only the leader runs the leader-only work (the canary, the
// cert-manager watch) and merges its peers' observations, found through
// the EndpointSlices of a headless Service.
type ClusterSettings struct {
	Enabled bool `yaml:"enabled"`
	// Namespace holds the Lease and the Service; "" the pod's own
	// (POD_NAMESPACE, from the downward API).
	Namespace string `yaml:"namespace"`
	LeaseName string `yaml:"lease_name"`
	// Identity is this pod's name in the Lease; "" POD_NAME, else the
	// host name.
	Identity      string   `yaml:"identity"`
	LeaseDuration Duration `yaml:"lease_duration"`
	RenewDeadline Duration `yaml:"renew_deadline"`
	RetryPeriod   Duration `yaml:"retry_period"`
	// Service is the headless Service whose EndpointSlices list the
	// peers; "" none are asked.
	Service      string   `yaml:"service"`
	PeerInterval Duration `yaml:"peer_interval"` // how often the leader asks each peer
	PeerTimeout  Duration `yaml:"peer_timeout"`  // one peer's answer, whole
}

// ianaRoots are the root servers' addresses (IANA root hints, named.root).
var ianaRoots = []string{
	"198.41.0.4", "2001:503:ba3e::2:30", // a
	"170.247.170.2", "2801:1b8:10::b", // b
	"192.33.4.12", "2001:500:2::c", // c
	"199.7.91.13", "2001:500:2d::d", // d
	"192.203.230.10", "2001:500:a8::e", // e
	"192.5.5.241", "2001:500:2f::f", // f
	"192.112.36.4", "2001:500:12::d0d", // g
	"198.97.190.53", "2001:500:1::53", // h
	"192.36.148.17", "2001:7fe::53", // i
	"192.58.128.30", "2001:503:c27::2:30", // j
	"193.0.14.129", "2001:7fd::1", // k
	"199.7.83.42", "2001:500:9f::42", // l
	"202.12.27.33", "2001:dc3::35", // m
}

// Defaults that other parts name.
const (
	DefaultListen      = ":9464"
	DefaultInterval    = 60 * time.Second
	DefaultJitter      = 0.1
	DefaultConcurrency = 32
	DefaultTimeout     = 30 * time.Second
	DefaultMaxBackoff  = 10 * time.Minute
	// DefaultMemoryLimit is the Go runtime's soft memory limit when the
	// settings give none: the store, the run heap of 100,000 targets and
	// the transient memory of reading their YAML fit under it with room
	// for the GC to work without thrashing.
	DefaultMemoryLimit = 192 << 20
	// DefaultCanaryInterval: an order an hour keeps well inside the
	// staging rate limits.
	DefaultCanaryInterval = time.Hour
	// DefaultReprobeRate and DefaultReprobeBurst bound re-probes across
	// names: a re-probe moves a name's runs to now, so a loop over every
	// name could keep schedule.concurrency busy with them; one name a
	// second (a handful of runs) leaves the schedule's capacity to the
	// schedule, and ten at once lets a person click through a page.
	DefaultReprobeRate  = 1.0
	DefaultReprobeBurst = 10
)

// DefaultSettings is the one table of defaults: every key a file or the
// flags leave out has this value. (Elements of lists take theirs from
// DefaultVantage and DefaultAgent; a target's challenge defaults to
// reports.DefaultChallenge of its name; dns.resolvers defaults to
// /etc/resolv.conf's servers, read when the plan is built.)
func DefaultSettings() Settings {
	s := Settings{
		Listen:   DefaultListen,
		Vantages: []VantageSettings{{Name: "local", Kind: string(reports.External)}},
		DNS: DNSSettings{
			Roots:           append([]string(nil), ianaRoots...),
			DNSPort:         53,
			QueryTimeout:    Duration(2 * time.Second),
			ResolverTimeout: Duration(10 * time.Second),
			CAIdentities:    []string{"letsencrypt.org"},
		},
		HTTP: HTTPSettings{HTTPPort: 80, HTTPSPort: 443},
		Schedule: ScheduleSettings{
			Intervals:   map[string]Duration{},
			Jitter:      DefaultJitter,
			Concurrency: DefaultConcurrency,
			Timeout:     Duration(DefaultTimeout),
			MaxBackoff:  Duration(DefaultMaxBackoff),
		},
		Store: StoreSettings{PerKey: DefaultStorePerKey, MaxBytes: DefaultStoreMaxBytes},
		API: APISettings{MaxConcurrent: 16, MaxObservations: 1000,
			Reprobe: ReprobeSettings{Enabled: true, Rate: DefaultReprobeRate, Burst: DefaultReprobeBurst}},
		Kube: KubeSettings{Resync: Duration(10 * time.Minute), Interval: Duration(30 * time.Second),
			StuckAfter: Duration(5 * time.Minute), Retry: Duration(30 * time.Second), Events: true},
		Propagation: PropagationSettings{
			// Replication rarely takes minutes; a watch that long is a finding.
			Timeout: Duration(10 * time.Minute),
			// lego's default propagation timeout: the most common fixed wait.
			IssuerWait:  Duration(60 * time.Second),
			Concurrency: 8,
		},
		// client-go's recommended leader-election timing: a dead leader
		// is replaced within about 15s + 2s.
		Cluster: ClusterSettings{LeaseName: "acmediag", LeaseDuration: Duration(15 * time.Second),
			RenewDeadline: Duration(10 * time.Second), RetryPeriod: Duration(2 * time.Second), Service: "acmediag",
			PeerInterval: Duration(30 * time.Second), PeerTimeout: Duration(5 * time.Second)},
	}
	// A GOMEMLIMIT in the environment (a Deployment deriving it from the
	// container's limit) is the operator's choice: keep it.
	if os.Getenv("GOMEMLIMIT") == "" {
		s.MemoryLimit = DefaultMemoryLimit
	}
	return s
}

// DefaultVantage is what a vantages entry has before its keys are read.
func DefaultVantage() VantageSettings { return VantageSettings{Kind: string(reports.External)} }

// DefaultAgent is what an agents entry has before its keys are read.
func DefaultAgent() AgentSettings { return AgentSettings{Kind: string(reports.External)} }

// DefaultCanary is what the canary section has before its keys are read.
func DefaultCanary() CanarySettings { return CanarySettings{Interval: Duration(DefaultCanaryInterval)} }

// Duration is a time.Duration written as Go writes it: 30s, 5m, 1h30m.
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 30s or 5m", truncate(string(b), 40))
	}
	*d = Duration(v)
	return nil
}

// Set reads a flag's value (pflag.Value).
func (d *Duration) Set(s string) error { return d.UnmarshalText([]byte(s)) }

// Type names the flag's value (pflag.Value).
func (d *Duration) Type() string { return "duration" }

func (d Duration) String() string { return time.Duration(d).String() }

// ByteSize is a number of bytes, plain or with a unit: 67108864, 64MiB, 512KiB.
type ByteSize int64

var byteUnits = map[string]int64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1e3, "MB": 1e6, "GB": 1e9}

var byteSizeRE = regexp.MustCompile(`^([0-9]+)\s*([KMG]i?B|B)?$`)

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *ByteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	m := byteSizeRE.FindStringSubmatch(s)
	if m == nil {
		return fmt.Errorf("%q is not a size such as 67108864, 512KiB or 64MiB", truncate(s, 40))
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	unit := byteUnits[m[2]]
	if err != nil || v > math.MaxInt64/unit {
		return fmt.Errorf("%q is too large: at most 8EiB", truncate(s, 40))
	}
	*b = ByteSize(v * unit)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
