package renewals

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cminformers "github.com/cert-manager/cert-manager/pkg/client/informers/externalversions"
	acmelisters "github.com/cert-manager/cert-manager/pkg/client/listers/acme/v1"
	cmlisters "github.com/cert-manager/cert-manager/pkg/client/listers/certmanager/v1"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/acmediag/acmediag/reports"
)

// The resources watched, as metric labels and queue keys.
const (
	resCertificate   = "certificates"
	resRequest       = "certificaterequests"
	resOrder         = "orders"
	resChallenge     = "challenges"
	resIssuer        = "issuers"
	resClusterIssuer = "clusterissuers"
)

var resources = []string{resCertificate, resRequest, resOrder, resChallenge, resIssuer, resClusterIssuer}

// key is one object to look at again.
type key struct{ res, namespace, name string }

// Watcher watches cert-manager and explains its renewals. Run it once at
// a time (the leader's work); it may be run again after it returned, and
// remembers the attempts it reported.
type Watcher struct {
	cfg     Config
	opts    Options
	log     *zap.Logger
	clock   Clock
	metrics *metrics

	mu        sync.Mutex
	global    []reports.Finding // the watch's own: CRDs missing, calls forbidden
	targets   []Target
	published bool
	synced    *listerSet // the caches while a run holds them synced, for Timeline

	// The worker's state (one goroutine).
	lis      *listerSet
	queue    workqueue.TypedRateLimitingInterface[key]
	reported map[string]bool                         // attempt keys whose Event exists
	failures map[string]failure                      // by Certificate: its latest failed attempt
	byName   map[string]map[string][]reports.Finding // name → Certificate → findings
	lastRec  map[string]string                       // name → what was recorded last (unchanged: not again)
	dirty    bool                                    // targets to publish again
}

// New makes a watcher; Run starts it.
func New(cfg Config, opts Options) (*Watcher, error) {
	if opts.CertManager == nil || opts.Kube == nil {
		return nil, errors.New("renewals: the cert-manager and Kubernetes clients are required")
	}
	if _, err := labels.Parse(cfg.Selector); err != nil {
		return nil, fmt.Errorf("renewals: selector %q: %w", cfg.Selector, err)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Sightings == nil {
		opts.Sightings = func(string, time.Time) []reports.Observation { return nil }
	}
	if opts.PathFailing == nil {
		opts.PathFailing = func(string) (bool, []reports.Code) { return false, nil }
	}
	w := &Watcher{cfg: cfg.withDefaults(), opts: opts, log: opts.Logger.Named("renewals"), clock: opts.Clock,
		reported: map[string]bool{}, failures: map[string]failure{}, byName: map[string]map[string][]reports.Finding{}, lastRec: map[string]string{}}
	w.metrics = newMetrics(opts.Registerer)
	return w, nil
}

// Findings are the watch's own findings now: certmanager.crds_missing or
// certmanager.forbidden while it cannot watch.
func (w *Watcher) Findings() []reports.Finding {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.global)
}

// Targets are the cluster's names as last published.
func (w *Watcher) Targets() []Target {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.targets)
}

func (w *Watcher) setGlobal(fs []reports.Finding) {
	w.mu.Lock()
	w.global = fs
	w.mu.Unlock()
}

// Run watches until ctx ends, then returns nil; it returns an error only
// when it cannot start at all. Until the CRDs are installed and every
// call is allowed it says why (Findings, the log) and looks again every
// Retry.
func (w *Watcher) Run(ctx context.Context) error {
	for {
		fs, blocking, err := w.preflight(ctx)
		w.setGlobal(fs)
		if err == nil && !blocking {
			break
		}
		for _, r := range resources {
			w.metrics.up.WithLabelValues(r).Set(0)
		}
		if err != nil {
			w.log.Warn("cannot reach the API server; trying again", zap.Error(err), zap.Duration("retry", w.cfg.Retry))
		}
		for _, f := range fs {
			w.log.Warn("cannot watch cert-manager yet", zap.String("code", string(f.Code)), zap.String("detail", f.Detail), zap.Duration("retry", w.cfg.Retry))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(w.cfg.Retry):
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w.queue = workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[key](),
		workqueue.TypedRateLimitingQueueConfig[key]{Name: "renewals"})
	defer w.queue.ShutDown()
	lis, factories, err := w.informers()
	if err != nil {
		return err
	}
	defer func() {
		cancel()
		for _, f := range factories {
			f.Shutdown()
		}
	}()
	// The handlers run from the first list on.
	w.lis = lis
	for _, f := range factories {
		f.Start(ctx.Done())
	}
	for _, f := range factories {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok && ctx.Err() == nil {
				return fmt.Errorf("renewals: the %v cache did not sync", typ)
			}
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	for _, r := range resources {
		w.metrics.up.WithLabelValues(r).Set(1)
	}
	w.mu.Lock()
	w.synced = lis
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.synced = nil
		w.mu.Unlock()
	}()
	w.log.Info("watching cert-manager", zap.Strings("namespaces", w.cfg.Namespaces), zap.String("selector", w.cfg.Selector))
	// The targets at once, from the synced caches; then every object.
	w.publish()
	w.enqueueAll()
	go func() {
		t := time.NewTicker(w.cfg.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				w.queue.ShutDown()
				return
			case <-t.C:
				w.lis.refreshUp(w.metrics, w.cfg.Interval)
				w.enqueueAll()
			}
		}
	}()
	for w.next(ctx) {
	}
	return nil
}

// next handles one key; false when the queue shut down.
func (w *Watcher) next(ctx context.Context) bool {
	k, shutdown := w.queue.Get()
	if shutdown {
		return false
	}
	defer w.queue.Done(k)
	if err := w.handle(ctx, k); err != nil {
		w.log.Debug("will try again", zap.String("resource", k.res), zap.String("namespace", k.namespace), zap.String("name", k.name), zap.Error(err))
		w.queue.AddRateLimited(k)
	} else {
		w.queue.Forget(k)
	}
	if w.queue.Len() == 0 && w.dirty {
		w.publish()
	}
	return true
}

// enqueueAll looks at every Certificate and Challenge again: time alone
// makes Challenges stuck and renewal windows near.
func (w *Watcher) enqueueAll() {
	crts, _ := w.lis.certificates(labels.Everything())
	for _, c := range crts {
		w.queue.Add(key{resCertificate, c.Namespace, c.Name})
	}
	chs, _ := w.lis.challenges()
	for _, c := range chs {
		w.queue.Add(key{resChallenge, c.Namespace, c.Name})
	}
}

// handler enqueues every change of one resource.
func (w *Watcher) handler(res string) cache.ResourceEventHandler {
	add := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		m, err := metaOf(obj)
		if err != nil {
			return
		}
		w.lis.sawEvent(res)
		w.queue.Add(key{res, m.GetNamespace(), m.GetName()})
	}
	return cache.ResourceEventHandlerFuncs{AddFunc: add, UpdateFunc: func(_, obj any) { add(obj) }, DeleteFunc: add}
}

func metaOf(obj any) (metav1.Object, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("renewals: %T is not an object", obj)
	}
	return m, nil
}

// informers makes one informer per resource type and namespace (every
// namespace when none is listed; ClusterIssuers cluster-wide).
func (w *Watcher) informers() (*listerSet, []cminformers.SharedInformerFactory, error) {
	nss := w.cfg.Namespaces
	if len(nss) == 0 {
		nss = []string{metav1.NamespaceAll}
	}
	ls := newListerSet()
	var factories []cminformers.SharedInformerFactory
	watchErr := func(res string) cache.WatchErrorHandlerWithContext {
		return func(ctx context.Context, r *cache.Reflector, err error) {
			ls.watchFailed(res, time.Now())
			w.metrics.up.WithLabelValues(res).Set(0)
			cache.DefaultWatchErrorHandler(ctx, r, err)
		}
	}
	add := func(res string, inf cache.SharedIndexInformer) error {
		if err := inf.SetWatchErrorHandlerWithContext(watchErr(res)); err != nil {
			return fmt.Errorf("renewals: %s: %w", res, err)
		}
		if _, err := inf.AddEventHandler(w.handler(res)); err != nil {
			return fmt.Errorf("renewals: %s: %w", res, err)
		}
		return nil
	}
	for _, ns := range nss {
		f := cminformers.NewSharedInformerFactoryWithOptions(w.opts.CertManager, w.cfg.Resync, cminformers.WithNamespace(ns))
		factories = append(factories, f)
		certs := f
		if w.cfg.Selector != "" {
			sel := w.cfg.Selector
			certs = cminformers.NewSharedInformerFactoryWithOptions(w.opts.CertManager, w.cfg.Resync, cminformers.WithNamespace(ns),
				cminformers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
			factories = append(factories, certs)
		}
		set := &nsListers{
			certs:     certs.Certmanager().V1().Certificates().Lister(),
			requests:  f.Certmanager().V1().CertificateRequests().Lister(),
			issuers:   f.Certmanager().V1().Issuers().Lister(),
			orders:    f.Acme().V1().Orders().Lister(),
			challenge: f.Acme().V1().Challenges().Lister(),
		}
		for res, inf := range map[string]cache.SharedIndexInformer{
			resCertificate: certs.Certmanager().V1().Certificates().Informer(),
			resRequest:     f.Certmanager().V1().CertificateRequests().Informer(),
			resIssuer:      f.Certmanager().V1().Issuers().Informer(),
			resOrder:       f.Acme().V1().Orders().Informer(),
			resChallenge:   f.Acme().V1().Challenges().Informer(),
		} {
			if err := add(res, inf); err != nil {
				return nil, nil, err
			}
		}
		ls.byNS[ns] = set
	}
	cf := cminformers.NewSharedInformerFactory(w.opts.CertManager, w.cfg.Resync)
	factories = append(factories, cf)
	ls.clusterIssuers = cf.Certmanager().V1().ClusterIssuers().Lister()
	if err := add(resClusterIssuer, cf.Certmanager().V1().ClusterIssuers().Informer()); err != nil {
		return nil, nil, err
	}
	return ls, factories, nil
}

// nsListers read one namespace's (or every namespace's) caches.
type nsListers struct {
	certs     cmlisters.CertificateLister
	requests  cmlisters.CertificateRequestLister
	issuers   cmlisters.IssuerLister
	orders    acmelisters.OrderLister
	challenge acmelisters.ChallengeLister
}

// listerSet reads the caches, whichever namespace an object is in, and
// keeps when each watch last failed and last delivered.
type listerSet struct {
	byNS           map[string]*nsListers
	clusterIssuers cmlisters.ClusterIssuerLister

	mu        sync.Mutex
	lastError map[string]time.Time
}

func newListerSet() *listerSet {
	return &listerSet{byNS: map[string]*nsListers{}, lastError: map[string]time.Time{}}
}

func (l *listerSet) watchFailed(res string, at time.Time) {
	l.mu.Lock()
	l.lastError[res] = at
	l.mu.Unlock()
}

// sawEvent: a delivered change shows the watch works again.
func (l *listerSet) sawEvent(res string) {
	l.mu.Lock()
	delete(l.lastError, res)
	l.mu.Unlock()
}

// refreshUp marks a watch up again when it has not failed for a whole
// interval (the reflector re-lists and re-watches by itself).
func (l *listerSet) refreshUp(m *metrics, interval time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range resources {
		at, failed := l.lastError[r]
		if failed && time.Since(at) < interval {
			continue
		}
		delete(l.lastError, r)
		m.up.WithLabelValues(r).Set(1)
	}
}

// in is the listers that hold namespace ns.
func (l *listerSet) in(ns string) *nsListers {
	if s, ok := l.byNS[metav1.NamespaceAll]; ok {
		return s
	}
	return l.byNS[ns]
}

func (l *listerSet) certificates(sel labels.Selector) ([]*cmapi.Certificate, error) {
	var out []*cmapi.Certificate
	for _, s := range l.byNS {
		cs, err := s.certs.List(sel)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

func (l *listerSet) challenges() ([]*cmacme.Challenge, error) {
	var out []*cmacme.Challenge
	for _, s := range l.byNS {
		cs, err := s.challenge.List(labels.Everything())
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}
