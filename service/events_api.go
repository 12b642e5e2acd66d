package service

import (
	"context"
	"errors"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store"
)

// Event delivery statuses as ListEvents and GetEvent report them.
var deliveryStatuses = []string{store.DeliveryPending, store.DeliveryDelivered, store.DeliveryFailed}

// summarizeDeliveries gives an event's delivery_status: failed if any
// delivery failed (someone should look), else pending if any is still
// being tried, else delivered; none when the event had no destination.
func summarizeDeliveries(statuses []string) string {
	switch {
	case len(statuses) == 0:
		return "none"
	case slices.Contains(statuses, store.DeliveryFailed):
		return store.DeliveryFailed
	case slices.Contains(statuses, store.DeliveryPending):
		return store.DeliveryPending
	}
	return store.DeliveryDelivered
}

func eventProto(e *store.Event, deliveryStatus string) *pb.Event {
	return &pb.Event{Id: e.ID, Type: e.Type, ObjectId: e.ObjectID, Data: eventAny(e), Livemode: e.Livemode,
		CreatedAt: timestamppb.New(e.Created), DeliveryStatus: deliveryStatus}
}

// ListEvents returns a page of events, newest first.
func (s *EventsServer) ListEvents(ctx context.Context, req *pb.ListEventsRequest) (*pb.ListEventsResponse, error) {
	pr := mustPrincipal(ctx)
	pf, err := pageFilter(pr, req.PageSize, req.PageToken, PrefixEvent)
	if err != nil {
		return nil, err
	}
	f := store.EventFilter{PageFilter: pf, ObjectID: req.ObjectId}
	if req.Type != "" {
		if len(req.Type) > 100 || req.Type == "*" || !eventTypePattern.MatchString(req.Type) {
			return nil, Invalid("type", "event_type_invalid", "type must be an event type such as payment.succeeded, or a prefix pattern such as payment.*; got %q.", truncate(req.Type, 100))
		}
		f.Type = req.Type
	}
	if err := checkLen("object_id", req.ObjectId, maxShortID); err != nil {
		return nil, err
	}
	if req.DeliveryStatus != "" {
		if err := oneOf("delivery_status", req.DeliveryStatus, deliveryStatuses...); err != nil {
			return nil, err
		}
		f.DeliveryStatus = req.DeliveryStatus
	}
	evs, err := s.store.ListEvents(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListEventsResponse{}
	evs, resp.NextPageToken = nextPage(evs, f.PageFilter, func(x *store.Event) string { return x.ID })
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	statuses, err := s.store.DeliveryStatuses(ctx, pr.AccountID, pr.Livemode, ids)
	if err != nil {
		return nil, err
	}
	resp.Events = make([]*pb.Event, len(evs))
	for i, e := range evs {
		resp.Events[i] = eventProto(e, summarizeDeliveries(statuses[e.ID]))
	}
	resp.Events, resp.NextPageToken = fitPage(resp.Events, resp.NextPageToken)
	return resp, nil
}

func eventNotFound(pr *Principal, id string) error {
	if id == "" {
		return Invalid("id", "parameter_missing", "id is required: the event's id, evt_….")
	}
	return &Error{Kind: KindNotFound, Code: "resource_missing", Param: "id",
		Message: "No such event: '" + truncate(id, 64) + "' in " + pr.Mode() + " mode."}
}

// loadEvent reads an event of the caller with its deliveries and attempts.
func (s *Service) loadEvent(ctx context.Context, pr *Principal, id string) (*pb.Event, error) {
	if !validID(id, PrefixEvent) {
		return nil, eventNotFound(pr, id)
	}
	e, err := s.store.GetEvent(ctx, pr.AccountID, pr.Livemode, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, eventNotFound(pr, id)
	}
	if err != nil {
		return nil, err
	}
	ds, err := s.store.DeliveriesFor(ctx, pr.AccountID, pr.Livemode, id)
	if err != nil {
		return nil, err
	}
	as, err := s.store.AttemptsFor(ctx, pr.AccountID, pr.Livemode, id)
	if err != nil {
		return nil, err
	}
	statuses := make([]string, len(ds))
	out := eventProto(e, "")
	byID := map[string]*pb.WebhookDelivery{}
	for i, d := range ds {
		statuses[i] = d.Status
		pd := &pb.WebhookDelivery{Id: d.ID, EndpointId: d.EndpointID, Url: d.URL, Status: d.Status, AttemptCount: int32(d.Attempts)}
		if d.Status == store.DeliveryPending && !d.NextAttempt.IsZero() {
			pd.NextAttemptAt = timestamppb.New(d.NextAttempt)
		}
		byID[d.ID] = pd
		out.Deliveries = append(out.Deliveries, pd)
	}
	for _, a := range as {
		if pd := byID[a.DeliveryID]; pd != nil {
			pd.Attempts = append(pd.Attempts, &pb.DeliveryAttempt{Number: int32(a.N), AttemptedAt: timestamppb.New(a.Attempted),
				Url: a.URL, HttpStatus: int32(a.HTTPStatus), LatencyMs: a.Latency.Milliseconds(), Error: a.Error,
				ResponseExcerpt: a.Response})
		}
	}
	out.DeliveryStatus = summarizeDeliveries(statuses)
	return out, nil
}

// GetEvent returns one event with its deliveries and every attempt made.
func (s *EventsServer) GetEvent(ctx context.Context, req *pb.GetEventRequest) (*pb.GetEventResponse, error) {
	pr := mustPrincipal(ctx)
	ev, err := s.loadEvent(ctx, pr, req.Id)
	if err != nil {
		return nil, err
	}
	return &pb.GetEventResponse{Event: ev}, nil
}

// RedeliverEvent makes an event's deliveries pending again, due at once with
// a fresh retry window: all of them whose destination still exists, or only
// the one to endpoint_id (created if that endpoint never had the event, so
// an endpoint added later can be sent past events). An event that never had
// a destination is sent to the account's current endpoints and the object's
// callback_url.
func (s *EventsServer) RedeliverEvent(ctx context.Context, req *pb.RedeliverEventRequest) (*pb.RedeliverEventResponse, error) {
	pr := mustPrincipal(ctx)
	if !validID(req.Id, PrefixEvent) {
		return nil, eventNotFound(pr, req.Id)
	}
	if req.EndpointId != "" && !validID(req.EndpointId, PrefixWebhookEndpoint) {
		return nil, &Error{Kind: KindNotFound, Code: "resource_missing", Param: "endpoint_id",
			Message: "No such webhook endpoint: '" + truncate(req.EndpointId, 64) + "' in " + pr.Mode() + " mode."}
	}
	resp := &pb.RedeliverEventResponse{}
	err := s.idem.run(ctx, "RedeliverEvent", req, resp, func(ik *idemKey) error {
		err := s.store.Write(ctx, func(tx *store.Tx) error {
			if err := s.redeliver(tx, pr, req.Id, req.EndpointId); err != nil {
				return err
			}
			// The stored response names the event only: the caller reads
			// its deliveries' progress with GetEvent.
			return ik.save(tx, &pb.RedeliverEventResponse{Event: &pb.Event{Id: req.Id}}, nil)
		})
		if err != nil {
			return err
		}
		s.kickDispatcher()
		ev, err := s.loadEvent(ctx, pr, req.Id)
		if err != nil {
			return err
		}
		resp.Event = ev
		return nil
	})
	if err != nil {
		return nil, err
	}
	if resp.Event != nil && len(resp.Event.Deliveries) == 0 {
		// A replay of the stored outcome: show the event as it is now.
		if ev, err := s.loadEvent(ctx, pr, req.Id); err == nil {
			resp.Event = ev
		}
	}
	return resp, nil
}

func (s *EventsServer) redeliver(tx *store.Tx, pr *Principal, eventID, endpointID string) error {
	e, err := tx.GetEvent(pr.AccountID, pr.Livemode, eventID)
	if errors.Is(err, store.ErrNotFound) {
		return eventNotFound(pr, eventID)
	}
	if err != nil {
		return err
	}
	ds, err := tx.DeliveriesFor(pr.AccountID, pr.Livemode, eventID)
	if err != nil {
		return err
	}
	now := tx.Now()
	reset := func(d *store.Delivery) error {
		d.Status, d.NextAttempt, d.RetryFrom = store.DeliveryPending, now, now
		return tx.UpdateDelivery(d, d.Attempts)
	}
	active := func(id string) (bool, error) {
		ep, err := tx.GetWebhookEndpoint(pr.AccountID, pr.Livemode, id)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil && ep.Deleted.IsZero(), err
	}
	if endpointID != "" {
		ep, err := tx.GetWebhookEndpoint(pr.AccountID, pr.Livemode, endpointID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !ep.Deleted.IsZero()) {
			return &Error{Kind: KindNotFound, Code: "resource_missing", Param: "endpoint_id",
				Message: "No such webhook endpoint: '" + endpointID + "' in " + pr.Mode() + " mode."}
		}
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.EndpointID == endpointID {
				return reset(d)
			}
		}
		return insertDelivery(tx, pr.AccountID, pr.Livemode, eventID, ep.ID, ep.URL)
	}
	n := 0
	for _, d := range ds {
		if d.EndpointID != "" {
			ok, err := active(d.EndpointID)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		if err := reset(d); err != nil {
			return err
		}
		n++
	}
	if n == 0 && len(ds) == 0 {
		obj, err := decodeEventData(e)
		if err != nil {
			return err
		}
		if err := queueDeliveries(tx, pr.AccountID, pr.Livemode, eventID, e.Type, obj); err != nil {
			return err
		}
		if ds, err = tx.DeliveriesFor(pr.AccountID, pr.Livemode, eventID); err != nil {
			return err
		}
		n = len(ds)
	}
	if n == 0 {
		return Errorf(KindConflict, "no_webhook_destination",
			"Event %s has nowhere to go: its object has no callback_url and no webhook endpoint of this account in %s mode wants %s. Create a webhook endpoint first, or pass endpoint_id.",
			eventID, pr.Mode(), e.Type)
	}
	return nil
}
