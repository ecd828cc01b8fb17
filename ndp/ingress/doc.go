// Package ingress is the in-kernel part of the NDP responder: the
// nftables netdev table on an uplink's ingress that drops the
// solicitations for addresses nobody answers for and, in native mode,
// answers the common solicitations for answered addresses in the kernel,
// within budgets. ndpproto.PlanIngress and UpdateIngress decide what the
// table holds; this package builds its sets and rules (Table, DropRule,
// AddAnswerRules, AddrElements, AnswerElements) and names its counters'
// tags; the responder (package ndp, ingress_linux.go) queues and applies
// them on its own nftables connection.
package ingress
