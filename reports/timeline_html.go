package reports

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"time"
)

// timelineTemplate draws each timeline as inline SVG (no script): the
// renewal window from renewalTime to expiry behind everything, one bar per
// attempt coloured by its outcome with its cause as the bar's title (a
// tooltip), a line at now; then the attempts as a list, so the causes can
// be read without hovering.
var timelineTemplate = template.Must(template.New("timelines").Funcs(template.FuncMap{
	"clean": func(s string) string { return cleanField(s, false) },
}).Parse(`<h2>Renewal timelines</h2>
{{range .}}<section class="timeline">
<h3>{{clean .Summary}}</h3>
<figure class="timeline"><svg viewBox="0 0 {{.Width}} {{.Height}}" width="{{.Width}}" height="{{.Height}}" role="img" aria-label="{{clean .Summary}}">
<rect x="0" y="12" width="{{.Width}}" height="{{.Height}}" fill="#f4f4f4"/>
{{if .HasWindow}}<rect x="{{.WinX}}" y="12" width="{{.WinW}}" height="{{.Height}}" fill="#fff4d6"><title>renewal window: renewalTime to expiry</title></rect>{{end}}
{{range .Bars}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="10" class="attempt-{{.Outcome}}"><title>{{.Label}}{{if .Title}}: {{.Title}}{{end}}</title></rect>
<text x="{{.X}}" y="{{.Y}}" dy="-1" font-size="9">{{.Label}}</text>
{{end}}<line x1="{{.NowX}}" y1="10" x2="{{.NowX}}" y2="{{.Height}}" stroke="#000" stroke-width="2"/><text x="{{.NowX}}" y="9" text-anchor="middle" font-size="10">now</text>
</svg><figcaption>{{.From}} … {{.To}}</figcaption></figure>
<ul>{{range .Bars}}<li class="attempt-{{.Outcome}}">{{.Label}}{{if .Title}}: {{.Title}}{{end}}</li>{{end}}</ul>
</section>
{{end}}`))

// RenderTimelinesHTML writes the page's section of renewal timelines;
// nothing when there are none.
func RenderTimelinesHTML(w io.Writer, ts []Timeline, now time.Time) error {
	if len(ts) == 0 {
		return nil
	}
	svgs := make([]*timelineSVG, 0, len(ts))
	for i := range ts {
		svgs = append(svgs, newTimelineSVG(&ts[i], now))
	}
	var buf bytes.Buffer
	if err := timelineTemplate.Execute(&buf, svgs); err != nil {
		return fmt.Errorf("reports: render timelines: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("reports: write timelines: %w", err)
	}
	return nil
}
