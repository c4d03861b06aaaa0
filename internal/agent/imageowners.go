package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// An image pulled with a registry credential may be private: on a host
// shared by tenants, the runtime would run it for any group that names it,
// credentials or none. So, as the kubelet's ensure-secret-pulled-images
// check (KEP-2535), the agent remembers which tenants may run each image
// that came in through a credentialed pull, by its id and by its name: a
// group of another tenant pulls it again (with its own credential, or
// none) and the registry decides; a pull that succeeds adds its tenant.
// The name is recorded before the pull (a crash midway leaves it
// private), the id after; while a credentialed pull of a repository is
// under way, another tenant finds no image of that repository present
// (the pull shares its registry's lock with the others). An image that
// was on the host for anyone before (the operator's, preloaded; a public
// one) stays anyone's whoever pulls it again. An unreadable record stops
// the agent: it must not fail open.

// imageOwners are the tenants that may run each private image, by "id:"
// and "ref:" keys, and the credentialed pulls under way by repository.
type imageOwners struct {
	mu       sync.Mutex
	owners   map[string][]string
	inFlight map[string][]string // repository: the tenants pulling it with a credential
	file     string
}

func newImageOwners(stateDir string) (*imageOwners, error) {
	o := &imageOwners{owners: map[string][]string{}, inFlight: map[string][]string{}}
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

// repository is ref without its tag or digest.
func repository(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
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
	if pulling := o.inFlight[repository(ref)]; len(pulling) > 0 && !slices.Contains(pulling, tenant) {
		return false // another tenant's credentialed pull of it is under way
	}
	return true
}

// isOpen tells whether image id, named ref, is anyone's: no tenant's
// record names it.
func (o *imageOwners) isOpen(id, ref string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, byID := o.owners["id:"+id]
	_, byRef := o.owners["ref:"+ref]
	return !byID && !byRef
}

// privateTo are the tenants image id is private to (none: anyone's).
func (o *imageOwners) privateTo(id string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.owners["id:"+id])
}

// pulling records, before a pull by tenant, that ref is tenant's when the
// pull has a credential; it returns what ends the pull's in-flight mark.
func (o *imageOwners) pulling(ref, tenant string, withCredential bool) (func(), error) {
	if !withCredential {
		return func() {}, nil
	}
	repo := repository(ref)
	o.mu.Lock()
	o.inFlight[repo] = append(o.inFlight[repo], tenant)
	o.mu.Unlock()
	done := func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if i := slices.Index(o.inFlight[repo], tenant); i >= 0 {
			o.inFlight[repo] = slices.Delete(o.inFlight[repo], i, i+1)
		}
		if len(o.inFlight[repo]) == 0 {
			delete(o.inFlight, repo)
		}
	}
	if err := o.add(tenant, "ref:"+ref); err != nil {
		done()
		return nil, err
	}
	return done, nil
}

// pulled records tenant's pull of ref, image id. An image that was there
// for anyone before (wasOpen) stays so. Otherwise a credentialed pull makes
// both the name and the id tenant's (the id anyone's no more), and one
// without a credential makes the name public and adds tenant to the id's.
func (o *imageOwners) pulled(id, ref, tenant string, withCredential, wasOpen bool) error {
	switch {
	case wasOpen:
		return o.drop("ref:" + ref)
	case withCredential:
		return o.add(tenant, "id:"+id, "ref:"+ref)
	}
	if err := o.drop("ref:" + ref); err != nil {
		return err
	}
	o.mu.Lock()
	_, private := o.owners["id:"+id]
	o.mu.Unlock()
	if !private {
		return nil
	}
	return o.add(tenant, "id:"+id)
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

// save writes the record through to the disk (a power loss must not
// leave it empty).
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
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, o.file)
}
