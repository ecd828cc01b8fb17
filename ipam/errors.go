package ipam

import "errors"

// Sentinel errors. Every error the package returns for a refused request
// wraps one of these with %w, so callers can act on the kind (errors.Is)
// while the text, which reaches the Docker user, names the bad value and what
// is accepted.
var (
	// ErrInvalidRequest: a subnet, ip-range, option or address that cannot
	// be parsed or is not of the accepted form.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrSubnetRequired: an IPv6 pool was requested without --subnet.
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
	// ErrPoolExhausted: no free address is left in the pool's range.
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
