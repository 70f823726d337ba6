package kafka

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/brokertest"
)

// newFake starts a one-broker kfake cluster that the test stops at its end.
func newFake(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// openTest opens a Log on brokers that the test closes at its end.
func openTest(t *testing.T, brokers []string) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := Options{Brokers: brokers}
	if testing.Verbose() {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "kafka", Level: hclog.Warn})
	}
	l, err := Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// TestConformance runs the broker conformance suite on a fresh in-process
// kfake cluster per subtest.
func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Log {
		return openTest(t, newFake(t).ListenAddrs())
	})
}

// TestRealKafkaConformance runs the conformance suite against the real
// brokers in EDDY_KAFKA_BROKERS (comma-separated host:port). The suite
// names topics and groups uniquely per run.
func TestRealKafkaConformance(t *testing.T) {
	brokers := os.Getenv("EDDY_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("EDDY_KAFKA_BROKERS not set: real-broker tests skipped")
	}
	brokertest.Run(t, func(t *testing.T) broker.Log {
		return openTest(t, strings.Split(brokers, ","))
	})
}
