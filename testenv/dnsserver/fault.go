package dnsserver

import (
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// FaultKind names one way a server misbehaves.
type FaultKind int

// The faults a server can have. Each is applied by the middleware in front
// of the authoritative handler, for the queries the Fault's scope selects.
const (
	FaultDrop           FaultKind = iota + 1 // never answer
	FaultDelay                               // answer after Fault.Delay
	FaultServFail                            // rcode SERVFAIL
	FaultRefused                             // rcode REFUSED
	FaultNotImp                              // rcode NOTIMP (e.g. only for CAA)
	FaultLameRefused                         // lame: REFUSED for a zone it is listed for
	FaultLameNoAA                            // lame: answers without AA
	FaultNoTCP                               // no TCP listener: connections are refused
	FaultAlwaysTC                            // every UDP answer is an empty TC=1 reply
	FaultWrong0x20                           // the question comes back lower-cased
	FaultEDNSIntolerant                      // FORMERR whenever the query carries OPT
	FaultGarbage                             // random bytes that never parse as a message
	FaultWrongID                             // a reply with a different message ID
	// FaultNoDenial strips the NSEC/NSEC3 records (and their RRSIGs) from
	// NXDOMAIN and NODATA answers of a signed zone: a denial of existence
	// without its proof, which a validating resolver must call bogus.
	FaultNoDenial
	// The hostile-resolver shapes: a resolver or server that says a name
	// or type does not exist when it does, FORMERR to any query, a reply
	// with nothing in it (no question either), a reply to another
	// question, and a truncated UDP reply whose TCP retry gets no answer.
	FaultNXDomain      // rcode NXDOMAIN, nothing else
	FaultNoData        // NOERROR, authoritative, no records at all
	FaultFormErr       // rcode FORMERR
	FaultEmpty         // a bare header: no question, no records
	FaultWrongQuestion // the reply's question is another name
	FaultTCNoTCP       // an empty TC=1 UDP reply; over TCP the connection closes unanswered
)

var faultNames = map[FaultKind]string{
	FaultDrop: "drop", FaultDelay: "delay", FaultServFail: "servfail", FaultRefused: "refused",
	FaultNotImp: "notimp", FaultLameRefused: "lame-refused", FaultLameNoAA: "lame-noaa",
	FaultNoTCP: "no-tcp", FaultAlwaysTC: "always-tc", FaultWrong0x20: "wrong-0x20",
	FaultEDNSIntolerant: "edns-intolerant", FaultGarbage: "garbage", FaultWrongID: "wrong-id",
	FaultNoDenial: "no-denial", FaultNXDomain: "nxdomain", FaultNoData: "nodata", FaultFormErr: "formerr",
	FaultEmpty: "empty", FaultWrongQuestion: "wrong-question", FaultTCNoTCP: "tc-no-tcp",
}

// String is the fault's short name, used in logs.
func (k FaultKind) String() string {
	if n, ok := faultNames[k]; ok {
		return n
	}
	return "fault?"
}

// Fault is one misbehaviour of a server. QType, Zone, Name and Sources
// narrow it: a zero QType means every type, an empty Zone every zone the
// server serves, an empty Name every name (else only that owner name), no
// Sources every client. Sources (client IP addresses) stage
// per-vantage views: a fault only one vantage's resolver meets.
type Fault struct {
	Kind    FaultKind
	QType   uint16
	Zone    string
	Name    string
	Delay   time.Duration // for FaultDelay
	Sources []string
}

// fromSource says whether the fault applies to a query from client.
func (f Fault) fromSource(client net.Addr) bool {
	if len(f.Sources) == 0 {
		return true
	}
	var ip net.IP
	switch a := client.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.TCPAddr:
		ip = a.IP
	default:
		return false
	}
	for _, s := range f.Sources {
		if want := net.ParseIP(s); want != nil && want.Equal(ip) {
			return true
		}
	}
	return false
}

func (f Fault) applies(q dns.Question) bool {
	if f.QType != 0 && f.QType != q.Qtype {
		return false
	}
	if f.Name != "" && !strings.EqualFold(dns.Fqdn(f.Name), q.Name) {
		return false
	}
	return f.Zone == "" || dns.IsSubDomain(dns.CanonicalName(f.Zone), strings.ToLower(q.Name))
}
