// Package archtest holds the test that keeps the layering of
// docs/architecture.md true: which v6bridge package may import which, and
// that Docker's wire format stays in internal/api.
package archtest
