package driver

// NetworkStatus is one network as `v6bridge status` shows it.
type NetworkStatus struct {
	Network
	// Problem is why the last Reconcile could not bring the network up
	// (its bridge, an endpoint's link); empty when it is fine.
	Problem   string `json:",omitempty"`
	Endpoints []EndpointStatus
}

// EndpointStatus is one endpoint as `v6bridge status` shows it.
type EndpointStatus struct {
	ID      string
	Address string `json:",omitempty"`
	MAC     string
	Veth    string
	Joined  bool
	// Ports are the host ports that lead to this address, e.g.
	// "[::]:8081->80/tcp"; Open the container ports open directly on it
	// (public and routed networks), e.g. "80/tcp".
	Ports string `json:",omitempty"`
	Open  string `json:",omitempty"`
}

// Status returns a snapshot of the networks and their endpoints, sorted.
func (d *Driver) Status() []NetworkStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []NetworkStatus
	for _, n := range d.sortedNetworks() {
		ns := NetworkStatus{Network: *n, Problem: d.problems[n.ID]}
		for _, e := range d.sortedEndpoints() {
			if e.NetworkID != n.ID {
				continue
			}
			ports, open := d.pub.entry(e)
			es := EndpointStatus{ID: e.ID, MAC: e.MAC, Veth: e.HostVeth, Joined: e.Joined, Ports: formatMappings(ports), Open: formatOpen(open)}
			if e.Addr.IsValid() {
				es.Address = e.Addr.Addr().String()
			}
			ns.Endpoints = append(ns.Endpoints, es)
		}
		out = append(out, ns)
	}
	return out
}

// Identity returns the id of the state directory the driver runs on and
// its host path (Config.Instance, Config.StateDir).
func (d *Driver) Identity() (id, stateDir string) { return d.cfg.Instance, d.cfg.StateDir }
