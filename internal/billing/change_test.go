package billing

import (
	"strings"
	"testing"
	"time"
)

func TestPricesNeverChangeThePast(t *testing.T) {
	now := at("2026-11-30T12:00:00Z")
	parse := func(text string) *Book {
		t.Helper()
		b, err := Parse([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cur := parse("currency: USD\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.0000077\n    memory: 0.00000096\n  - from: 2027-01-01\n    vcpu: 0.000008\n    memory: 0.000001\n")
	for _, ok := range []string{
		// the same; a period to come added; the one to come changed or removed
		"currency: USD\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.0000077\n    memory: 0.00000096\n  - from: 2027-01-01\n    vcpu: 0.000008\n    memory: 0.000001\n",
		"currency: USD\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.0000077\n    memory: 0.00000096\n  - from: 2026-12-01\n    vcpu: 0.000007\n    memory: 0.0000009\n",
		"currency: USD\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.0000077\n    memory: 0.00000096\n",
	} {
		if err := CheckChange(cur, parse(ok), now); err != nil {
			t.Errorf("CheckChange(%q): %v", ok, err)
		}
	}
	for text, says := range map[string]string{
		"currency: USD\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.000007\n    memory: 0.00000096\n":                                                        "line 3: the period from 2026-01-01T00:00:00Z has begun: its prices can't change",
		"currency: USD\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.0000077\n    memory: 0.00000096\n    zones:\n      zone-b: {vcpu: 0.00001}\n":            "has begun: its prices can't change",
		"currency: USD\nperiods:\n  - from: 2026-02-01\n    vcpu: 0.0000077\n    memory: 0.00000096\n":                                                       "the period from 2026-01-01T00:00:00Z has begun: it can't be removed",
		"currency: USD\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.0000077\n    memory: 0.00000096\n  - from: 2026-11-01\n    vcpu: 0.1\n    memory: 0.1\n": "line 6: a new period from 2026-11-01T00:00:00Z would change the prices of usage already past",
		"currency: USD\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.0000077\n    memory: 0.00000096\n    gpuModels:\n      nvidia-t4: 0.1\n":                 "has begun: its prices can't change",
		"currency: EUR\nperiods:\n  - from: 2026-01-01\n    vcpu: 0.0000077\n    memory: 0.00000096\n":                                                       "currency: USD to EUR",
	} {
		if err := CheckChange(cur, parse(text), now); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("CheckChange(%q) = %v, want %q", text, err, says)
		}
	}
	if err := CheckChange(nil, cur, time.Now()); err != nil {
		t.Errorf("a first book: %v", err)
	}
}
