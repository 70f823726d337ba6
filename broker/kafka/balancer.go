package kafka

import (
	"cmp"
	"encoding/binary"
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
// Each member puts its name and a join time (nanoseconds since the epoch)
// in the UserData of its join metadata. If two members share a name, the
// one that joined last is the member of that name and the other gets
// nothing: it is a zombie about to be fenced (its transactional id is the
// same, so the newer session's producer has fenced it already).
//
// Partitions that move from one member to another are first only revoked,
// then assigned in the next round of the cooperative protocol
// (BalancePlan.AdjustCooperative): no partition is ever owned by two
// members at once.
type balancer struct {
	name     string
	joined   int64
	assignor broker.Assignor
	logger   hclog.Logger
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
	meta.UserData = encodeIdentity(b.name, b.joined)
	return meta.AppendTo(nil)
}

func (*balancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	return kgo.ParseConsumerSyncAssignment(assignment)
}

func (b *balancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	cb, err := kgo.NewConsumerBalancer(b, members)
	if err != nil {
		return nil, nil, err
	}
	return cb, cb.MemberTopics(), nil
}

// Balance implements kgo.ConsumerBalancerBalance.
func (b *balancer) Balance(cb *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	type member struct {
		m      *kmsg.JoinGroupResponseMember
		joined int64
	}
	byName := map[string]member{}
	cb.EachMember(func(m *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		name, joined, ok := decodeIdentity(meta.UserData)
		if !ok {
			b.logger.Warn("group member without an eddy identity; it gets no partitions", "member_id", m.MemberID)
			return
		}
		if have, dup := byName[name]; dup {
			older, newer := have, member{m, joined}
			if cmp.Or(cmp.Compare(older.joined, newer.joined), cmp.Compare(older.m.MemberID, newer.m.MemberID)) > 0 {
				older, newer = newer, older
			}
			b.logger.Warn("two group members with one name; the older gets no partitions",
				"member", name, "older", older.m.MemberID, "newer", newer.m.MemberID)
			byName[name] = newer
			return
		}
		byName[name] = member{m, joined}
	})
	names := slices.Sorted(maps.Keys(byName))
	plan := cb.NewPlan()
	taken := map[broker.TopicPartition]bool{}
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
		}
	}
	plan.AdjustCooperative(cb)
	return plan
}

// identityVersion prefixes the UserData of eddy's join metadata.
const identityVersion = 1

func encodeIdentity(name string, joined int64) []byte {
	out := []byte{identityVersion}
	out = binary.BigEndian.AppendUint64(out, uint64(joined))
	return append(out, name...)
}

func decodeIdentity(b []byte) (name string, joined int64, ok bool) {
	if len(b) < 9 || b[0] != identityVersion {
		return "", 0, false
	}
	return string(b[9:]), int64(binary.BigEndian.Uint64(b[1:9])), true
}
