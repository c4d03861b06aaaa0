package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The record of private images: a name pulled with a credential is its
// tenant's from before the pull, and its repository another tenant's
// while the pull is under way; the record survives a restart; another
// tenant's successful pull (with no credential) makes the name public and
// lets that tenant run the id; an image that was anyone's stays so; an
// unreadable record stops the agent rather than make every image public.
func TestImageOwners(t *testing.T) {
	dir := t.TempDir()
	o, err := newImageOwners(dir)
	if err != nil {
		t.Fatal(err)
	}
	const ref, id = "reg.example/app:v1", "sha256:aa"
	done, err := o.pulling(ref, "acme", true)
	if err != nil {
		t.Fatal(err)
	}
	if o.mayUse("sha256:unknown-yet", ref, "umbrella") || o.mayUse("sha256:other", "reg.example/app@sha256:bb", "umbrella") {
		t.Fatal("a repository being pulled with acme's credential is anyone's meanwhile")
	}
	if err := o.pulled(id, ref, "acme", true, false); err != nil {
		t.Fatal(err)
	}
	done()
	again, err := newImageOwners(dir) // a restart
	if err != nil {
		t.Fatal(err)
	}
	if !again.mayUse(id, ref, "acme") || again.mayUse(id, ref, "umbrella") || again.mayUse(id, "other.example/copy:1", "umbrella") {
		t.Fatal("after a restart the private image is not acme's alone (by id and by name)")
	}
	if err := again.pulled(id, ref, "umbrella", false, false); err != nil {
		t.Fatal(err)
	}
	if !again.mayUse(id, ref, "umbrella") || again.mayUse(id, ref, "initech") {
		t.Fatal("umbrella's own pull did not let it run the image, or let a third tenant")
	}
	// An image that was anyone's stays so after a credentialed pull.
	if err := again.pulled("sha256:public", "docker.io/library/nginx:1", "acme", true, true); err != nil {
		t.Fatal(err)
	}
	if !again.mayUse("sha256:public", "docker.io/library/nginx:1", "umbrella") {
		t.Fatal("a credentialed pull made an image that was anyone's private")
	}
	if err := again.forget(id); err != nil {
		t.Fatal(err)
	}
	if !again.mayUse(id, "reg.example/app@sha256:cc", "initech") {
		t.Fatal("a removed image's record is kept")
	}
	if err := os.WriteFile(filepath.Join(dir, "images-pulled-private.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newImageOwners(dir); err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("a corrupt record was taken: %v", err)
	}
}

// A cache's failure says only its kind (never what answered at an
// address), and a host's report carries one failure a cache.
func TestPullFailureKinds(t *testing.T) {
	for msg, want := range map[string]string{
		`failed to resolve reference "198.18.0.5:2379/x:1": failed to do request: Head "https://198.18.0.5:2379/v2/x/manifests/1": dial tcp 198.18.0.5:2379: connect: connection refused`: "could not be reached",
		`pull r/x:1: failed to authorize: failed to fetch anonymous token: unexpected status: 401 Unauthorized`:                                                                           "unauthorized",
		`pull r/x:1: not found`: "not found",
		`something else entirely, with a long body ` + strings.Repeat("x", 2000): "the pull failed",
	} {
		if got := pullFailure(errors.New(msg), "reg.example/x:1"); !strings.Contains(got, want) || len(got) > 100 {
			t.Errorf("%.60s: %q, want %q", msg, got, want)
		}
	}
	// The tenant's own words (its image's name) don't pick the kind.
	img := "reg.example:4010/unauthorized-404:1"
	if got := pullFailure(errors.New("pull "+img+`: failed to resolve "`+img+`": eof`), img); got != "the pull failed" {
		t.Errorf("an image named for a kind: %q", got)
	}
}
