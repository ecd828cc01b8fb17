package ipam

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error the package returns for a refused request
// wraps one of these, so callers can act on the kind (errors.Is) while the
// text, which reaches the Docker user, names the bad value and what is
// accepted without a sentinel's words in front.
var (
	// ErrInvalidRequest: a subnet, ip-range, option or address that cannot
	// be parsed or is not of the accepted form.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrSubnetRequired: an IPv6 pool without --subnet that the address
	// plan cannot serve (a routed network, an --ip-range alone, no
	// PUBLIC_PREFIX for a public one).
	ErrSubnetRequired = errors.New("subnet required")
	// ErrIPv4Subnet: a user IPv4 subnet was requested; v6bridge is IPv6-only.
	ErrIPv4Subnet = errors.New("ipv4 subnet not accepted")
	// ErrPoolOverlap: the subnet overlaps (or equals) another v6bridge pool.
	ErrPoolOverlap = errors.New("pool overlaps another pool")
	// ErrHostAddress: the subnet contains an address of the host itself.
	ErrHostAddress = errors.New("subnet contains a host address")
	// ErrUnknownPool: an address was requested from a pool ID that does not
	// exist.
	ErrUnknownPool = errors.New("unknown pool")
	// ErrPoolExhausted: no free address is left in the pool's range, or
	// no free automatic subnet in the address plan.
	ErrPoolExhausted = errors.New("pool exhausted")
	// ErrAddressInUse: the requested address is already allocated.
	ErrAddressInUse = errors.New("address in use")
	// ErrOutOfRange: the requested address is not inside the pool.
	ErrOutOfRange = errors.New("address out of range")
	// ErrReservedAddress: the requested address may never be handed out
	// (the subnet-router anycast address, or a placeholder pool's reserved
	// addresses).
	ErrReservedAddress = errors.New("reserved address")
)

// refusal is a refused request: a message for the user that wraps a
// sentinel without repeating its text.
type refusal struct {
	msg  string
	kind error
}

func (e *refusal) Error() string { return e.msg }
func (e *refusal) Unwrap() error { return e.kind }

// refuse returns a refusal of kind with the formatted message.
func refuse(kind error, format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...), kind: kind}
}
