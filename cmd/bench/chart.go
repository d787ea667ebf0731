package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/font/liberation"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// The charts are drawn with gonum.org/v1/plot's drawing layer (vg, draw,
// vgsvg, vgimg) and not with its plot and plotter packages, on purpose:
// package plot's init parses all twelve Liberation fonts, and this program
// is re-executed for every worker and floor child. Linking it cost every
// child about 4 MiB of resident memory and 1.4 ms of start-up on the
// reference machine, which would have been charged to procpool's idle
// worker memory, start-up and recovery figures. Here the fonts are parsed
// only when a chart is drawn, in the parent.

// chartSeries is one line of a chart: points with a min–max bar each.
type chartSeries struct {
	name   string
	color  color.Color
	glyph  draw.GlyphDrawer
	dashes []vg.Length
	noLine bool
	pts    []chartPoint
}

type chartPoint struct {
	x, y, lo, hi float64
	label        string // drawn beside the point, if set
	ringed       bool   // drawn with a ring around it
}

// hline is a horizontal reference line across the chart, with its label.
type hline struct {
	y     float64
	label string
}

type chart struct {
	title, xLabel, yLabel string
	logX                  bool
	categories            []string // a nominal x axis: x is the index
	series                []chartSeries
	refs                  []hline
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // processes: blue
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // goroutines: green
	color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff}, // errgroup: grey
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // Pool: red
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // PPE: orange
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
}

var glyphs = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.RingGlyph{}, draw.PyramidGlyph{}, draw.CrossGlyph{}}

// writeCharts draws the throughput, latency and scaling charts into dir, as SVG and
// PNG, and returns the files written.
func writeCharts(rep *Report, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for name, c := range map[string]*chart{"throughput": throughputChart(rep), "latency": latencyChart(rep), "scaling": scalingChart(rep)} {
		if c == nil {
			continue
		}
		for _, ext := range []string{"svg", "png"} {
			path := filepath.Join(dir, name+"."+ext)
			if err := c.save(path, ext); err != nil {
				return files, fmt.Errorf("chart %s: %w", path, err)
			}
			files = append(files, path)
		}
	}
	slices.Sort(files)
	return files, nil
}

// throughputChart is Map's items/s against the chunk size, at the widest
// pool, one line per implementation.
func throughputChart(rep *Report) *chart {
	if len(rep.Workers) == 0 {
		return nil
	}
	wide := slices.Max(rep.Workers)
	c := &chart{
		title:  fmt.Sprintf("Map of a trivial function: throughput against chunk size (%d workers, %s)", wide, rep.Machine.CPU),
		xLabel: "chunk size (items per message; a ringed point is that implementation's default chunk size)",
		yLabel: "items/s",
		logX:   true,
	}
	for i, impl := range []string{iProcesses, iGoroutines, iErrgroup, iPool, iPPE} {
		s := chartSeries{color: palette[i], glyph: glyphs[i]}
		// A default that is also a measured chunk size (ProcessPoolExecutor's
		// is 1) was not measured twice: ring the point measured.
		defaultSize := -1
		for _, r := range rep.Results {
			if r.Workload == wMap && r.Impl == impl && r.Workers == wide && r.Chunk == "default" {
				defaultSize = r.ChunkSize
			}
		}
		for _, r := range rep.Results {
			if r.Workload != wMap || r.Impl != impl || r.Workers != wide || r.Skipped != "" || len(r.Runs) == 0 {
				continue
			}
			s.name = r.Label
			p := chartPoint{x: float64(r.ChunkSize), y: r.Median, lo: r.Min, hi: r.Max}
			p.ringed = r.Chunk == "default" || r.ChunkSize == defaultSize
			s.pts = append(s.pts, p)
		}
		if impl == iErrgroup {
			s.dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		if len(s.pts) > 0 {
			slices.SortFunc(s.pts, func(a, b chartPoint) int { return cmpFloat(a.x, b.x) })
			c.series = append(c.series, s)
		}
	}
	if len(c.series) == 0 {
		return nil
	}
	return c
}

// latencyChart is the sequential round trip of each implementation, one
// series per worker count, with the raw pipe floor as a reference line.
func latencyChart(rep *Report) *chart {
	impls := []string{iProcesses, iGoroutines, iErrgroup, iPool, iPPE}
	c := &chart{
		title:  fmt.Sprintf("Round trip of one trivial call, sequential (%s)", rep.Machine.CPU),
		yLabel: "µs per call (log scale)",
	}
	c.categories = []string{"procpool\nprocesses", "procpool\ngoroutines", "errgroup\nSetLimit", "Python\nPool.apply", "Python PPE\nsubmit+result"}
	if f := rep.find(wRoundTrip, iFloor, 0, ""); f != nil {
		c.refs = append(c.refs, hline{y: f.Median, label: fmt.Sprintf("raw pipe ping-pong floor: %s µs", sig3(f.Median))})
	}
	n := len(rep.Workers)
	for wi, k := range rep.Workers {
		s := chartSeries{name: fmt.Sprintf("%d worker(s)", k), color: palette[wi%len(palette)], glyph: glyphs[wi%len(glyphs)], noLine: true}
		offset := (float64(wi) - float64(n-1)/2) * 0.25
		for i, impl := range impls {
			r := rep.find(wRoundTrip, impl, k, "")
			if r == nil || r.Workers == 0 {
				continue
			}
			s.pts = append(s.pts, chartPoint{x: float64(i) + offset, y: r.Median, lo: r.Min, hi: r.Max, label: sig3(r.Median)})
		}
		if len(s.pts) > 0 {
			c.series = append(c.series, s)
		}
	}
	if len(c.series) == 0 {
		return nil
	}
	return c
}

// scalingChart is the time per call against the number of workers, of the
// round trip and of a Map at chunksize 1, for procpool's processes and
// Python's Pool: a flat line is a pool whose cost does not grow with its
// workers.
func scalingChart(rep *Report) *chart {
	if len(rep.Scaling) == 0 {
		return nil
	}
	c := &chart{
		title:  fmt.Sprintf("Scaling: time per trivial call against the number of workers (%d cores, %s)", rep.Machine.Cores, rep.Machine.CPU),
		xLabel: "workers",
		yLabel: "µs per call (log scale)",
	}
	for _, k := range rep.Scaling {
		c.categories = append(c.categories, fmt.Sprint(k))
	}
	dashed := []vg.Length{vg.Points(4), vg.Points(3)}
	for _, line := range []struct {
		workload, impl, name string
		color, glyph         int
		dashes               []vg.Length
	}{
		{wScaleRoundTrip, iProcesses, "procpool round trip", 0, 0, nil},
		{wScaleRoundTrip, iPool, "Python Pool.apply", 3, 3, nil},
		{wScaleMap, iProcesses, "procpool Map, chunksize 1", 0, 1, dashed},
		{wScaleMap, iPool, "Python Pool.map, chunksize 1", 3, 4, dashed},
	} {
		s := chartSeries{name: line.name, color: palette[line.color], glyph: glyphs[line.glyph], dashes: line.dashes}
		chunk := ""
		if line.workload == wScaleMap {
			chunk = "1"
		}
		for i, k := range rep.Scaling {
			r := rep.find(line.workload, line.impl, k, chunk)
			if r == nil {
				continue
			}
			p := chartPoint{x: float64(i), y: r.Median, lo: r.Min, hi: r.Max}
			if r.Unit == "items/s" { // a rate: µs per item, its bar turned over
				p.y, p.lo, p.hi = 1e6/r.Median, 1e6/r.Max, 1e6/r.Min
			}
			p.label = sig3(p.y)
			s.pts = append(s.pts, p)
		}
		if len(s.pts) > 0 {
			c.series = append(c.series, s)
		}
	}
	if len(c.series) == 0 {
		return nil
	}
	return c
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

const (
	chartW = 10 * vg.Inch
	chartH = 6 * vg.Inch
)

// save draws the chart into a file of the given format, svg or png.
func (c *chart) save(path, format string) error {
	var cw vg.CanvasWriterTo
	switch format {
	case "svg":
		cw = vgsvg.New(chartW, chartH)
	case "png":
		cw = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(chartW, chartH), vgimg.UseDPI(120), vgimg.UseBackgroundColor(color.White))}
	default:
		return fmt.Errorf("unknown format %q", format)
	}
	dc := draw.New(cw)
	dc.FillPolygon(color.White, []vg.Point{dc.Min, {X: dc.Max.X, Y: dc.Min.Y}, dc.Max, {X: dc.Min.X, Y: dc.Max.Y}})
	c.draw(dc)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := cw.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// textStyle returns a text style of the given size and alignment, in
// Liberation Sans, parsed on first use.
func textStyle(size vg.Length, xa draw.XAlignment, ya draw.YAlignment) draw.TextStyle {
	return draw.TextStyle{
		Color:   color.Black,
		Font:    font.Font{Typeface: "Liberation", Variant: "Sans", Size: size},
		XAlign:  xa,
		YAlign:  ya,
		Handler: text.Plain{Fonts: fonts()},
	}
}

var fontCache *font.Cache

func fonts() *font.Cache {
	if fontCache == nil {
		fontCache = font.NewCache(liberation.Collection())
	}
	return fontCache
}

// axis maps data values to lengths along one side of the plot area.
type axis struct {
	log            bool
	lo, hi         float64
	start, end     vg.Length
	nominal        bool
	ticks          []float64 // labelled
	minor          []float64 // unlabelled, log axes only
	format         func(float64) string
	categoryLabels []string
}

func (a *axis) pos(v float64) vg.Length {
	f := func(x float64) float64 { return x }
	if a.log {
		f = math.Log10
	}
	t := (f(v) - f(a.lo)) / (f(a.hi) - f(a.lo))
	return a.start + vg.Length(t)*(a.end-a.start)
}

// newLogAxis spans whole decades around [lo, hi].
func newLogAxis(lo, hi float64) axis {
	lo = math.Pow(10, math.Floor(math.Log10(lo)))
	hi = math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	a := axis{log: true, lo: lo, hi: hi, format: siNumber}
	for d := lo; d <= hi*1.0001; d *= 10 {
		a.ticks = append(a.ticks, d)
		for m := 2.0; m < 10 && d*m < hi; m++ {
			a.minor = append(a.minor, d*m)
		}
	}
	return a
}

// siNumber prints 1, 10, 100, 1k, 10k, ..., 1M, ...
func siNumber(v float64) string {
	switch {
	case v >= 1e9:
		return trimFloat(v/1e9) + "G"
	case v >= 1e6:
		return trimFloat(v/1e6) + "M"
	case v >= 1e3:
		return trimFloat(v/1e3) + "k"
	}
	return trimFloat(v)
}

func trimFloat(v float64) string { return fmt.Sprintf("%g", math.Round(v*100)/100) }

// draw lays the chart out: title, plot area with axes and grid, series,
// reference lines, and a legend on the right.
func (c *chart) draw(dc draw.Canvas) {
	const pad = 12
	title := textStyle(vg.Points(13), draw.XCenter, draw.YTop)
	small := textStyle(vg.Points(9), draw.XCenter, draw.YTop)
	label := textStyle(vg.Points(11), draw.XCenter, draw.YTop)
	legendW := vg.Points(170)
	area := vg.Rectangle{
		Min: vg.Point{X: dc.Min.X + vg.Points(70), Y: dc.Min.Y + vg.Points(70)},
		Max: vg.Point{X: dc.Max.X - legendW - vg.Points(pad), Y: dc.Max.Y - vg.Points(40)},
	}
	dc.FillText(title, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: dc.Max.Y - vg.Points(pad)}, c.title)

	// Y: log decades around every point, bar and reference line.
	ylo, yhi := math.Inf(1), math.Inf(-1)
	xlo, xhi := math.Inf(1), math.Inf(-1)
	for _, s := range c.series {
		for _, p := range s.pts {
			ylo, yhi = math.Min(ylo, math.Min(p.lo, p.y)), math.Max(yhi, math.Max(p.hi, p.y))
			xlo, xhi = math.Min(xlo, p.x), math.Max(xhi, p.x)
		}
	}
	for _, r := range c.refs {
		ylo, yhi = math.Min(ylo, r.y), math.Max(yhi, r.y)
	}
	ylo = math.Max(ylo, 1e-9)
	ya := newLogAxis(ylo, yhi)
	ya.start, ya.end = area.Min.Y, area.Max.Y

	var xa axis
	if c.categories != nil {
		xa = axis{nominal: true, lo: -0.5, hi: float64(len(c.categories)) - 0.5, categoryLabels: c.categories}
	} else if c.logX {
		xa = newLogAxis(xlo, xhi)
		// A little room so that the end points are not on the frame.
		xa.lo, xa.hi = xlo/2, xhi*2
		xa.ticks = slices.DeleteFunc(xa.ticks, func(v float64) bool { return v < xa.lo || v > xa.hi })
		xa.minor = slices.DeleteFunc(xa.minor, func(v float64) bool { return v < xa.lo || v > xa.hi })
	}
	xa.start, xa.end = area.Min.X, area.Max.X

	grid := draw.LineStyle{Color: color.Gray{Y: 225}, Width: vg.Points(0.5)}
	frame := draw.LineStyle{Color: color.Black, Width: vg.Points(1)}
	tickLen := vg.Points(5)
	right := textStyle(vg.Points(9), draw.XRight, draw.YCenter)
	for _, v := range ya.ticks {
		y := ya.pos(v)
		dc.StrokeLine2(grid, area.Min.X, y, area.Max.X, y)
		dc.StrokeLine2(frame, area.Min.X-tickLen, y, area.Min.X, y)
		dc.FillText(right, vg.Point{X: area.Min.X - tickLen - vg.Points(3), Y: y}, ya.format(v))
	}
	for _, v := range ya.minor {
		y := ya.pos(v)
		dc.StrokeLine2(frame, area.Min.X-tickLen/2, y, area.Min.X, y)
	}
	if xa.nominal {
		for i, name := range xa.categoryLabels {
			x := xa.pos(float64(i))
			dc.StrokeLine2(frame, x, area.Min.Y-tickLen, x, area.Min.Y)
			dc.FillText(label, vg.Point{X: x, Y: area.Min.Y - tickLen - vg.Points(3)}, name)
		}
	} else {
		for _, v := range xa.ticks {
			x := xa.pos(v)
			dc.StrokeLine2(grid, x, area.Min.Y, x, area.Max.Y)
			dc.StrokeLine2(frame, x, area.Min.Y-tickLen, x, area.Min.Y)
			dc.FillText(small, vg.Point{X: x, Y: area.Min.Y - tickLen - vg.Points(3)}, xa.format(v))
		}
		for _, v := range xa.minor {
			x := xa.pos(v)
			dc.StrokeLine2(frame, x, area.Min.Y-tickLen/2, x, area.Min.Y)
		}
	}
	dc.StrokeLines(frame, []vg.Point{area.Min, {X: area.Max.X, Y: area.Min.Y}, area.Max, {X: area.Min.X, Y: area.Max.Y}, area.Min})
	if c.xLabel != "" {
		dc.FillText(label, vg.Point{X: (area.Min.X + area.Max.X) / 2, Y: area.Min.Y - vg.Points(34)}, c.xLabel)
	}
	ylab := textStyle(vg.Points(11), draw.XCenter, draw.YBottom)
	ylab.Rotation = math.Pi / 2
	dc.FillText(ylab, vg.Point{X: dc.Min.X + vg.Points(pad+14), Y: (area.Min.Y + area.Max.Y) / 2}, c.yLabel)

	for _, r := range c.refs {
		y := ya.pos(r.y)
		dc.StrokeLine2(draw.LineStyle{Color: color.Black, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(6), vg.Points(4)}}, area.Min.X, y, area.Max.X, y)
		dc.FillText(textStyle(vg.Points(9), draw.XLeft, draw.YBottom), vg.Point{X: area.Min.X + vg.Points(4), Y: y + vg.Points(2)}, r.label)
	}

	for si, s := range c.series {
		// Labels go left of the first series' points and right of the
		// others', so that neighbours do not overwrite each other.
		pointLabel, dx := textStyle(vg.Points(8), draw.XLeft, draw.YCenter), vg.Points(6)
		if si == 0 && len(c.series) > 1 {
			pointLabel, dx = textStyle(vg.Points(8), draw.XRight, draw.YCenter), -vg.Points(6)
		}
		line := draw.LineStyle{Color: s.color, Width: vg.Points(1.5), Dashes: s.dashes}
		bar := draw.LineStyle{Color: s.color, Width: vg.Points(1)}
		var pts []vg.Point
		for _, p := range s.pts {
			pt := vg.Point{X: xa.pos(p.x), Y: ya.pos(p.y)}
			pts = append(pts, pt)
			if p.hi > p.lo {
				lo, hi := ya.pos(math.Max(p.lo, ya.lo)), ya.pos(p.hi)
				dc.StrokeLine2(bar, pt.X, lo, pt.X, hi)
				dc.StrokeLine2(bar, pt.X-vg.Points(3), lo, pt.X+vg.Points(3), lo)
				dc.StrokeLine2(bar, pt.X-vg.Points(3), hi, pt.X+vg.Points(3), hi)
			}
			dc.DrawGlyph(draw.GlyphStyle{Color: s.color, Radius: vg.Points(3.5), Shape: s.glyph}, pt)
			if p.ringed {
				dc.DrawGlyph(draw.GlyphStyle{Color: s.color, Radius: vg.Points(7), Shape: draw.RingGlyph{}}, pt)
			}
			if p.label != "" {
				dc.FillText(pointLabel, vg.Point{X: pt.X + dx, Y: pt.Y}, p.label)
			}
		}
		if !s.noLine && len(pts) > 1 {
			dc.StrokeLines(line, pts)
		}
	}

	// Legend, top right, outside the plot area.
	legend := textStyle(vg.Points(10), draw.XLeft, draw.YCenter)
	x0 := area.Max.X + vg.Points(pad)
	y := area.Max.Y - vg.Points(8)
	for _, s := range c.series {
		if !s.noLine {
			dc.StrokeLine2(draw.LineStyle{Color: s.color, Width: vg.Points(1.5), Dashes: s.dashes}, x0, y, x0+vg.Points(24), y)
		}
		dc.DrawGlyph(draw.GlyphStyle{Color: s.color, Radius: vg.Points(3.5), Shape: s.glyph}, vg.Point{X: x0 + vg.Points(12), Y: y})
		dc.FillText(legend, vg.Point{X: x0 + vg.Points(30), Y: y}, s.name)
		y -= vg.Points(18)
	}
	dc.FillText(textStyle(vg.Points(8), draw.XLeft, draw.YCenter), vg.Point{X: x0, Y: y}, "bars: min … max of the runs")
}
