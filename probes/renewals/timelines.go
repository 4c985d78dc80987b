package renewals

import (
	"cmp"
	"slices"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/acmediag/acmediag/reports"
)

// Timeline is the Certificate's renewal timeline from the watch's caches
// (the daemon's GET /api/v1/certificates); false while the watch does not
// run here (another pod leads) or does not know the Certificate.
func (w *Watcher) Timeline(namespace, name string) (reports.Timeline, bool) {
	ls := w.cachesNow()
	if ls == nil || ls.in(namespace) == nil {
		return reports.Timeline{}, false
	}
	crt, err := ls.in(namespace).certs.Certificates(namespace).Get(name)
	if err != nil {
		return reports.Timeline{}, false
	}
	c := ls.namespaceChain(namespace)
	c.Certificate = crt
	return BuildTimeline(c), true
}

// Timelines are the first limit watched Certificates', by namespace and
// name, for the report page (each reads its namespace's requests, orders
// and challenges: the limit bounds the page's work).
func (w *Watcher) Timelines(limit int) []reports.Timeline {
	ls := w.cachesNow()
	if ls == nil {
		return nil
	}
	crts, err := ls.certificates(labels.Everything())
	if err != nil {
		return nil
	}
	slices.SortFunc(crts, func(a, b *cmapi.Certificate) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	crts = crts[:min(len(crts), limit)]
	// One read of each namespace's requests, orders and challenges for all
	// its Certificates, not one per Certificate.
	byNS := map[string]Chain{}
	out := make([]reports.Timeline, 0, len(crts))
	for _, crt := range crts {
		c, ok := byNS[crt.Namespace]
		if !ok {
			c = ls.namespaceChain(crt.Namespace)
			byNS[crt.Namespace] = c
		}
		c.Certificate = crt
		out = append(out, BuildTimeline(c))
	}
	return out
}

func (w *Watcher) cachesNow() *listerSet {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced
}

// namespaceChain is everything of a namespace BuildTimeline may tie to
// one of its Certificates (it matches owners and the revision annotation
// itself); the caller sets Certificate.
func (l *listerSet) namespaceChain(namespace string) Chain {
	ns := l.in(namespace)
	var c Chain
	c.Requests, _ = ns.requests.CertificateRequests(namespace).List(labels.Everything())
	c.Orders, _ = ns.orders.Orders(namespace).List(labels.Everything())
	c.Challenges, _ = ns.challenge.Challenges(namespace).List(labels.Everything())
	return c
}
