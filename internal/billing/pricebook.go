// Package billing rates metered usage with a price book (docs/billing.md):
// prices per vCPU-, GiB-, GPU- and extra-storage-second, by zone and
// instance type, a spot discount, each from an effective date. Amounts are
// exact (math/big) until a bill rounds its total to the cent.
package billing

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"os"
	"regexp"
	"sort"
	"time"

	"go.yaml.in/yaml/v3"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

// Book is a validated price book.
type Book struct {
	Currency string
	// Periods in the order of their dates; each applies from its date
	// until the next one's.
	Periods []Period
}

// Period is the prices from one effective date.
type Period struct {
	From time.Time
	Line int // where it is written, for messages
	Rates
	// Zones override the rates they name in that zone.
	Zones map[string]Rates
	// InstanceTypes price a named type per second, whole (its extra
	// storage is priced apart).
	InstanceTypes map[string]*big.Rat
	// SpotDiscount is the share a spot instance does not pay (0 to 1).
	SpotDiscount *big.Rat
	// GPUModels price a GPU of a model per second (else Rates.GPU).
	GPUModels map[string]*big.Rat
}

// Rates are prices per second of one unit; nil: not set (a zone's rates
// take the period's then).
type Rates struct {
	VCPU, Memory, GPU, Storage *big.Rat
}

// The file's shape (docs/billing.md).
type fileBook struct {
	Currency string       `yaml:"currency"`
	Periods  []filePeriod `yaml:"periods"`
}

type filePeriod struct {
	From          string              `yaml:"from"`
	VCPU          *price              `yaml:"vcpu"`
	Memory        *price              `yaml:"memory"`
	GPU           *price              `yaml:"gpu"`
	Storage       *price              `yaml:"storage"`
	SpotDiscount  *price              `yaml:"spotDiscount"`
	Zones         map[string]fileRate `yaml:"zones"`
	InstanceTypes map[string]*price   `yaml:"instanceTypes"`
	GPUModels     map[string]*price   `yaml:"gpuModels"`
}

type fileRate struct {
	VCPU    *price `yaml:"vcpu"`
	Memory  *price `yaml:"memory"`
	GPU     *price `yaml:"gpu"`
	Storage *price `yaml:"storage"`
}

// gpuModel is how a host names its GPUs' model (a DNS label).
var gpuModel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// price is a decimal read exactly ("0.0000077"), never through a float.
type price struct {
	r    *big.Rat
	line int
}

func (p *price) UnmarshalYAML(n *yaml.Node) error {
	r, ok := new(big.Rat).SetString(n.Value)
	if n.Kind != yaml.ScalarNode || !ok || !apiv1.IsDecimal(n.Value) {
		return fmt.Errorf("line %d: %q is not a decimal number (write prices as 0.0000077)", n.Line, n.Value)
	}
	if r.Sign() < 0 {
		return fmt.Errorf("line %d: %s is negative; allowed: 0 or more", n.Line, n.Value)
	}
	p.r, p.line = r, n.Line
	return nil
}

func (p *price) rat() *big.Rat {
	if p == nil {
		return nil
	}
	return p.r
}

// Parse reads and validates a price book; an error names the line.
func Parse(data []byte) (*Book, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("price book: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f fileBook
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("price book: %w", err)
	}
	lines := periodLines(&root)
	b := &Book{Currency: f.Currency}
	if b.Currency == "" {
		b.Currency = "USD"
	}
	if len(f.Periods) == 0 {
		return nil, errors.New("price book: periods: at least one is needed")
	}
	for i, fp := range f.Periods {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		p, err := fp.period(line)
		if err != nil {
			return nil, fmt.Errorf("price book: line %d: periods[%d]: %w", line, i, err)
		}
		b.Periods = append(b.Periods, p)
	}
	sort.SliceStable(b.Periods, func(i, j int) bool { return b.Periods[i].From.Before(b.Periods[j].From) })
	for i := 1; i < len(b.Periods); i++ {
		if b.Periods[i].From.Equal(b.Periods[i-1].From) {
			return nil, fmt.Errorf("price book: line %d: periods: a second period from %s", b.Periods[i].Line, b.Periods[i].From.Format(time.RFC3339))
		}
	}
	return b, nil
}

// ParseFile reads the price book at path.
func ParseFile(path string) (*Book, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("price book: %w", err)
	}
	b, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// periodLines are the lines the periods start at.
func periodLines(root *yaml.Node) []int {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "periods" && m.Content[i+1].Kind == yaml.SequenceNode {
			var out []int
			for _, n := range m.Content[i+1].Content {
				out = append(out, n.Line)
			}
			return out
		}
	}
	return nil
}

func (fp filePeriod) period(line int) (Period, error) {
	p := Period{Line: line, Rates: Rates{fp.VCPU.rat(), fp.Memory.rat(), fp.GPU.rat(), fp.Storage.rat()},
		SpotDiscount: fp.SpotDiscount.rat(), Zones: map[string]Rates{}, InstanceTypes: map[string]*big.Rat{}, GPUModels: map[string]*big.Rat{}}
	from, err := parseDate(fp.From)
	if err != nil {
		return p, err
	}
	p.From = from
	if p.VCPU == nil || p.Memory == nil {
		return p, errors.New("vcpu and memory: both are needed (currency per vCPU-second and per GiB-second)")
	}
	if p.SpotDiscount != nil && p.SpotDiscount.Cmp(big.NewRat(1, 1)) > 0 {
		return p, fmt.Errorf("line %d: spotDiscount %s: allowed: 0 to 1 (the share a spot instance does not pay)", fp.SpotDiscount.line, p.SpotDiscount.FloatString(2))
	}
	for z, r := range fp.Zones {
		if z == "" {
			return p, errors.New("zones: a zone's name is empty")
		}
		p.Zones[z] = Rates{r.VCPU.rat(), r.Memory.rat(), r.GPU.rat(), r.Storage.rat()}
	}
	for t, pr := range fp.InstanceTypes {
		if pr == nil || t == "" {
			return p, fmt.Errorf("instanceTypes: %q needs a price per second", t)
		}
		p.InstanceTypes[t] = pr.r
	}
	for m, pr := range fp.GPUModels {
		if pr == nil || !gpuModel.MatchString(m) {
			return p, fmt.Errorf("gpuModels: %q: allowed: a model as hosts name it (eci agent --gpu-model: lowercase letters, digits and '-') with a price per GPU-second", m)
		}
		p.GPUModels[m] = pr.r
	}
	return p, nil
}

// parseDate reads an effective date: 2026-12-01 (midnight UTC) or an RFC
// 3339 time.
func parseDate(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("from: the date the prices take effect is needed (2026-12-01, or an RFC 3339 time)")
	}
	t, err := ParseTime(s)
	if err != nil {
		return t, fmt.Errorf("from %w", err)
	}
	return t, nil
}

// ParseTime reads a date (2026-12-01: midnight UTC) or an RFC 3339 time.
func ParseTime(s string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a date (2026-12-01) or an RFC 3339 time", s)
	}
	return t.UTC(), nil
}
