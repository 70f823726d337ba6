package embedded

import (
	"slices"

	"github.com/eddyflow/eddy/broker"
)

// Endpoints returns the group's endpoints: for each endpoint its members
// set in their broker.SessionConfig, the partitions the group's last
// rebalance gave them. Like a Kafka group leader's plan, this lists a
// partition that is still being revoked from one member under the member
// it goes to. Generation counts the group's rebalances. The group is in
// this process, so the view is always current. Safe for concurrent use;
// the zero Endpoints once the session is closed or fenced.
func (s *Session) Endpoints() broker.Endpoints {
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.checkLocked() != nil {
		return broker.Endpoints{}
	}
	out := broker.Endpoints{Generation: s.g.generation, Partitions: map[string][]broker.TopicPartition{}}
	for _, m := range s.g.members {
		ep := m.cfg.Endpoint
		if ep == "" {
			continue
		}
		tps := out.Partitions[ep]
		if tps == nil {
			tps = []broker.TopicPartition{}
		}
		for tp := range m.target {
			tps = append(tps, tp)
		}
		out.Partitions[ep] = tps
	}
	for _, tps := range out.Partitions {
		slices.SortFunc(tps, compareTP)
	}
	return out
}
