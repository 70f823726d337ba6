package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Options configure a Kafka Log. The zero value of every field but
// Brokers means its default.
type Options struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// ClientOptions are appended to the options of every franz-go client
	// the package creates (the admin and producer client of the Log and
	// the client of every Session): SASL, TLS, dialers, client id. They
	// are applied last, so they may also override the package's choices;
	// overriding the isolation level, the partitioner, the group balancer
	// or the transactional id breaks the guarantees of broker.Log.
	ClientOptions []kgo.Opt
	// Logger receives franz-go's warnings and errors and the package's
	// own log lines. Default: a null logger.
	Logger hclog.Logger

	// SessionTimeout is the consumer group session timeout: how long the
	// group coordinator waits for a heartbeat of a member before it
	// removes it and gives its partitions to the others. Default 10s
	// (franz-go's default is 45s): a crashed instance's partitions move
	// in seconds. It must lie within the brokers'
	// group.min.session.timeout.ms (6s by default) and
	// group.max.session.timeout.ms.
	SessionTimeout time.Duration
	// RebalanceTimeout bounds how long a rebalance waits for every member
	// to rejoin. A member holds a rebalance back until its caller's next
	// Commit or Abort (see Session), so this must exceed the longest time
	// between two commits. Default 30s.
	RebalanceTimeout time.Duration
	// HeartbeatInterval is how often a member heartbeats; it is also how
	// soon members notice a rebalance. Default 1s (franz-go's default is
	// 3s), a tenth of the default session timeout.
	HeartbeatInterval time.Duration
	// ReplicationFactor of the topics CreateTopics creates. Default -1:
	// the brokers' default.replication.factor.
	ReplicationFactor int16
	// TransactionTimeout is how long the transaction coordinator lets a
	// transaction stay open before it aborts it: it bounds how long the
	// records of a crashed member keep read-committed readers of its
	// output partitions waiting. It must not exceed the brokers'
	// transaction.max.timeout.ms (15 min by default). Default 10s, as
	// Kafka Streams sets under exactly-once: a transaction lasts one
	// commit interval, and a crashed member stalls readers 10s at most.
	// At-least-once sessions (broker.SessionConfig.AtLeastOnce) have no
	// transactions.
	TransactionTimeout time.Duration
}

// Defaults of Options.
const (
	DefaultSessionTimeout     = 10 * time.Second
	DefaultRebalanceTimeout   = 30 * time.Second
	DefaultHeartbeatInterval  = time.Second
	DefaultTransactionTimeout = 10 * time.Second
	// DefaultPollRecords is the most records Session.Poll returns when
	// asked for max <= 0.
	DefaultPollRecords = 1000
)

// EnsureDefaults fills in the defaults of unset fields.
func (o *Options) EnsureDefaults() {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.RebalanceTimeout == 0 {
		o.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.ReplicationFactor == 0 {
		o.ReplicationFactor = -1
	}
	if o.TransactionTimeout == 0 {
		o.TransactionTimeout = DefaultTransactionTimeout
	}
}

// Validate reports what is wrong with o, after EnsureDefaults.
func (o *Options) Validate() error {
	var errs []error
	if len(o.Brokers) == 0 {
		errs = append(errs, errors.New("no seed brokers"))
	}
	for name, d := range map[string]time.Duration{
		"session timeout": o.SessionTimeout, "rebalance timeout": o.RebalanceTimeout,
		"heartbeat interval": o.HeartbeatInterval, "transaction timeout": o.TransactionTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("negative %s %v", name, d))
		}
	}
	if o.HeartbeatInterval >= o.SessionTimeout {
		errs = append(errs, fmt.Errorf("heartbeat interval %v is not below the session timeout %v", o.HeartbeatInterval, o.SessionTimeout))
	}
	if o.ReplicationFactor < -1 {
		errs = append(errs, fmt.Errorf("replication factor %d", o.ReplicationFactor))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafka: options: %w", err)
	}
	return nil
}

// kgoLogger bridges franz-go's logs at warn and above to an hclog.Logger.
type kgoLogger struct{ l hclog.Logger }

func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.IsWarn() {
		return kgo.LogLevelWarn
	}
	if k.l.IsError() {
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	switch level {
	case kgo.LogLevelError:
		k.l.Error(msg, keyvals...)
	case kgo.LogLevelWarn:
		k.l.Warn(msg, keyvals...)
	}
}
