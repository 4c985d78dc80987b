package reports

import "fmt"

// Entry is the catalogue's word on one code: its usual severity, the one-line
// summary of what is wrong and the fix a user can apply.
type Entry struct {
	Code     Code
	Severity Severity
	Summary  string
	Fix      string
}

// Lookup returns the catalogue entry for code. An unknown code is a
// programming error inside acmediag; it is reported as an Error with a
// summary that says so rather than crashing a daemon.
func Lookup(code Code) Entry {
	if e, ok := catalogue[code]; ok {
		e.Code = code
		return e
	}
	return Entry{Code: code, Severity: Error, Summary: fmt.Sprintf("unknown finding code %q", code)}
}

// Catalogue lists every entry, in FINDINGS.md order.
func Catalogue() []Entry {
	out := make([]Entry, 0, len(catalogueOrder))
	for _, c := range catalogueOrder {
		out = append(out, Lookup(c))
	}
	return out
}

var catalogueOrder = []Code{
	CodeNameInvalid,
	CodeNameWildcardNeedsDNS01,
	CodeDNSNXDomain,
	CodeDNSServFail,
	CodeDNSTimeout,
	CodeDNSLameDelegation,
	CodeDNSNSUnreachable,
	CodeDNSSerialMismatch,
	CodeDNSDNSSECBogus,
	CodeDNSNoAddress,
	CodeDNSReservedAddress,
	CodeDNSTransport,
	CodeDNSSplitHorizon,
	CodeDNSNegativeTTLHigh,
	CodeDNS01TXTMissing,
	CodeDNS01TXTNotPropagated,
	CodeDNS01TXTWrongValue,
	CodeDNS01CNAMEDangling,
	CodeDNS01WrongZone,
	CodeDNS01DoubledLabel,
	CodeDNS01TooManyTXT,
	CodeDNS01ProviderError,
	CodeDNS01PropagationSlow,
	CodeCAAForbidden,
	CodeCAAIssueWildForbidden,
	CodeCAAAccountURIMismatch,
	CodeCAAValidationMethodsMismatch,
	CodeCAACriticalUnknown,
	CodeCAALookupFailed,
	CodeCAAMalformed,
	CodeHTTP01ConnectTimeout,
	CodeHTTP01ConnectionRefused,
	CodeHTTP01IPv6Unreachable,
	CodeHTTP01IPv6DifferentContent,
	CodeHTTP01InconsistentBackends,
	CodeHTTP01SlowResponse,
	CodeHTTP01ConnectionReset,
	CodeHTTP01BadStatus,
	CodeHTTP01NotRouted,
	CodeHTTP01WrongBody,
	CodeHTTP01WAFOrAuth,
	CodeHTTP01RedirectBadPort,
	CodeHTTP01RedirectBadScheme,
	CodeHTTP01RedirectLoop,
	CodeHTTP01TooManyRedirects,
	CodeHTTP01RedirectBadStatus,
	CodeHTTP01RedirectBadHost,
	CodeHTTP01RedirectTLSError,
	CodeHTTP01TLSOnHTTPPort,
	CodeHTTP01H2C,
	CodeTLSALPNUnreachable,
	CodeTLSALPNNoALPN,
	CodeTLSALPNWrongCertificate,
	CodeMPICQuorumFailed,
	CodeMPICPartial,
	CodeVantageSelfCheckOnly,
	CodeACMERateLimited,
	CodeACMEDirectoryUnreachable,
	CodeACMEOrderFailed,
	CodeRenewalFailed,
	CodeRenewalAtRisk,
	CodeRenewalOverdue,
	CodeRenewalBackoff,
	CodeCertManagerSelfCheckBlocked,
	CodeIssuerNotReady,
}

var catalogue = map[Code]Entry{
	CodeNameInvalid:                  {Severity: Fatal, Summary: "", Fix: ""},
	CodeNameWildcardNeedsDNS01:       {Severity: Fatal, Summary: "", Fix: ""},
	CodeDNSNXDomain:                  {Severity: Fatal, Summary: "", Fix: ""},
	CodeDNSServFail:                  {Severity: Fatal, Summary: "", Fix: ""},
	CodeDNSTimeout:                   {Severity: Error, Summary: "", Fix: ""},
	CodeDNSLameDelegation:            {Severity: Error, Summary: "", Fix: ""},
	CodeDNSNSUnreachable:             {Severity: Warning, Summary: "", Fix: ""},
	CodeDNSSerialMismatch:            {Severity: Warning, Summary: "", Fix: ""},
	CodeDNSDNSSECBogus:               {Severity: Fatal, Summary: "", Fix: ""},
	CodeDNSNoAddress:                 {Severity: Fatal, Summary: "", Fix: ""},
	CodeDNSReservedAddress:           {Severity: Fatal, Summary: "", Fix: ""},
	CodeDNSTransport:                 {Severity: Error, Summary: "", Fix: ""},
	CodeDNSSplitHorizon:              {Severity: Warning, Summary: "", Fix: ""},
	CodeDNSNegativeTTLHigh:           {Severity: Warning, Summary: "", Fix: ""},
	CodeDNS01TXTMissing:              {Severity: Error, Summary: "", Fix: ""},
	CodeDNS01TXTNotPropagated:        {Severity: Error, Summary: "", Fix: ""},
	CodeDNS01TXTWrongValue:           {Severity: Error, Summary: "", Fix: ""},
	CodeDNS01CNAMEDangling:           {Severity: Fatal, Summary: "", Fix: ""},
	CodeDNS01WrongZone:               {Severity: Error, Summary: "", Fix: ""},
	CodeDNS01DoubledLabel:            {Severity: Warning, Summary: "", Fix: ""},
	CodeDNS01TooManyTXT:              {Severity: Warning, Summary: "", Fix: ""},
	CodeDNS01ProviderError:           {Severity: Error, Summary: "", Fix: ""},
	CodeDNS01PropagationSlow:         {Severity: Warning, Summary: "", Fix: ""},
	CodeCAAForbidden:                 {Severity: Fatal, Summary: "", Fix: ""},
	CodeCAAIssueWildForbidden:        {Severity: Fatal, Summary: "", Fix: ""},
	CodeCAAAccountURIMismatch:        {Severity: Fatal, Summary: "", Fix: ""},
	CodeCAAValidationMethodsMismatch: {Severity: Fatal, Summary: "", Fix: ""},
	CodeCAACriticalUnknown:           {Severity: Fatal, Summary: "", Fix: ""},
	CodeCAALookupFailed:              {Severity: Fatal, Summary: "", Fix: ""},
	CodeCAAMalformed:                 {Severity: Warning, Summary: "", Fix: ""},
	CodeHTTP01ConnectTimeout:         {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01ConnectionRefused:      {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01IPv6Unreachable:        {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01IPv6DifferentContent:   {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01InconsistentBackends:   {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01SlowResponse:           {Severity: Warning, Summary: "", Fix: ""},
	CodeHTTP01ConnectionReset:        {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01BadStatus:              {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01NotRouted:              {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01WrongBody:              {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01WAFOrAuth:              {Severity: Warning, Summary: "", Fix: ""},
	CodeHTTP01RedirectBadPort:        {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01RedirectBadScheme:      {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01RedirectLoop:           {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01TooManyRedirects:       {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01RedirectBadStatus:      {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01RedirectBadHost:        {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01RedirectTLSError:       {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01TLSOnHTTPPort:          {Severity: Error, Summary: "", Fix: ""},
	CodeHTTP01H2C:                    {Severity: Error, Summary: "", Fix: ""},
	CodeTLSALPNUnreachable:           {Severity: Error, Summary: "", Fix: ""},
	CodeTLSALPNNoALPN:                {Severity: Error, Summary: "", Fix: ""},
	CodeTLSALPNWrongCertificate:      {Severity: Error, Summary: "", Fix: ""},
	CodeMPICQuorumFailed:             {Severity: Fatal, Summary: "", Fix: ""},
	CodeMPICPartial:                  {Severity: Warning, Summary: "", Fix: ""},
	CodeVantageSelfCheckOnly:         {Severity: Warning, Summary: "", Fix: ""},
	CodeACMERateLimited:              {Severity: Error, Summary: "", Fix: ""},
	CodeACMEDirectoryUnreachable:     {Severity: Error, Summary: "", Fix: ""},
	CodeACMEOrderFailed:              {Severity: Error, Summary: "", Fix: ""},
	CodeRenewalFailed:                {Severity: Error, Summary: "", Fix: ""},
	CodeRenewalAtRisk:                {Severity: Error, Summary: "", Fix: ""},
	CodeRenewalOverdue:               {Severity: Error, Summary: "", Fix: ""},
	CodeRenewalBackoff:               {Severity: Warning, Summary: "", Fix: ""},
	CodeCertManagerSelfCheckBlocked:  {Severity: Error, Summary: "", Fix: ""},
	CodeIssuerNotReady:               {Severity: Error, Summary: "", Fix: ""},
}
