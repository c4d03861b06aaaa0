package imageref

import "testing"

func TestNormal(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                              "docker.io/library/busybox:latest",
		"busybox:1.36":                         "docker.io/library/busybox:1.36",
		"index.docker.io/library/busybox:1.36": "docker.io/library/busybox:1.36",
		"registry-1.docker.io/me/app":          "docker.io/me/app:latest",
		"198.18.0.1:5000/app:v1":               "198.18.0.1:5000/app:v1",
		"reg.example:5000/a/b/c@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": "reg.example:5000/a/b/c@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	} {
		got, err := Normal(in)
		if err != nil || got != want {
			t.Errorf("Normal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Normal("Not An Image"); err == nil {
		t.Error("Normal accepted a reference with spaces")
	}
}
