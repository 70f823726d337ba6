package kafka

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddyflow/eddy/broker"
)

// protocolName is the group protocol of eddy's members. Every member of a
// group must run the same Assignor: the group leader's one decides.
const protocolName = "eddy-copartitioned"

// balancer is a cooperative kgo.GroupBalancer that assigns partitions with
// a broker.Assignor over eddy's member names rather than Kafka's random
// member ids, so the assignment is deterministic (broker.CoPartitioned
// deals partition p of every topic to the same member).
//
// Each member puts its name, a join time (nanoseconds since the epoch)
// and its endpoint in the UserData of its join metadata. If two members
// share a name, the
// one that joined last is the member of that name and the other gets
// nothing: it is a zombie about to be fenced (its transactional id is the
// same, so the newer session's producer has fenced it already).
//
// Partitions that move from one member to another are first only revoked,
// then assigned in the next round of the cooperative protocol
// (BalancePlan.AdjustCooperative): no partition is ever owned by two
// members at once.
//
// The leader also sends every member the group's endpoint map, in the
// UserData of its assignment; ParseSyncAssignment keeps it in view. See
// endpoints.go.
type balancer struct {
	name     string
	joined   int64
	endpoint string
	assignor broker.Assignor
	logger   hclog.Logger
	view     *endpointView
}

var _ kgo.GroupBalancer = (*balancer)(nil)

func (*balancer) ProtocolName() string { return protocolName }
func (*balancer) IsCooperative() bool  { return true }

func (b *balancer) JoinGroupMetadata(topics []string, current map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = topics
	meta.Generation = generation
	for _, topic := range slices.Sorted(maps.Keys(current)) {
		owned := kmsg.NewConsumerMemberMetadataOwnedPartition()
		owned.Topic = topic
		owned.Partitions = current[topic]
		meta.OwnedPartitions = append(meta.OwnedPartitions, owned)
	}
	meta.UserData = encodeIdentity(b.name, b.joined, b.endpoint)
	return meta.AppendTo(nil)
}

// ParseSyncAssignment returns the member's partitions and keeps the
// group's endpoint map that came with them in b.view. It runs on
// franz-go's group goroutine when a SyncGroup response arrives.
func (b *balancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(assignment); err != nil {
		return nil, fmt.Errorf("sync assignment parse failed: %w", err)
	}
	out := make(map[string][]int32, len(a.Topics))
	for _, t := range a.Topics {
		out[t.Topic] = t.Partitions
	}
	var eps broker.Endpoints
	if len(a.UserData) > 0 {
		var err error
		if eps, err = decodeEndpoints(a.UserData); err != nil {
			b.logger.Warn("the group leader's assignment carries an endpoint map that does not decode; endpoints unknown", "error", err)
		}
	}
	if b.view != nil {
		b.view.set(eps)
	}
	return out, nil
}

func (b *balancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	if err != nil {
		return nil, nil, err
	}
	return cb, cb.MemberTopics(), nil
}

// Balance implements kgo.ConsumerBalancerBalance. It returns a syncPlan:
// the assignor's plan adjusted for the cooperative protocol, with the
// group's endpoint map, the plan before that adjustment, in every
// member's assignment.
func (b *balancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	type member struct {
		m        *kmsg.JoinGroupResponseMember
		joined   int64
		endpoint string
	}
	byName := map[string]member{}
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		id, ok := decodeIdentity(meta.UserData)
		if !ok {
			b.logger.Warn("group member without an eddy identity; it gets no partitions", "member_id", m.MemberID)
			return
		}
		name := id.name
		if have, dup := byName[name]; dup {
			older, newer := have, member{m, id.joined, id.endpoint}
			if cmp.Or(cmp.Compare(older.joined, newer.joined), cmp.Compare(older.m.MemberID, newer.m.MemberID)) > 0 {
				older, newer = newer, older
			}
			b.logger.Warn("two group members with one name; the older gets no partitions",
				"member", name, "older", older.m.MemberID, "newer", newer.m.MemberID)
			byName[name] = newer
			return
		}
		byName[name] = member{m, id.joined, id.endpoint}
	})
	names := slices.Sorted(maps.Keys(byName))
	plan := cb.NewPlan()
	taken := map[broker.TopicPartition]bool{}
	// endpoints are the plan before AdjustCooperative: partitions that
	// move are listed under the member they go to (see endpoints.go).
	endpoints := map[string][]broker.TopicPartition{}
	for _, m := range byName {
		if m.endpoint != "" && endpoints[m.endpoint] == nil {
			endpoints[m.endpoint] = []broker.TopicPartition{}
		}
	}
	for name, tps := range b.assignor(names, maps.Clone(topics)) {
		m, ok := byName[name]
		if !ok {
			b.logger.Warn("assignor returned an unknown member; ignoring its partitions", "member", name)
			continue
		}
		for _, tp := range tps {
			if n, ok := topics[tp.Topic]; !ok || tp.Partition < 0 || tp.Partition >= n || taken[tp] {
				b.logger.Warn("assignor returned a partition that is unknown or already assigned; ignoring it",
					"member", name, "partition", tp.String())
				continue
			}
			taken[tp] = true
			plan.AddPartition(m.m, tp.Topic, tp.Partition)
			if m.endpoint != "" {
				endpoints[m.endpoint] = append(endpoints[m.endpoint], tp)
			}
		}
	}
	plan.AdjustCooperative(cb)
	for _, tps := range endpoints {
		slices.SortFunc(tps, compareTP)
	}
	return syncPlan{plan: plan.AsMemberIDMap(), userData: encodeEndpoints(cb.Info().Generation, endpoints)}
}

// identity is what a member says of itself in the UserData of its join
// metadata.
type identity struct {
	name     string
	joined   int64 // nanoseconds since the epoch
	endpoint string
}

// identityVersion prefixes the UserData of eddy's join metadata. Version
// 1 is the version byte, the join time (8 bytes, big endian) and the
// name; version 2 adds the endpoint: the version byte, the join time, the
// name's length (uvarint), the name and the endpoint. A leader reads both
// (a version-1 member has no endpoint); an eddy leader that knows only
// version 1 gives version-2 members nothing, with a warning, until it
// leaves the group and a newer member leads.
const identityVersion = 2

func encodeIdentity(name string, joined int64, endpoint string) []byte {
	out := []byte{identityVersion}
	out = binary.BigEndian.AppendUint64(out, uint64(joined))
	out = appendString(out, name)
	return append(out, endpoint...)
}

func decodeIdentity(b []byte) (identity, bool) {
	if len(b) < 9 {
		return identity{}, false
	}
	id := identity{joined: int64(binary.BigEndian.Uint64(b[1:9]))}
	switch b[0] {
	case 1:
		id.name = string(b[9:])
	case 2:
		n, k := binary.Uvarint(b[9:])
		rest := b[9:]
		if k <= 0 || n > uint64(len(rest)-k) {
			return identity{}, false
		}
		rest = rest[k:]
		id.name, id.endpoint = string(rest[:n]), string(rest[n:])
	default:
		return identity{}, false
	}
	return id, true
}
