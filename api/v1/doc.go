// Package v1 holds the wire types of the eci instance API, version 1: one file
// per resource (container groups, hosts, vSwitches, events, tenants), their
// validation and normalization. Names follow the public Elastic Container
// Instance API (CreateContainerGroup, DescribeContainerGroups, ...) so that its
// users find what they know; JSON fields are lowerCamelCase.
//
// Quantities on the wire are what users write: vCPU as a number (0.5, 2) and
// memory in GiB (1, 4); internally sizes are integers (package sizes).
package v1
