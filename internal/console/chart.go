package console

import (
	"bytes"
	"fmt"
	"math/big"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/go-analyze/charts"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/auth"
	"github.com/eci-dev/eci/internal/log"
)

// maxSeries bounds the chart's lines: the costliest keys, the others summed.
const maxSeries = 8

// costChart draws the caller's cost over the picked span as an SVG line
// chart, a line per key.
func (c *Console) costChart(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.FromContext(r.Context())
	v := viewOf(r, p)
	q := v.query(c.now())
	bill, err := c.svc.Bill(r.Context(), p, q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	bounds := q.Periods()
	svg, err := drawCost(bill, bounds[:len(bounds)-1])
	if err != nil {
		log.G(r.Context()).Error("console: draw the cost chart", "err", err)
		http.Error(w, "the chart could not be drawn", http.StatusInternalServerError)
		return
	}
	// An SVG is a document that could carry script: none runs here.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	w.Header().Set("Content-Type", "image/svg+xml")
	_, _ = w.Write(svg)
}

// drawCost makes the chart: per key, its amount in each period.
func drawCost(bill *apiv1.Bill, starts []time.Time) ([]byte, error) {
	index := map[time.Time]int{}
	for i, s := range starts {
		index[s] = i
	}
	series := map[string][]float64{}
	totals := map[string]float64{}
	for _, l := range bill.Lines {
		if l.Period == nil {
			continue
		}
		i, ok := index[l.Period.UTC()]
		if !ok {
			continue
		}
		a, _ := new(big.Rat).SetString(l.Amount)
		f, _ := a.Float64()
		if series[l.Key] == nil {
			series[l.Key] = make([]float64, len(starts))
		}
		series[l.Key][i] += f
		totals[l.Key] += f
	}
	keys := make([]string, 0, len(series))
	for k := range series {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return totals[keys[i]] > totals[keys[j]] || totals[keys[i]] == totals[keys[j]] && keys[i] < keys[j]
	})
	var names []string
	var values [][]float64
	for i, k := range keys {
		if i < maxSeries-1 || len(keys) == maxSeries {
			names, values = append(names, label(k)), append(values, series[k])
			continue
		}
		if len(values) < maxSeries {
			names, values = append(names, "other"), append(values, make([]float64, len(starts)))
		}
		for j, f := range series[k] {
			values[maxSeries-1][j] += f
		}
	}
	if len(values) == 0 { // no cost in the span: one flat line
		names, values = []string{"none"}, [][]float64{make([]float64, len(starts))}
	}
	opt := charts.NewLineChartOptionWithData(values)
	opt.Title.Text = "Cost (" + bill.Currency + ")"
	opt.XAxis.Labels = axisLabels(starts, bill.Granularity)
	opt.Legend.SeriesNames = names
	opt.Legend.Offset = charts.OffsetRight
	p := charts.NewPainter(charts.PainterOptions{OutputFormat: charts.ChartOutputSVG, Width: chartWidth, Height: chartHeight})
	if err := p.LineChart(opt); err != nil {
		return nil, err
	}
	svg, err := p.Bytes()
	if err != nil {
		return nil, err
	}
	// The root has only a viewBox: give it its size, so that an <img> of it
	// is laid out at that size.
	box := fmt.Sprintf(`viewBox="0 0 %d %d"`, chartWidth, chartHeight)
	return bytes.Replace(svg, []byte(box), []byte(fmt.Sprintf(`width="%d" height="%d" %s`, chartWidth, chartHeight, box)), 1), nil
}

// The chart's size in pixels.
const chartWidth, chartHeight = 900, 340

func axisLabels(starts []time.Time, granularity string) []string {
	layout := "01-02"
	switch granularity {
	case apiv1.GranularityHour:
		layout = "15:04"
	case apiv1.GranularityMonth:
		layout = "2006-01"
	}
	out := make([]string, len(starts))
	for i, s := range starts {
		out[i] = s.UTC().Format(layout)
	}
	return out
}

// label keeps a key printable and short (a tag's value is the tenant's
// text; the SVG writer escapes it too).
func label(k string) string {
	k = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, k)
	if len(k) > 40 {
		k = k[:40]
	}
	return k
}
