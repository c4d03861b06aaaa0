package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// An image pulled with a registry credential may be private: on a host
// shared by tenants, the runtime would run it for any group that names it,
// credentials or none. So, as the kubelet's ensure-secret-pulled-images
// check (KEP-2535), the agent remembers which tenants pulled each image
// (by its id) with a credential; a group of another tenant pulls it again
// with its own, and the registry decides. A pull without a credential
// shows the image is public: anyone may use it. An image the agent never
// pulled (the operator's, preloaded) is anyone's, as the kubelet's
// default policy has it.

// imageOwners are the tenants that pulled each private image, by id.
type imageOwners struct {
	mu     sync.Mutex
	owners map[string][]string
	file   string
}

func newImageOwners(stateDir string) *imageOwners {
	o := &imageOwners{owners: map[string][]string{}}
	if stateDir != "" {
		o.file = filepath.Join(stateDir, "images-pulled-private.json")
		if data, err := os.ReadFile(o.file); err == nil {
			_ = json.Unmarshal(data, &o.owners)
		}
	}
	return o
}

// mayUse tells whether tenant may run image id without pulling it again.
func (o *imageOwners) mayUse(id, tenant string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	owners, private := o.owners[id]
	return !private || slices.Contains(owners, tenant)
}

// pulled records that tenant pulled image id, with a credential or not.
func (o *imageOwners) pulled(id, tenant string, withCredential bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	owners, private := o.owners[id]
	switch {
	case !withCredential && !private:
		return nil
	case !withCredential:
		delete(o.owners, id)
	case slices.Contains(owners, tenant):
		return nil
	default:
		o.owners[id] = append(owners, tenant)
	}
	return o.save()
}

// forget drops a removed image.
func (o *imageOwners) forget(id string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.owners[id]; !ok {
		return nil
	}
	delete(o.owners, id)
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
