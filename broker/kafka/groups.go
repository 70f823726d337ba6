package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/eddyflow/eddy/broker"
)

// DeleteGroup deletes the consumer group and its committed offsets
// (Kafka's DeleteGroups), so that members joining it later start every
// partition at its log start. Kafka deletes only empty groups: while the
// group has members it deletes nothing and returns an error wrapping
// broker.ErrGroupActive with their count. A member of a process that was
// killed stays in the group until its session times out
// (Options.SessionTimeout); an instance that closed its engine has left.
// A group that does not exist is deleted without error.
func (l *Log) DeleteGroup(ctx context.Context, group string) error {
	if err := l.check(); err != nil {
		return err
	}
	if group == "" {
		return errors.New("kafka: delete group: empty group name")
	}
	// Describing first gives the member count to report; the delete
	// itself is what refuses a group with members, atomically.
	described, err := l.adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("kafka: delete group %s: describe on %s: %w", group, l.brokers(), err)
	}
	if d, ok := described[group]; ok {
		switch {
		case d.Err != nil && !errors.Is(d.Err, kerr.GroupIDNotFound):
			return fmt.Errorf("kafka: delete group %s: describe: %w", group, d.Err)
		case len(d.Members) > 0:
			return fmt.Errorf("kafka: delete group %s: members alive: %d (group state %s): %w", group, len(d.Members), d.State, broker.ErrGroupActive)
		}
	}
	resps, err := l.adm.DeleteGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("kafka: delete group %s on %s: %w", group, l.brokers(), err)
	}
	r, ok := resps[group]
	switch {
	case !ok:
		return fmt.Errorf("kafka: delete group %s: no answer from %s", group, l.brokers())
	case r.Err == nil, errors.Is(r.Err, kerr.GroupIDNotFound):
		l.logger.Debug("deleted group", "group", group)
		return nil
	case errors.Is(r.Err, kerr.NonEmptyGroup):
		return fmt.Errorf("kafka: delete group %s: members joined since it was described: %w (%w)", group, broker.ErrGroupActive, r.Err)
	}
	return fmt.Errorf("kafka: delete group %s: %w", group, r.Err)
}
