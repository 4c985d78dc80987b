package renewals

import (
	"cmp"
	"slices"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
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
	return BuildTimeline(ls.chainOfCertificate(crt)), true
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
	out := make([]reports.Timeline, 0, len(crts))
	for _, crt := range crts {
		out = append(out, BuildTimeline(ls.chainOfCertificate(crt)))
	}
	return out
}

func (w *Watcher) cachesNow() *listerSet {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.synced
}

// chainOfCertificate is everything of crt's namespace BuildTimeline may
// tie to it: it matches owners and the revision annotation itself.
func (l *listerSet) chainOfCertificate(crt *cmapi.Certificate) Chain {
	ns := l.in(crt.Namespace)
	c := Chain{Certificate: crt}
	c.Requests, _ = ns.requests.CertificateRequests(crt.Namespace).List(labels.Everything())
	c.Orders, _ = ns.orders.Orders(crt.Namespace).List(labels.Everything())
	var chs []*cmacme.Challenge
	chs, _ = ns.challenge.Challenges(crt.Namespace).List(labels.Everything())
	c.Challenges = chs
	return c
}
