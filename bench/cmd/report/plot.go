package main

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// A small log-log line chart drawn with image/png: no plotting dependency.

type point struct{ x, y float64 }

type series struct {
	name   string
	col    color.RGBA
	pts    []point
	dashed bool
	cross  []point // failures: drawn as ×
}

type panel struct {
	r                      image.Rectangle // the plotting area
	xmin, xmax, ymin, ymax float64         // log10 bounds (y: linear bounds if liny)
	liny                   bool            // a linear y axis from ymin to ymax
	title, xlabel, ylabel  string
	yfmt                   func(float64) string
	series                 []series
	notes                  []string
}

var (
	black = color.RGBA{0, 0, 0, 255}
	grey  = color.RGBA{220, 220, 220, 255}
	blue  = color.RGBA{31, 119, 180, 255}
	red   = color.RGBA{214, 39, 40, 255}
	green = color.RGBA{44, 160, 44, 255}
	orng  = color.RGBA{255, 127, 14, 255}
	purp  = color.RGBA{148, 103, 189, 255}
)

func (p *panel) at(x, y float64) (int, int) {
	fx := (math.Log10(x) - p.xmin) / (p.xmax - p.xmin)
	fy := (math.Log10(y) - p.ymin) / (p.ymax - p.ymin)
	if p.liny {
		fy = (y - p.ymin) / (p.ymax - p.ymin)
	}
	return p.r.Min.X + int(fx*float64(p.r.Dx())), p.r.Max.Y - int(fy*float64(p.r.Dy()))
}

func text(img draw.Image, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func textWidth(s string) int { return 7 * len([]rune(s)) }

func dot(img draw.Image, x, y, r int, c color.Color) {
	draw.Draw(img, image.Rect(x-r, y-r, x+r+1, y+r+1), image.NewUniform(c), image.Point{}, draw.Src)
}

func line(img draw.Image, x0, y0, x1, y1 int, c color.Color, dashed bool) {
	dx, dy := math.Abs(float64(x1-x0)), math.Abs(float64(y1-y0))
	steps := int(math.Max(dx, dy))
	for i := 0; i <= steps; i++ {
		if dashed && (i/6)%2 == 1 {
			continue
		}
		t := 0.0
		if steps > 0 {
			t = float64(i) / float64(steps)
		}
		x := x0 + int(math.Round(t*float64(x1-x0)))
		y := y0 + int(math.Round(t*float64(y1-y0)))
		dot(img, x, y, 1, c)
	}
}

func keysLabel(v float64) string {
	switch {
	case v >= 1e6:
		return formatG(v/1e6) + "M"
	case v >= 1e3:
		return formatG(v/1e3) + "k"
	}
	return formatG(v)
}

func formatG(v float64) string {
	if v == math.Trunc(v) {
		return itoa(int(v))
	}
	return itoa(int(v*10)/10) + "." + itoa(int(v*10)%10)
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	neg := i < 0
	if neg {
		i = -i
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	if neg {
		b = append([]byte{'-'}, b...)
	}
	return string(b)
}

func (p *panel) draw(img draw.Image) {
	// Grid and ticks at decades.
	for e := math.Ceil(p.xmin); e <= p.xmax+1e-9; e++ {
		x, _ := p.at(math.Pow(10, e), math.Pow(10, p.ymin))
		line(img, x, p.r.Min.Y, x, p.r.Max.Y, grey, false)
		l := keysLabel(math.Pow(10, e))
		text(img, x-textWidth(l)/2, p.r.Max.Y+16, l, black)
	}
	var yticks []float64
	if p.liny {
		for i := 0; i <= 5; i++ {
			yticks = append(yticks, p.ymin+float64(i)*(p.ymax-p.ymin)/5)
		}
	} else {
		for e := math.Ceil(p.ymin); e <= p.ymax+1e-9; e++ {
			yticks = append(yticks, math.Pow(10, e))
		}
	}
	for _, v := range yticks {
		_, y := p.at(math.Pow(10, p.xmin), v)
		line(img, p.r.Min.X, y, p.r.Max.X, y, grey, false)
		l := p.yfmt(v)
		text(img, p.r.Min.X-textWidth(l)-6, y+4, l, black)
	}
	// Frame.
	line(img, p.r.Min.X, p.r.Max.Y, p.r.Max.X, p.r.Max.Y, black, false)
	line(img, p.r.Min.X, p.r.Min.Y, p.r.Min.X, p.r.Max.Y, black, false)
	text(img, p.r.Min.X, p.r.Min.Y-24, p.title, black)
	text(img, p.r.Min.X+p.r.Dx()/2-textWidth(p.xlabel)/2, p.r.Max.Y+34, p.xlabel, black)
	text(img, p.r.Min.X, p.r.Min.Y-8, p.ylabel, black)
	// Series.
	clip := func(x, y float64) bool {
		if p.liny {
			return x > 0 && y >= p.ymin && y <= p.ymax
		}
		return x > 0 && y > 0 && math.Log10(y) >= p.ymin-1e-9 && math.Log10(y) <= p.ymax+1e-9
	}
	for _, s := range p.series {
		var px, py int
		first := true
		for _, pt := range s.pts {
			if !clip(pt.x, pt.y) || math.IsNaN(pt.y) {
				first = true
				continue
			}
			x, y := p.at(pt.x, pt.y)
			if !first {
				line(img, px, py, x, y, s.col, s.dashed)
			}
			dot(img, x, y, 3, s.col)
			px, py, first = x, y, false
		}
		for _, pt := range s.cross {
			x, y := p.at(pt.x, pt.y)
			for d := -5; d <= 5; d++ {
				dot(img, x+d, y+d, 1, s.col)
				dot(img, x+d, y-d, 1, s.col)
			}
		}
	}
	// Legend, top left inside the plot.
	ly := p.r.Min.Y + 16
	for _, s := range p.series {
		line(img, p.r.Min.X+10, ly-4, p.r.Min.X+34, ly-4, s.col, s.dashed)
		text(img, p.r.Min.X+40, ly, s.name, black)
		ly += 15
	}
	for _, n := range p.notes {
		text(img, p.r.Min.X+10, ly, n, black)
		ly += 15
	}
}

func writePNG(path string, w, h int, panels []*panel, footer string) error {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	for _, p := range panels {
		p.draw(img)
	}
	text(img, 10, h-8, footer, black)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
