package store

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	apiv1 "github.com/eci-dev/eci/api/v1"
)

func keyLine(name string, b byte) string {
	return name + ": " + base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune(b)), 32))) + "\n"
}

func keysOf(t *testing.T, lines ...string) *Keys {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Stored values are sealed: etcd holds no password or file content in the
// clear; keys rotate (a new key first, the old one still opening, a reseal,
// then the old one gone); values written before encryption are read and
// sealed by a reseal; a value sealed with an unknown key names it.
func TestEncryptionAtRest(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	openWith := func(k *Keys) (*Store, *groups) {
		s, err := Open(ctx, Config{DataDir: dir, Keys: k})
		if err != nil {
			t.Fatal(err)
		}
		return s, NewCollection[apiv1.ContainerGroup](s, "containergroups")
	}
	raw := func(s *Store, id string) string {
		resp, err := s.Client.Get(ctx, s.prefix+"v1/containergroups/"+id)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("raw %s: %v", id, err)
		}
		return string(resp.Kvs[0].Value)
	}
	secret := func(id string) *apiv1.ContainerGroup {
		g := group(id)
		g.Spec.ImageRegistryCredentials = []apiv1.RegistryCredential{{Server: "reg.example", Username: "u", Password: "hunter2-password"}}
		g.Spec.Volumes = []apiv1.Volume{{Name: "s", Files: &apiv1.FilesVolume{Files: []apiv1.File{{Path: "token", Content: []byte("secret-file-content")}}}}}
		return g
	}

	// Before encryption: a value in the clear.
	s, c := openWith(nil)
	if err := c.Create(ctx, secret("legacy"), nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(raw(s, "legacy"), "hunter2-password") {
		t.Fatal("the unsealed store did not store the value as it is")
	}
	s.Close()

	k1 := keysOf(t, keyLine("key1", 'a'))
	s, c = openWith(k1)
	if err := c.Create(ctx, secret("g1"), nil); err != nil {
		t.Fatal(err)
	}
	v := raw(s, "g1")
	if !strings.HasPrefix(v, "eci:enc:aesgcm:v1:key1:") || strings.Contains(v, "hunter2") || strings.Contains(v, "secret-file-content") ||
		strings.Contains(v, base64.StdEncoding.EncodeToString([]byte("secret-file-content"))) {
		t.Fatalf("stored value %q is not sealed with key1", v[:min(len(v), 60)])
	}
	// A sealed value copied under another key does not open; a value in the
	// clear under a key not its own is refused.
	if _, err := s.Client.Put(ctx, s.prefix+"v1/containergroups/stolen", v); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "stolen"); err == nil || !strings.Contains(err.Error(), "message authentication failed") {
		t.Fatalf("a sealed value under another key: %v", err)
	}
	if _, err := s.Client.Put(ctx, s.prefix+"v1/containergroups/planted", `{"metadata":{"id":"g1"}}`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "planted"); err == nil || !strings.Contains(err.Error(), "not its own key") {
		t.Fatalf("an object under a key not its own: %v", err)
	}
	for _, k := range []string{"stolen", "planted"} {
		if _, err := s.Client.Delete(ctx, s.prefix+"v1/containergroups/"+k); err != nil {
			t.Fatal(err)
		}
	}
	if g, err := c.Get(ctx, "legacy"); err != nil || g.Spec.ImageRegistryCredentials[0].Password != "hunter2-password" {
		t.Fatalf("a value written before encryption: %v", err)
	}
	if n, err := s.Reseal(ctx); err != nil || n != 1 || !strings.HasPrefix(raw(s, "legacy"), "eci:enc:aesgcm:v1:key1:") {
		t.Fatalf("reseal of the value in the clear: %d (%v)", n, err)
	}
	s.Close()

	// Rotation: key2 first, key1 still opens; a reseal moves every value to key2.
	s, c = openWith(keysOf(t, keyLine("key2", 'b'), keyLine("key1", 'a')))
	if g, err := c.Get(ctx, "g1"); err != nil || g.Spec.Volumes[0].Files.Files[0].Content == nil {
		t.Fatalf("read a key1 value with key2 first: %v", err)
	}
	if n, err := s.Reseal(ctx); err != nil || n != 2 {
		t.Fatalf("reseal after rotation: %d (%v)", n, err)
	}
	if !strings.HasPrefix(raw(s, "g1"), "eci:enc:aesgcm:v1:key2:") {
		t.Fatal("g1 not resealed with key2")
	}
	s.Close()

	s, c = openWith(keysOf(t, keyLine("key2", 'b')))
	if g, err := c.Get(ctx, "g1"); err != nil || g.Spec.ImageRegistryCredentials[0].Password != "hunter2-password" {
		t.Fatalf("read after key1 was removed: %v", err)
	}
	s.Close()

	s, c = openWith(keysOf(t, keyLine("key3", 'c')))
	defer s.Close()
	if _, err := c.Get(ctx, "g1"); err == nil || !strings.Contains(err.Error(), `key "key2"`) {
		t.Fatalf("a value sealed with a key the file lacks: %v", err)
	}
}

func TestKeyFileErrors(t *testing.T) {
	for body, want := range map[string]string{
		"":                                    "holds no key",
		"key1 abc\n":                          "line 1",
		"key1: bm90MzJieXRlcw==\n":            "32 bytes",
		keyLine("a", 'a') + keyLine("a", 'b'): "appears twice",
	} {
		path := filepath.Join(t.TempDir(), "keys")
		_ = os.WriteFile(path, []byte(body), 0o600)
		if _, err := LoadKeys(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	path := filepath.Join(t.TempDir(), "made")
	if err := WriteKeyFile(path); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("a generated key file has mode %v", st.Mode().Perm())
	}
	if _, err := LoadKeys(path); err != nil {
		t.Fatal(err)
	}
}

// The embedded etcd answers only its owner: its clients' socket is 0600 in
// a 0700 directory, and another local user can't connect to it.
func TestEmbeddedEtcdIsPrivate(t *testing.T) {
	s, _ := open(t, t.TempDir())
	endpoint := s.Endpoints()[0]
	sock, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok {
		t.Fatalf("endpoint %s is not a unix socket", endpoint)
	}
	for path, want := range map[string]os.FileMode{sock: 0o600, filepath.Dir(sock): 0o700} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, st.Mode().Perm(), err, want)
		}
	}
	// Another user (nobody) tries to connect.
	cmd := exec.Command("perl", "-MIO::Socket::UNIX", "-e", `IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "refused: $!\n"; print "connected\n"`, sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refused: Permission denied") {
		t.Fatalf("another user connecting to the embedded etcd: %q (%v)", out, err)
	}
	// The owner can (the same check, as root, proves the probe works).
	own, err := exec.Command("perl", "-MIO::Socket::UNIX", "-e", `IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "refused: $!\n"; print "connected\n"`, sock).CombinedOutput()
	if err != nil || !strings.Contains(string(own), "connected") {
		t.Fatalf("the owner connecting: %q (%v)", own, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := s.Client.Get(ctx, "/eci/ping"); err != nil {
		t.Fatal(err)
	}
}
