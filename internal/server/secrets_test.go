package server

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"crypto/tls"

	apiv1 "github.com/eci-dev/eci/api/v1"
	"github.com/eci-dev/eci/internal/client"
	"github.com/eci-dev/eci/internal/poll"
)

// Registry passwords and files content are written, never read back:
// create, get, list and watch show neither to the tenant or the admin, only a
// file's SHA256; the agent of the group's host reads them.
func TestSecretsAreNotReturned(t *testing.T) {
	r := start(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.fakeHost(ctx, t, "h1")
	hostToken := apiv1.TokenSpec{Kind: apiv1.TokenHost, Host: "h1"}

	const password, content = "hunter2-registry-password", "db-password=s3cr3t-file-content"
	g := group("secretive")
	g.Spec.ImageRegistryCredentials = []apiv1.RegistryCredential{{Server: "reg.example", Username: "u", Password: password}}
	g.Spec.Volumes = []apiv1.Volume{{Name: "s", Files: &apiv1.FilesVolume{Files: []apiv1.File{{Path: "db", Content: []byte(content)}}}}}
	acme := r.token(t, apiv1.TokenSpec{Kind: apiv1.TokenTenant, Tenant: "acme"})
	leaks := func(what string, got *apiv1.ContainerGroup) {
		t.Helper()
		if got.Spec.ImageRegistryCredentials[0].Password != "" || got.Spec.ImageRegistryCredentials[0].Username != "u" {
			t.Errorf("%s: credentials %+v", what, got.Spec.ImageRegistryCredentials)
		}
		f := got.Spec.Volumes[0].Files.Files[0]
		sum := sha256.Sum256([]byte(content))
		if f.Content != nil || f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: file %+v, want no content and its SHA256", what, f)
		}
	}
	created, _, err := acme.CreateGroup(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	leaks("create's answer", created)
	id := created.Metadata.ID
	var placed *apiv1.ContainerGroup
	poll.Eventually(t, 20*time.Second, "placed on h1", func() error {
		if placed, err = acme.GetGroup(ctx, id); err != nil {
			return err
		}
		if placed.Status.Host != "h1" {
			return fmt.Errorf("on host %q", placed.Status.Host)
		}
		return nil
	})
	leaks("the tenant's get", placed)
	for who, c := range map[string]*client.Client{"tenant": acme, "admin": r.admin} {
		got, err := c.GetGroup(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		leaks(who+"'s get", got)
		list, err := c.ListGroups(ctx, client.ListOptions{})
		if err != nil || len(list.Items) != 1 {
			t.Fatalf("%s's list: %v", who, err)
		}
		leaks(who+"'s list", &list.Items[0])
		wctx, wcancel := context.WithCancel(ctx)
		events, err := c.WatchGroups(wctx, client.ListOptions{}, "")
		if err != nil {
			t.Fatal(err)
		}
		ev := <-events
		wcancel()
		if ev.Err != nil || ev.Object == nil {
			t.Fatalf("%s's watch: %+v", who, ev)
		}
		leaks(who+"'s watch", ev.Object)
	}
	// Nowhere in the raw answer either, base64 or not.
	req, _ := http.NewRequest("GET", r.srv.URL()+"/v1/containergroups/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+r.srv.AdminToken())
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, secret := range []string{password, content, base64.StdEncoding.EncodeToString([]byte(content))} {
		if strings.Contains(string(body), secret) {
			t.Fatalf("the admin's raw GET holds %q", secret)
		}
	}

	host, err := r.token(t, hostToken).GetGroup(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if host.Spec.ImageRegistryCredentials[0].Password != password || string(host.Spec.Volumes[0].Files.Files[0].Content) != content {
		t.Fatalf("the group's host can't read what it needs: %+v %+v", host.Spec.ImageRegistryCredentials, host.Spec.Volumes[0].Files)
	}
}
