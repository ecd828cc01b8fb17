// Package nat turns the desired network state of v6bridge into one nftables
// table (NAT66, published ports, the firewall) and applies it atomically.
//
// The files without a build tag are pure: they build the ruleset from a State
// and render it as nft text for golden tests. The _linux.go files talk to the
// kernel through github.com/google/nftables.
package nat

import (
	"github.com/v6bridge/v6bridge/fwstate"
	"github.com/v6bridge/v6bridge/netspec"
)

// Mode is the outside connectivity of a network (netspec.Mode).
type Mode = netspec.Mode

// Network modes (netspec's).
const (
	ModeNAT      = netspec.ModeNAT
	ModePublic   = netspec.ModePublic
	ModeRouted   = netspec.ModeRouted
	ModeInternal = netspec.ModeInternal
)

// Protocol numbers as the engine sends them in port bindings (netspec's).
const (
	ProtoTCP  = netspec.ProtoTCP
	ProtoUDP  = netspec.ProtoUDP
	ProtoSCTP = netspec.ProtoSCTP
)

// The firewall's input types live in the pure package fwstate, which the
// driver imports without linking google/nftables; nat names them here for
// its own code.
type (
	// State is fwstate.State.
	State = fwstate.State
	// Network is fwstate.Network.
	Network = fwstate.Network
	// Endpoint is fwstate.Endpoint.
	Endpoint = fwstate.Endpoint
	// Port is fwstate.Port.
	Port = fwstate.Port
	// Mapping is fwstate.Mapping.
	Mapping = fwstate.Mapping
	// EndpointUpdate is fwstate.EndpointUpdate.
	EndpointUpdate = fwstate.EndpointUpdate
)
