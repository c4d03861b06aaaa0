package v1

// Meta returns the metadata of a resource; storage and handlers use it to
// treat every resource alike.
func (g *ContainerGroup) Meta() *ObjectMeta { return &g.Metadata }

// Meta returns the metadata of a host.
func (h *Host) Meta() *ObjectMeta { return &h.Metadata }

// Meta returns the metadata of a vSwitch.
func (v *VSwitch) Meta() *ObjectMeta { return &v.Metadata }

// Meta returns the metadata of an event.
func (e *Event) Meta() *ObjectMeta { return &e.Metadata }

// Meta returns the metadata of a tenant.
func (t *Tenant) Meta() *ObjectMeta { return &t.Metadata }

// Meta returns the metadata of a virtual service.
func (v *VirtualService) Meta() *ObjectMeta { return &v.Metadata }

// Meta is the address's metadata.
func (a *InstanceAddress) Meta() *ObjectMeta { return &a.Metadata }

func (c *ImageCache) Meta() *ObjectMeta { return &c.Metadata }
func (c *DataCache) Meta() *ObjectMeta  { return &c.Metadata }
