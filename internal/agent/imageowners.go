package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// An image pulled with a registry credential may be private: on a host
// shared by tenants, the runtime would run it for any group that names it,
// credentials or none. So, as the kubelet's ensure-secret-pulled-images
// check (KEP-2535), the agent remembers which tenants pulled each image
// with a credential, by its id and by its name; a group of another tenant
// pulls it again with its own, and the registry decides. The name is
// recorded before the pull (a crash midway leaves it private), the id
// after; a credentialed pull holds its registry alone, so no other group
// finds the image between the pull and the record (pullguard.go). A pull
// of a name without a credential shows that name is public, not the id
// (another name could resolve to the same content). An image the agent
// never pulled with a credential (the operator's, preloaded; a public one)
// is anyone's, as the kubelet's default policy has it. An unreadable
// record stops the agent: it must not fail open.

// imageOwners are the tenants that pulled each private image, by "id:"
// and "ref:" keys.
type imageOwners struct {
	mu     sync.Mutex
	owners map[string][]string
	file   string
}

func newImageOwners(stateDir string) (*imageOwners, error) {
	o := &imageOwners{owners: map[string][]string{}}
	if stateDir == "" {
		return o, nil
	}
	o.file = filepath.Join(stateDir, "images-pulled-private.json")
	data, err := os.ReadFile(o.file)
	if errors.Is(err, fs.ErrNotExist) {
		return o, nil
	}
	if err == nil {
		err = json.Unmarshal(data, &o.owners)
	}
	if err != nil {
		return nil, fmt.Errorf("the record of images pulled with credentials (%s) is unreadable, and without it any tenant could run another's private image: remove the images pulled with credentials (crictl rmi), then the file: %w", o.file, err)
	}
	return o, nil
}

// mayUse tells whether tenant may run image id, named ref, without
// pulling it again.
func (o *imageOwners) mayUse(id, ref, tenant string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, key := range []string{"id:" + id, "ref:" + ref} {
		if owners, private := o.owners[key]; private && !slices.Contains(owners, tenant) {
			return false
		}
	}
	return true
}

// privateTo are the tenants image id is private to (none: anyone's).
func (o *imageOwners) privateTo(id string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.owners["id:"+id])
}

// pulling records, before a credentialed pull, that ref is tenant's.
func (o *imageOwners) pulling(ref, tenant string) error {
	return o.add(tenant, "ref:"+ref)
}

// pulled records a pull of ref, image id: with a credential, both are
// tenant's; without, ref is public.
func (o *imageOwners) pulled(id, ref, tenant string, withCredential bool) error {
	if withCredential {
		return o.add(tenant, "id:"+id, "ref:"+ref)
	}
	return o.drop("ref:" + ref)
}

// forget drops a removed image.
func (o *imageOwners) forget(id string) error { return o.drop("id:" + id) }

func (o *imageOwners) add(tenant string, keys ...string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	changed := false
	for _, k := range keys {
		if !slices.Contains(o.owners[k], tenant) {
			o.owners[k], changed = append(o.owners[k], tenant), true
		}
	}
	if !changed {
		return nil
	}
	return o.save()
}

func (o *imageOwners) drop(key string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.owners[key]; !ok {
		return nil
	}
	delete(o.owners, key)
	return o.save()
}

func (o *imageOwners) save() error {
	if o.file == "" {
		return nil
	}
	data, err := json.Marshal(o.owners)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(o.file), 0o700); err != nil {
		return err
	}
	tmp := o.file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, o.file)
}
