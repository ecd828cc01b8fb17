package ndpproto

// Modes of answering (Config.Mode, NDP_PROXY).
const (
	// ModeNative answers in process: solicitations are captured on the
	// uplink and advertisements sent from it (the default).
	ModeNative = "native"
	// ModeKernel installs kernel proxy-neighbour entries and lets the
	// kernel answer.
	ModeKernel = "kernel"
	// ModeOff answers nothing.
	ModeOff = "off"
)
