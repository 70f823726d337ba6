package embedded_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
)

// Example consumes a topic in a group and writes upper-cased copies of its
// records to another topic, committing outputs and offsets together.
func Example() {
	ctx := context.Background()
	l, err := embedded.Open(embedded.Options{InMemory: true})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	if err := l.CreateTopics(ctx,
		broker.TopicConfig{Name: "words", Partitions: 1},
		broker.TopicConfig{Name: "shouts", Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	if err := l.Produce(ctx,
		broker.Record{Topic: "words", Value: []byte("hello")},
		broker.Record{Topic: "words", Value: []byte("world")}); err != nil {
		log.Fatal(err)
	}

	s, err := l.NewSession(ctx, broker.SessionConfig{Group: "shouter", Member: "w1", Topics: []string{"words"}})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close(ctx)
	offsets := map[broker.TopicPartition]broker.Offset{}
	for done := false; !done; {
		f, err := s.Poll(ctx, 100)
		if err != nil {
			log.Fatal(err)
		}
		for _, tp := range f.Assigned {
			fmt.Println("assigned", tp)
		}
		for _, r := range f.Records {
			s.Send(broker.Record{Topic: "shouts", Value: []byte(strings.ToUpper(string(r.Value)))})
			offsets[broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = broker.Offset{Offset: r.Offset + 1}
			done = r.Offset == 1
		}
	}
	ends, err := s.Commit(ctx, offsets)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("shouts/0 ends at", ends[broker.TopicPartition{Topic: "shouts"}])
	err = l.Read(ctx, broker.TopicPartition{Topic: "shouts"}, 0, 100, func(r broker.Record) error {
		fmt.Println(r.Offset, string(r.Value))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// assigned words/0
	// shouts/0 ends at 2
	// 0 HELLO
	// 1 WORLD
}
