package renewals

import (
	"context"
	"errors"
	"fmt"
	"strings"

	acmev1 "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"
	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Ref names one cert-manager object the way kubectl does:
// certificate/NAME, order/NAME or challenge/NAME.
type Ref struct {
	Kind string // "certificate", "order" or "challenge"
	Name string
}

func (r Ref) String() string { return r.Kind + "/" + r.Name }

// ParseRef reads KIND/NAME; the kind may be given as kubectl accepts it
// (singular, plural, short names, or with its API group).
func ParseRef(s string) (Ref, error) {
	kind, name, ok := strings.Cut(s, "/")
	kind, _, _ = strings.Cut(strings.ToLower(kind), ".")
	if !ok || name == "" {
		return Ref{}, fmt.Errorf("%q: want certificate/NAME, order/NAME or challenge/NAME", s)
	}
	switch kind {
	case "certificate", "certificates", "cert", "certs":
		kind = "certificate"
	case "order", "orders":
		kind = "order"
	case "challenge", "challenges":
		kind = "challenge"
	default:
		return Ref{}, fmt.Errorf("%q: kind %q is not certificate, order or challenge", s, kind)
	}
	return Ref{Kind: kind, Name: name}, nil
}

// Path is one object's chain as read from the cluster: its Certificate
// with every attempt (Chain), and the Challenges the object is about
// (every Challenge of an Order; the one Challenge; for a Certificate those
// of its newest attempt).
type Path struct {
	Chain  Chain
	Focus  []*acmev1.Challenge
	Object Ref
}

// ReadPath reads the object and, through owner references, its
// Certificate and everything the Certificate owns in namespace ns, with
// Get and List only (no watch: one look). An object that cannot be walked
// up to a Certificate is an error that says where the chain breaks.
func ReadPath(ctx context.Context, cs versioned.Interface, ns string, ref Ref) (*Path, error) {
	acme, cm := cs.AcmeV1(), cs.CertmanagerV1()
	p := &Path{Object: ref}
	var certName string
	var focusOrder, focusChallenge string
	switch ref.Kind {
	case "certificate":
		certName = ref.Name
	case "order":
		o, err := acme.Orders(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return nil, readErr(ref, ns, err)
		}
		focusOrder = o.Name
		if certName, err = certOfOrder(ctx, cs, o); err != nil {
			return nil, err
		}
	case "challenge":
		ch, err := acme.Challenges(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return nil, readErr(ref, ns, err)
		}
		focusChallenge = ch.Name
		owner := metav1.GetControllerOf(ch)
		if owner == nil || owner.Kind != "Order" {
			// A Challenge without its Order: check it alone.
			p.Focus = []*acmev1.Challenge{ch}
			return p, fmt.Errorf("challenge %s/%s has no Order owner reference: %w", ns, ch.Name, ErrNoCertificate)
		}
		o, err := acme.Orders(ns).Get(ctx, owner.Name, metav1.GetOptions{})
		if err != nil {
			p.Focus = []*acmev1.Challenge{ch}
			return p, readErr(Ref{Kind: "order", Name: owner.Name}, ns, err)
		}
		if certName, err = certOfOrder(ctx, cs, o); err != nil {
			p.Focus = []*acmev1.Challenge{ch}
			return p, err
		}
	default:
		return nil, fmt.Errorf("cannot read %s", ref)
	}
	crt, err := cm.Certificates(ns).Get(ctx, certName, metav1.GetOptions{})
	if err != nil {
		return nil, readErr(Ref{Kind: "certificate", Name: certName}, ns, err)
	}
	p.Chain.Certificate = crt
	crs, err := cm.CertificateRequests(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, readErr(Ref{Kind: "certificaterequests"}, ns, err)
	}
	for i := range crs.Items {
		p.Chain.Requests = append(p.Chain.Requests, &crs.Items[i])
	}
	orders, err := acme.Orders(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, readErr(Ref{Kind: "orders"}, ns, err)
	}
	for i := range orders.Items {
		p.Chain.Orders = append(p.Chain.Orders, &orders.Items[i])
	}
	chs, err := acme.Challenges(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, readErr(Ref{Kind: "challenges"}, ns, err)
	}
	for i := range chs.Items {
		p.Chain.Challenges = append(p.Chain.Challenges, &chs.Items[i])
	}
	p.Focus = focus(p.Chain, focusOrder, focusChallenge)
	return p, nil
}

// ErrNoCertificate: the object does not lead to a Certificate.
var ErrNoCertificate = errors.New("no Certificate owns it")

// focus picks the Challenges the diagnosis is about.
func focus(c Chain, order, challenge string) []*acmev1.Challenge {
	if challenge != "" {
		for _, ch := range c.Challenges {
			if ch.Name == challenge {
				return []*acmev1.Challenge{ch}
			}
		}
		return nil
	}
	if order == "" {
		// The Certificate's newest attempt's Order.
		tl := BuildTimeline(c)
		for i := len(tl.Attempts) - 1; i >= 0 && order == ""; i-- {
			if o := tl.Attempts[i].Order; o != nil {
				order = o.Name
			}
		}
	}
	var out []*acmev1.Challenge
	for _, o := range c.Orders {
		if o.Name != order {
			continue
		}
		for _, ch := range c.Challenges {
			if ownedBy(ch.OwnerReferences, o.UID) {
				out = append(out, ch)
			}
		}
	}
	return out
}

// certOfOrder follows an Order to its CertificateRequest and that to its
// Certificate.
func certOfOrder(ctx context.Context, cs versioned.Interface, o *acmev1.Order) (string, error) {
	owner := metav1.GetControllerOf(o)
	if owner == nil || owner.Kind != "CertificateRequest" {
		return "", fmt.Errorf("order %s/%s has no CertificateRequest owner reference: %w", o.Namespace, o.Name, ErrNoCertificate)
	}
	cr, err := cs.CertmanagerV1().CertificateRequests(o.Namespace).Get(ctx, owner.Name, metav1.GetOptions{})
	if err != nil {
		return "", readErr(Ref{Kind: "certificaterequest", Name: owner.Name}, o.Namespace, err)
	}
	crtOwner := metav1.GetControllerOf(cr)
	if crtOwner == nil || crtOwner.Kind != cmapi.CertificateKind {
		return "", fmt.Errorf("certificaterequest %s/%s has no Certificate owner reference: %w", cr.Namespace, cr.Name, ErrNoCertificate)
	}
	return crtOwner.Name, nil
}

// readErr says what could not be read, and for a refusal which verb on
// which resource the credentials lack.
func readErr(ref Ref, ns string, err error) error {
	what := ref.Kind
	if ref.Name != "" {
		what = ref.String()
	}
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s not found in namespace %s: %w", what, ns, err)
	case apierrors.IsForbidden(err):
		verb := "get"
		if ref.Name == "" {
			verb = "list"
		}
		return fmt.Errorf("reading %s in namespace %s: forbidden: the credentials lack %q on %s: %w", what, ns, verb, resourceOf(ref.Kind), err)
	}
	return fmt.Errorf("reading %s in namespace %s: %w", what, ns, err)
}

func resourceOf(kind string) string {
	kind = strings.TrimSuffix(kind, "s")
	switch kind {
	case "order", "challenge":
		return kind + "s.acme.cert-manager.io"
	}
	return kind + "s.cert-manager.io"
}
