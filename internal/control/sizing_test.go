package control

import (
	"bytes"
	"testing"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/sizes"
)

func TestSizeCandidates(t *testing.T) {
	s := sizes.FromGiB
	cases := []struct {
		name string
		spec apiv1.ContainerGroupSpec
		want []sizes.Size
	}{
		{"nothing given", apiv1.ContainerGroupSpec{Containers: []apiv1.Container{{}}}, []sizes.Size{s(2, 4)}},
		{"group size rounded", apiv1.ContainerGroupSpec{CPU: 7, Memory: 13}, []sizes.Size{s(8, 16)}},
		{"containers summed", apiv1.ContainerGroupSpec{Containers: []apiv1.Container{{CPU: 0.5, Memory: 1}, {CPU: 1, Memory: 1.5}}}, []sizes.Size{s(2, 4)}},
		{"cpu only from containers", apiv1.ContainerGroupSpec{Containers: []apiv1.Container{{CPU: 1}}}, []sizes.Size{s(1, 2)}},
		{"init container larger", apiv1.ContainerGroupSpec{
			InitContainers: []apiv1.Container{{CPU: 4, Memory: 1}}, Containers: []apiv1.Container{{CPU: 1, Memory: 8}},
		}, []sizes.Size{s(4, 8)}},
		{"specs win, in order, deduplicated", apiv1.ContainerGroupSpec{CPU: 1, Memory: 2, Specs: []string{"2-4Gi", "3-4Gi", "4-4Gi"}}, []sizes.Size{s(2, 4), s(4, 4)}},
	}
	for _, c := range cases {
		got, err := sizeCandidates(&c.spec)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if len(got) != len(c.want) {
			t.Fatalf("%s: got %v, want %v", c.name, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("%s: got %v, want %v", c.name, got, c.want)
			}
		}
	}
}

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
		var g apiv1.ContainerGroup
		if err := apiv1.Decode(bytes.NewReader(body), &g); err != nil {
			return
		}
		if err := apiv1.ValidateContainerGroup(&g); err != nil {
			return
		}
		got, err := sizeCandidates(&g.Spec)
		if err != nil || len(got) == 0 {
			t.Fatalf("valid group has no size: %v (%+v)", err, g.Spec)
		}
	})
}
