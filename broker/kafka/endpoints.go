package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddyflow/eddy/broker"
)

// Endpoints travel in the group protocol, both ways:
//
//   - Each member advertises its broker.SessionConfig.Endpoint in the
//     UserData of its join metadata, beside its name (encodeIdentity,
//     version 2).
//   - The group leader's Balance puts the group's endpoint map in the
//     UserData of every member's ConsumerMemberAssignment
//     (encodeEndpoints), and each member's ParseSyncAssignment reads it
//     into the session's endpointView, where Session.Endpoints finds it.
//
// The map is the assignor's plan for the generation: the partitions that
// the cooperative protocol only revokes in this round (to assign them in
// the next) are listed under the member they go to, not under the member
// still holding them. The next round's plan is the same (the assignor is
// deterministic), so the map stays put while partitions move, as Kafka
// Streams' partitions-by-host metadata lists the tasks' target hosts.

// endpointsVersion prefixes the UserData of an assignment.
const endpointsVersion = 1

// encodeEndpoints encodes the endpoint map of a generation:
//
//	version byte (1)
//	generation uvarint
//	endpoint count uvarint, then per endpoint in order:
//	  endpoint (uvarint length, bytes)
//	  topic count uvarint, then per topic in order:
//	    topic (uvarint length, bytes)
//	    partition count uvarint, then each partition uvarint, ascending
//
// Partitions must be sorted by topic and partition.
func encodeEndpoints(generation int32, m map[string][]broker.TopicPartition) []byte {
	out := []byte{endpointsVersion}
	out = binary.AppendUvarint(out, uint64(max(generation, 0)))
	out = binary.AppendUvarint(out, uint64(len(m)))
	for _, ep := range slices.Sorted(maps.Keys(m)) {
		out = appendString(out, ep)
		tps := m[ep]
		var topics int
		for i := range tps {
			if i == 0 || tps[i].Topic != tps[i-1].Topic {
				topics++
			}
		}
		out = binary.AppendUvarint(out, uint64(topics))
		for i := 0; i < len(tps); {
			j := i
			for j < len(tps) && tps[j].Topic == tps[i].Topic {
				j++
			}
			out = appendString(out, tps[i].Topic)
			out = binary.AppendUvarint(out, uint64(j-i))
			for _, tp := range tps[i:j] {
				out = binary.AppendUvarint(out, uint64(tp.Partition))
			}
			i = j
		}
	}
	return out
}

func appendString(out []byte, s string) []byte {
	out = binary.AppendUvarint(out, uint64(len(s)))
	return append(out, s...)
}

var errShortEndpoints = errors.New("truncated or malformed endpoint map")

// decodeEndpoints decodes what encodeEndpoints encoded. It rejects data
// that does not decode exactly, never allocating more than the data's
// length warrants.
func decodeEndpoints(b []byte) (broker.Endpoints, error) {
	if len(b) == 0 || b[0] != endpointsVersion {
		return broker.Endpoints{}, fmt.Errorf("endpoint map: unknown version (data % x)", b[:min(len(b), 1)])
	}
	d := decoder{b: b[1:]}
	gen := d.uvarint(1<<31 - 1)
	out := broker.Endpoints{Generation: int64(gen), Partitions: map[string][]broker.TopicPartition{}}
	n := d.count()
	for range n {
		ep := d.string()
		var tps []broker.TopicPartition
		for range d.count() {
			topic := d.string()
			for range d.count() {
				p := d.uvarint(1<<31 - 1)
				tps = append(tps, broker.TopicPartition{Topic: topic, Partition: int32(p)})
			}
		}
		if d.err != nil {
			break
		}
		if _, dup := out.Partitions[ep]; dup {
			d.err = errShortEndpoints
			break
		}
		out.Partitions[ep] = tps
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = errShortEndpoints
	}
	if d.err != nil {
		return broker.Endpoints{}, fmt.Errorf("endpoint map: %w", d.err)
	}
	return out, nil
}

// decoder reads uvarints and strings, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint(limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > limit {
		d.err = errShortEndpoints
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count of items, each at least one byte long.
func (d *decoder) count() int { return int(d.uvarint(uint64(len(d.b)))) }

func (d *decoder) string() string {
	n := d.uvarint(uint64(len(d.b)))
	if d.err != nil || uint64(len(d.b)) < n {
		d.err = errShortEndpoints
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// syncPlan is the leader's assignment of a generation: each member's
// partitions, and the group's endpoint map in every member's UserData.
// kgo.BalancePlan has no UserData, so syncPlan builds the SyncGroup
// assignments itself.
type syncPlan struct {
	plan     map[string]map[string][]int32 // member id => topic => partitions
	userData []byte
}

// IntoSyncAssignment implements kgo.IntoSyncAssignment: one
// ConsumerMemberAssignment per member, topics and partitions sorted,
// members sorted by id.
func (p syncPlan) IntoSyncAssignment() []kmsg.SyncGroupRequestGroupAssignment {
	out := make([]kmsg.SyncGroupRequestGroupAssignment, 0, len(p.plan))
	for _, member := range slices.Sorted(maps.Keys(p.plan)) {
		topics := p.plan[member]
		var a kmsg.ConsumerMemberAssignment
		for _, topic := range slices.Sorted(maps.Keys(topics)) {
			t := kmsg.NewConsumerMemberAssignmentTopic()
			t.Topic = topic
			t.Partitions = slices.Sorted(slices.Values(topics[topic]))
			a.Topics = append(a.Topics, t)
		}
		a.UserData = p.userData
		sa := kmsg.NewSyncGroupRequestGroupAssignment()
		sa.MemberID = member
		sa.MemberAssignment = a.AppendTo(nil)
		out = append(out, sa)
	}
	return out
}

// endpointView is a session's latest endpoint map; safe for concurrent
// use. ParseSyncAssignment sets it on franz-go's group goroutine;
// Session.Endpoints reads it from anywhere.
type endpointView struct {
	mu     sync.Mutex
	e      broker.Endpoints
	closed bool
}

func (v *endpointView) set(e broker.Endpoints) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.closed {
		v.e = e
	}
}

func (v *endpointView) get() broker.Endpoints {
	v.mu.Lock()
	defer v.mu.Unlock()
	return copyEndpoints(v.e)
}

// close empties the view for good.
func (v *endpointView) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.closed = true
	v.e = broker.Endpoints{}
}

func copyEndpoints(e broker.Endpoints) broker.Endpoints {
	out := broker.Endpoints{Generation: e.Generation}
	if e.Partitions != nil {
		out.Partitions = make(map[string][]broker.TopicPartition, len(e.Partitions))
		for ep, tps := range e.Partitions {
			out.Partitions[ep] = slices.Clone(tps)
		}
	}
	return out
}

// Endpoints returns the group's endpoints as carried by the last
// assignment the member received: the group leader's plan for that
// generation (see the comment at the top of endpoints.go). A leader that
// sent no endpoint map (an eddy version before endpoints) leaves the zero
// Endpoints. Safe for concurrent use, also with the session's other
// methods; zero after Close.
func (s *Session) Endpoints() broker.Endpoints { return s.view.get() }
