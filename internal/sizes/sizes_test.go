package sizes

import (
	"strings"
	"testing"
)

func TestRound(t *testing.T) {
	gib := func(cpu, mem float64) Size { return Size{MilliCPU: int64(cpu * 1000), MemoryMiB: int64(mem * 1024)} }
	cases := []struct {
		req, want Size
		ok        bool
	}{
		{gib(7, 13), gib(8, 16), true},
		{gib(2, 4), gib(2, 4), true},
		{gib(0.1, 0.1), gib(0.25, 0.5), true},
		{gib(0.25, 1.5), gib(0.5, 2), true},
		{gib(1, 16), gib(2, 16), true},
		{gib(3, 1), gib(4, 2), true},
		{gib(48, 100), gib(52, 192), true},
		{gib(64, 512), gib(64, 512), true},
		{gib(65, 1), Size{}, false},
		{gib(1, 600), Size{}, false},
	}
	for _, c := range cases {
		got, ok := Round(c.req)
		if got != c.want || ok != c.ok {
			t.Errorf("Round(%s) = %s, %v; want %s, %v", c.req, got, ok, c.want, c.ok)
		}
	}
}

func TestSupportedTableSizeAndOrder(t *testing.T) {
	if n := len(Supported); n != 44 {
		t.Fatalf("%d sizes in the table, want 44", n)
	}
	for i := 1; i < len(Supported); i++ {
		a, b := Supported[i-1], Supported[i]
		if a.MilliCPU > b.MilliCPU || (a.MilliCPU == b.MilliCPU && a.MemoryMiB >= b.MemoryMiB) {
			t.Fatalf("table not ordered at %d: %s then %s", i, a, b)
		}
	}
}

func TestStringAndParse(t *testing.T) {
	for in, want := range map[string]string{
		"2-4Gi": "2.0-4.0Gi", "0.5-1Gi": "0.5-1.0Gi", "0.25-0.5Gi": "0.25-0.5Gi", "2.0-4.0Gi": "2.0-4.0Gi", "8-16": "8.0-16.0Gi",
	} {
		s, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if s.String() != want {
			t.Errorf("Parse(%q).String() = %q, want %q", in, s, want)
		}
	}
	for _, bad := range []string{"", "2", "x-4Gi", "2-yGi", "-1-4Gi", "0-4Gi", "2-0Gi"} {
		if _, err := Parse(bad); err == nil || !strings.Contains(err.Error(), "2-4Gi") {
			t.Errorf("Parse(%q): want an error showing the expected form, got %v", bad, err)
		}
	}
}

func TestTogether(t *testing.T) {
	for _, c := range []struct {
		name              string
		containers, inits []Size
		want              Size
	}{
		{"nothing", nil, nil, Size{}},
		{"containers summed", []Size{{500, 1024}, {1000, 1536}}, nil, Size{1500, 2560}},
		{"an init container larger in one dimension", []Size{{1000, 8192}}, []Size{{4000, 1024}, {2000, 512}}, Size{4000, 8192}},
	} {
		if got := Together(c.containers, c.inits); got != c.want {
			t.Errorf("%s: Together = %v, want %v", c.name, got, c.want)
		}
	}
	if got := FromGiB(0.25, 0.5); got != (Size{250, 512}) {
		t.Errorf("FromGiB(0.25, 0.5) = %+v", got)
	}
}
