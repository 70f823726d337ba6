package kafka

import (
	"encoding/binary"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddyflow/eddy/broker"
)

// identityV1 is a version-1 identity as eddy before endpoints wrote it.
func identityV1(name string, joined int64) []byte {
	out := []byte{1}
	out = binary.BigEndian.AppendUint64(out, uint64(joined))
	return append(out, name...)
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		name   string
		data   []byte
		want   identity
		wantOK bool
	}{
		{"v2", encodeIdentity("app-a-0", 42, "10.0.0.1:8080"), identity{"app-a-0", 42, "10.0.0.1:8080"}, true},
		{"v2 without endpoint", encodeIdentity("app-a-0", 42, ""), identity{"app-a-0", 42, ""}, true},
		{"v2 empty name", encodeIdentity("", -1, "h:1"), identity{"", -1, "h:1"}, true},
		{"v2 long name", encodeIdentity(string(make([]byte, 300)), 7, "h:1"), identity{string(make([]byte, 300)), 7, "h:1"}, true},
		{"v1", identityV1("app-a-0", 42), identity{"app-a-0", 42, ""}, true},
		{"v1 empty name", identityV1("", 42), identity{"", 42, ""}, true},
		{"empty", nil, identity{}, false},
		{"short", []byte{2, 0, 0, 0}, identity{}, false},
		{"unknown version", append([]byte{3}, encodeIdentity("a", 1, "h:1")[1:]...), identity{}, false},
		{"v2 name past the end", append(binary.BigEndian.AppendUint64([]byte{2}, 1), 5, 'a', 'b'), identity{}, false},
		{"v2 without name length", binary.BigEndian.AppendUint64([]byte{2}, 1), identity{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := decodeIdentity(tc.data)
			if ok != tc.wantOK {
				t.Fatalf("decodeIdentity(% x) ok = %v, want %v", tc.data, ok, tc.wantOK)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(identity{})); diff != "" {
				t.Errorf("decodeIdentity(% x) (-want +got):\n%s", tc.data, diff)
			}
		})
	}
}

func tps(topic string, ps ...int32) []broker.TopicPartition {
	out := []broker.TopicPartition{}
	for _, p := range ps {
		out = append(out, broker.TopicPartition{Topic: topic, Partition: p})
	}
	return out
}

func TestEndpointsEncoding(t *testing.T) {
	tests := []struct {
		name string
		gen  int32
		m    map[string][]broker.TopicPartition
	}{
		{"empty", 1, map[string][]broker.TopicPartition{}},
		{"one endpoint without partitions", 3, map[string][]broker.TopicPartition{"a:1": {}}},
		{"two endpoints", 1 << 30, map[string][]broker.TopicPartition{
			"a:1":           append(tps("in", 0, 2), tps("table", 0, 2)...),
			"[2001:db8::1]": append(tps("in", 1, 3, 1<<20), tps("table", 1, 3)...),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := encodeEndpoints(tc.gen, tc.m)
			got, err := decodeEndpoints(data)
			if err != nil {
				t.Fatal(err)
			}
			want := broker.Endpoints{Generation: int64(tc.gen), Partitions: tc.m}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("decodeEndpoints(encodeEndpoints) (-want +got):\n%s", diff)
			}
			// Every truncation and any trailing byte fail.
			for n := range len(data) {
				if e, err := decodeEndpoints(data[:n]); err == nil {
					t.Errorf("decodeEndpoints of %d of %d bytes = %+v, want an error", n, len(data), e)
				}
			}
			if _, err := decodeEndpoints(append(data, 0)); err == nil {
				t.Errorf("decodeEndpoints with a trailing byte: no error")
			}
			bad := append([]byte{endpointsVersion + 1}, data[1:]...)
			if _, err := decodeEndpoints(bad); err == nil {
				t.Errorf("decodeEndpoints of version %d: no error", bad[0])
			}
		})
	}
}

// joinMember returns a JoinGroup response member whose metadata is what
// b sends, owning owned in generation gen.
func joinMember(id string, b *balancer, owned map[string][]int32, gen int32) kmsg.JoinGroupResponseMember {
	m := kmsg.NewJoinGroupResponseMember()
	m.MemberID = id
	m.ProtocolMetadata = b.JoinGroupMetadata([]string{"in", "table"}, owned, gen)
	return m
}

// TestBalanceEndpoints runs a leader's Balance over members old and new,
// with and without endpoints, one of which gives a partition up, and
// parses each member's assignment as that member would: each gets its
// partitions (those moving held back for the next round), and every one
// the same endpoint map, the plan, with the moving partitions under their
// new member.
func TestBalanceEndpoints(t *testing.T) {
	logger := hclog.NewNullLogger()
	newBalancer := func(name, endpoint string) *balancer {
		return &balancer{name: name, joined: 1, endpoint: endpoint, assignor: broker.CoPartitioned, logger: logger, view: &endpointView{}}
	}
	bals := map[string]*balancer{
		"id-a0": newBalancer("app-a-0", "a:80"),
		"id-a1": newBalancer("app-a-1", "a:80"),
		"id-b0": newBalancer("app-b-0", "b:80"),
		"id-c0": newBalancer("app-c-0", ""),
		"id-d0": newBalancer("app-d-0", "d:80"), // a version-1 member: no endpoint
	}
	// app-a-0 owned everything in generation 4; the plan over the five
	// names deals partition p to member p%5 in name order.
	members := []kmsg.JoinGroupResponseMember{
		joinMember("id-a0", bals["id-a0"], map[string][]int32{"in": {0, 1, 2, 3, 4, 5}, "table": {0, 1, 2, 3, 4, 5}}, 4),
		joinMember("id-a1", bals["id-a1"], nil, -1),
		joinMember("id-b0", bals["id-b0"], nil, -1),
		joinMember("id-c0", bals["id-c0"], nil, -1),
	}
	d0 := joinMember("id-d0", bals["id-d0"], nil, -1)
	var meta kmsg.ConsumerMemberMetadata
	if err := meta.ReadFrom(d0.ProtocolMetadata); err != nil {
		t.Fatal(err)
	}
	meta.UserData = identityV1("app-d-0", 1)
	d0.ProtocolMetadata = meta.AppendTo(nil)
	members = append(members, d0)

	leader := bals["id-a0"]
	gmb, _, err := leader.MemberBalancer(members)
	if err != nil {
		t.Fatal(err)
	}
	cb := gmb.(*kgo.ConsumerBalancer)
	cb.SetBalanceInfo(kgo.BalanceInfo{Generation: 5})
	into := leader.Balance(cb, map[string]int32{"in": 6, "table": 6})

	both := func(ps ...int32) []broker.TopicPartition { return append(tps("in", ps...), tps("table", ps...)...) }
	wantAssigned := map[string]map[string][]int32{
		// app-a-0 keeps 0 and 5; 1..4 are revoked this round.
		"id-a0": {"in": {0, 5}, "table": {0, 5}},
		"id-a1": {}, "id-b0": {}, "id-c0": {}, "id-d0": {},
	}
	wantView := broker.Endpoints{Generation: 5, Partitions: map[string][]broker.TopicPartition{
		"a:80": both(0, 1, 5),
		"b:80": both(2),
	}}
	gotAssigned := map[string]map[string][]int32{}
	for _, a := range into.IntoSyncAssignment() {
		b := bals[a.MemberID]
		assigned, err := b.ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			t.Fatalf("%s: %v", a.MemberID, err)
		}
		gotAssigned[a.MemberID] = assigned
		if diff := cmp.Diff(wantView, b.view.get(), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s's endpoints (-want +got):\n%s", a.MemberID, diff)
		}
	}
	if diff := cmp.Diff(wantAssigned, gotAssigned, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("assignments (-want +got):\n%s", diff)
	}

	// An assignment without an endpoint map (a leader of an older eddy)
	// leaves the view empty.
	b := bals["id-b0"]
	var plain kmsg.ConsumerMemberAssignment
	t2 := kmsg.NewConsumerMemberAssignmentTopic()
	t2.Topic, t2.Partitions = "in", []int32{2}
	plain.Topics = append(plain.Topics, t2)
	assigned, err := b.ParseSyncAssignment(plain.AppendTo(nil))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string][]int32{"in": {2}}, assigned); diff != "" {
		t.Errorf("plain assignment (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(broker.Endpoints{}, b.view.get()); diff != "" {
		t.Errorf("endpoints after a plain assignment (-want +got):\n%s", diff)
	}
	// A closed view stays empty.
	b.view.set(wantView)
	b.view.close()
	b.view.set(wantView)
	if diff := cmp.Diff(broker.Endpoints{}, b.view.get()); diff != "" {
		t.Errorf("endpoints after close (-want +got):\n%s", diff)
	}
}

// FuzzDecodeEndpoints checks that any data decodes or fails without a
// panic, and that what decodes encodes back to itself.
func FuzzDecodeEndpoints(f *testing.F) {
	f.Add(encodeEndpoints(3, map[string][]broker.TopicPartition{"a:1": tps("in", 0, 2), "b:2": {}}))
	f.Add([]byte{endpointsVersion, 1, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeEndpoints(data)
		if err != nil {
			return
		}
		again, err := decodeEndpoints(encodeEndpoints(int32(e.Generation), e.Partitions))
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", e, err)
		}
		if diff := cmp.Diff(e, again, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip (-first +again):\n%s", diff)
		}
	})
}

// FuzzDecodeIdentity checks that any data decodes or fails without a
// panic, and that a decoded identity encodes (as version 2) back to itself.
func FuzzDecodeIdentity(f *testing.F) {
	f.Add(encodeIdentity("app-a-0", 1, "h:1"))
	f.Add(identityV1("app-a-0", 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, ok := decodeIdentity(data)
		if !ok {
			return
		}
		again, ok := decodeIdentity(encodeIdentity(id.name, id.joined, id.endpoint))
		if !ok || again != id {
			t.Errorf("round trip of %+v: %+v, %v", id, again, ok)
		}
	})
}
