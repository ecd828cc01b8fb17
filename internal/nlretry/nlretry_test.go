package nlretry

import (
	"errors"
	"fmt"
	"testing"
)

func TestDumpRetriesInterrupted(t *testing.T) {
	tests := []struct {
		name        string
		interrupted int // how many calls fail with an interrupted dump first
		other       error
		wantCalls   int
		wantErr     bool
	}{
		{"first try", 0, nil, 1, false},
		{"two interrupted", 2, nil, 3, false},
		{"wrapped interruption", 1, nil, 2, false},
		{"always interrupted", 99, nil, Attempts, true},
		{"other error is not retried", 0, errors.New("permission denied"), 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got, err := Dump(func() ([]string, error) {
				calls++
				if calls <= tt.interrupted {
					return []string{"partial"}, fmt.Errorf("link list: %w", ErrInterrupted)
				}
				if tt.other != nil {
					return nil, tt.other
				}
				return []string{"a", "b"}, nil
			})
			if calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && len(got) != 2 {
				t.Errorf("got %v, want the complete dump", got)
			}
		})
	}
}
