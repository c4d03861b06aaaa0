package v1

import (
	"bytes"
	"testing"
)

// FuzzCreateBody feeds arbitrary bodies through what the server does with a
// create request: strict decode, validation, size derivation. None may panic,
// and a body that validates must yield at least one supported size.
func FuzzCreateBody(f *testing.F) {
	seeds := []string{
		`{"metadata":{"name":"web"},"spec":{"containers":[{"name":"app","image":"busybox"}]}}`,
		`{"metadata":{"name":"web"},"spec":{"cpu":7,"memory":13,"containers":[{"name":"a","image":"b","cpu":1}]}}`,
		`{"metadata":{"name":"w"},"spec":{"specs":["2-4Gi","0.5-1Gi"],"containers":[{"name":"a","image":"b"}],"volumes":[{"name":"v","files":{"files":[{"path":"a","content":"aGk="}]}}]}}`,
		`{"metadata":{"name":"w"},"spec":{"initContainers":[{"name":"i","image":"b","memory":600}],"containers":[{"name":"a","image":"b"}]}}`,
		`{"spec":{"containers":[{"name":"a","image":"b","livenessProbe":{"httpGet":{"port":80}}}]}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var g ContainerGroup
		if err := Decode(bytes.NewReader(body), &g); err != nil {
			return
		}
		if err := ValidateContainerGroup(&g); err != nil {
			return
		}
		got, err := SizeCandidates(&g.Spec)
		if err != nil || len(got) == 0 {
			t.Fatalf("valid group has no size: %v (%+v)", err, g.Spec)
		}
	})
}
