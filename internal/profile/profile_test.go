package profile

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := map[string]string{
		KeyVSwitchIDs: "vsw-a, vsw-b", KeySecurityGroupID: "sg-1", KeyVpcID: "vpc-1", KeyEnableClusterIP: "true",
		KeyFeatureGates: "A=true,B=false", "resourceGroupId": "rg-1", KeyDefaultSize: "0.5-1Gi",
		KeySelectors: `[{"name":"web","objectSelector":{"matchLabels":{"app":"web"}},"effect":{"annotations":{"k8s.aliyun.com/eci-use-specs":"2-4Gi"}}},
		               {"name":"batch","namespaceSelector":{"matchExpressions":[{"key":"team","operator":"In","values":["data"]}]},"policy":"normalNodePrefer","unschedulableSeconds":5}]`,
	}
	p, err := Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.VSwitchIDs, "|") != "vsw-a|vsw-b" || p.SecurityGroupID != "sg-1" || p.VpcID != "vpc-1" || !p.EnableClusterIP ||
		!p.FeatureGates["A"] || p.FeatureGates["B"] || len(p.Selectors) != 2 || p.Selectors[1].UnschedulableSeconds != 5 ||
		strings.Join(p.Ignored, ",") != "resourceGroupId" || p.DefaultSize.MilliCPU != 500 || p.DefaultSize.MemoryMiB != 1024 {
		t.Fatalf("parsed %+v", p)
	}

	for _, tc := range []struct {
		name string
		data map[string]string
		want []string // every part must be in the error
	}{
		{"JSON syntax: line and column", map[string]string{KeySelectors: "[\n  {\"name\": \"a\",}\n]"}, []string{"selectors", "line 2, column 16"}},
		{"unknown field", map[string]string{KeySelectors: `[{"name":"a","objectSelecter":{}}]`}, []string{"selectors[0]", `unknown field "objectSelecter"`, "allowed: name, namespaceSelector"}},
		{"wrong type", map[string]string{KeySelectors: `[{"name":"a","effect":{"labels":{"x":1}}}]`}, []string{"selectors[0]", "effect.labels", "number is not a string"}},
		{"name required", map[string]string{KeySelectors: `[{"objectSelector":{}}]`}, []string{"selectors[0]", "name: required"}},
		{"name twice", map[string]string{KeySelectors: `[{"name":"a"},{"name":"a"}]`}, []string{`selectors[1] (a)`, "used twice"}},
		{"bad operator", map[string]string{KeySelectors: `[{"name":"a","objectSelector":{"matchExpressions":[{"key":"x","operator":"Gt","values":["1"]}]}}]`}, []string{"selectors[0] (a)", "objectSelector", "matchExpressions[0]", `"Gt"`, "In, NotIn, Exists, DoesNotExist"}},
		{"In without values", map[string]string{KeySelectors: `[{"name":"a","namespaceSelector":{"matchExpressions":[{"key":"x","operator":"In"}]}}]`}, []string{"namespaceSelector", "needs values"}},
		{"bad policy", map[string]string{KeySelectors: `[{"name":"a","policy":"always"}]`}, []string{"policy", `"always"`, "virtualNodeOnly, fair, normalNodePrefer"}},
		{"seconds without normalNodePrefer", map[string]string{KeySelectors: `[{"name":"a","unschedulableSeconds":5}]`}, []string{"unschedulableSeconds", "only for policy normalNodePrefer"}},
		{"bad label value", map[string]string{KeySelectors: `[{"name":"a","effect":{"labels":{"x":"a b"}}}]`}, []string{"effect.labels", `"a b"`}},
		{"bad annotation key", map[string]string{KeySelectors: `[{"name":"a","effect":{"annotations":{"a b":"x"}}}]`}, []string{"effect.annotations", `"a b"`}},
		{"bad bool", map[string]string{KeyEnableClusterIP: "yes please"}, []string{"enableClusterIp", "true or false"}},
		{"unsupported default size", map[string]string{KeyDefaultSize: "3-3Gi"}, []string{"defaultSize", `"3-3Gi"`, "not a supported size"}},
		{"default size not a size", map[string]string{KeyDefaultSize: "big"}, []string{"defaultSize", "want <vCPU>-<memory>Gi"}},
		{"bad gates", map[string]string{KeyFeatureGates: "A"}, []string{"featureGates", "name=true"}},
		{"more after the array", map[string]string{KeySelectors: `[]]`}, []string{"selectors", "more after the JSON array"}},
		{"not an array", map[string]string{KeySelectors: `{"name":"a"}`}, []string{"selectors", "line 1, column 1", "object is not a JSON array"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
