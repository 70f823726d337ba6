package embedded

import (
	"testing"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/brokertest"
)

// TestConformance runs the broker conformance suite on the in-memory log.
func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Log { return openTest(t, Options{}) })
}
