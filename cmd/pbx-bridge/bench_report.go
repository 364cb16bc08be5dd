package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
)

// benchReport is what a run measured, as printed and as --json writes it.
type benchReport struct {
	Command string        `json:"command"`
	Started string        `json:"started"`
	Seconds float64       `json:"seconds"`
	Machine benchMachine  `json:"machine"`
	Figures []benchFigure `json:"figures"`
}

// benchFigure is one row of the table: a figure of the bridge next to its
// limit, measured in the same run.
type benchFigure struct {
	Figure    string  `json:"figure"` // 1..7, as in the table
	Name      string  `json:"name"`
	Value     float64 `json:"value"`
	Unit      string  `json:"unit"`
	Limit     float64 `json:"limit,omitempty"`
	LimitName string  `json:"limit_name,omitempty"`
	Ratio     float64 `json:"ratio,omitempty"` // value / limit
	Target    string  `json:"target,omitempty"`
	Met       *bool   `json:"met,omitempty"`
	Note      string  `json:"note,omitempty"`
}

func (r *benchRun) add(f benchFigure) {
	if f.Limit != 0 && f.Ratio == 0 {
		f.Ratio = f.Value / f.Limit
	}
	r.rep.Figures = append(r.rep.Figures, f)
}

// met makes the Met field.
func met(ok bool) *bool { return &ok }

func (rep *benchReport) print(w io.Writer) {
	m := rep.Machine
	fmt.Fprintf(w, "pbx-bridge bench: %d CPUs (%s), %s memory, %s; load %s before the run, %s after; %gs\n",
		m.CPUs, m.CPUModel, m.Memory, m.GoVersion, m.LoadBefore, m.LoadAfter, rep.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tfigure\tbridge\tlimit, same run\tratio\ttarget\tmet")
	for _, f := range rep.Figures {
		limit, ratio := "", ""
		if f.LimitName != "" {
			limit = fmt.Sprintf("%s %s", number(f.Limit), f.LimitName)
		}
		if f.Ratio != 0 {
			ratio = fmt.Sprintf("%.2f", f.Ratio)
		}
		metText := ""
		if f.Met != nil {
			metText = map[bool]string{true: "yes", false: "NO"}[*f.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\t%s\n", f.Figure, f.Name, number(f.Value), f.Unit, limit, ratio, f.Target, metText)
	}
	_ = tw.Flush()
	for _, f := range rep.Figures {
		if f.Note != "" {
			fmt.Fprintf(w, "  %s %s: %s\n", f.Figure, f.Name, f.Note)
		}
	}
}

// number prints a figure with three significant digits and thousands
// separators.
func number(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 1000:
		s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		if neg {
			return "-" + b.String()
		}
		return b.String()
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

// benchMachine is where the figures were measured.
type benchMachine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	Memory     string `json:"memory"`
	GoVersion  string `json:"go_version"`
	LoadBefore string `json:"load_before"` // /proc/loadavg's 1, 5 and 15 minute figures
	LoadAfter  string `json:"load_after"`
}

func thisMachine() benchMachine {
	m := benchMachine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	m.LoadBefore = loadAverage()
	return m
}

// loadAverage is /proc/loadavg's 1, 5 and 15 minute figures ("" where
// there is none).
func loadAverage() string {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			return strings.Join(f[:3], " ")
		}
	}
	return ""
}
