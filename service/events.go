package service

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/paymentd/paymentd/store"
)

// recordEvent writes the event announcing obj's change inside the state
// change's own transaction, so that nothing is announced that was rolled
// back and nothing committed goes unannounced. Every state change of every
// object calls it, or its two halves insertEvent and queueDeliveries in
// the same transaction (writePayment, which stores its idempotency record
// between them); they are the one place where events and their webhook
// deliveries (the outbox) are written.
func recordEvent(tx *store.Tx, pr *Principal, typ, objectID string, obj proto.Message) error {
	id, err := insertEvent(tx, pr, typ, objectID, obj)
	if err != nil {
		return err
	}
	return queueDeliveries(tx, pr.AccountID, pr.Livemode, id, typ, obj)
}

// insertEvent writes the event alone and returns its id; its deliveries
// are the caller's to queue (queueDeliveries).
func insertEvent(tx *store.Tx, pr *Principal, typ, objectID string, obj proto.Message) (string, error) {
	data, err := proto.Marshal(obj)
	if err != nil {
		return "", err
	}
	id := NewID(PrefixEvent)
	return id, tx.InsertEvent(&store.Event{ID: id, AccountID: pr.AccountID, Livemode: pr.Livemode,
		Type: typ, ObjectID: objectID, Data: data, Created: tx.Now(), Source: obj})
}

// queueDeliveries writes one pending delivery of the event per account
// endpoint that wants its type, plus one to the object's callback_url if it
// has one. The endpoints come from memory (store.Tx.WebhookTargets), so an
// account without endpoints, changing objects without a callback_url, pays
// for nothing here.
func queueDeliveries(tx *store.Tx, accountID string, livemode bool, eventID, typ string, obj proto.Message) error {
	targets, err := tx.WebhookTargets(accountID, livemode)
	if err != nil {
		return err
	}
	cb := callbackURL(obj)
	if len(targets) == 0 && cb == "" {
		return nil
	}
	for _, t := range targets {
		if t.Wants(typ) {
			if err := insertDelivery(tx, accountID, livemode, eventID, t.EndpointID, t.URL); err != nil {
				return err
			}
		}
	}
	if cb != "" {
		return insertDelivery(tx, accountID, livemode, eventID, "", cb)
	}
	return nil
}

func insertDelivery(tx *store.Tx, accountID string, livemode bool, eventID, endpointID, url string) error {
	now := tx.Now()
	return tx.InsertDelivery(&store.Delivery{ID: NewID(PrefixDelivery), AccountID: accountID, Livemode: livemode,
		EventID: eventID, EndpointID: endpointID, URL: url, Status: store.DeliveryPending,
		NextAttempt: now, RetryFrom: now, Created: now})
}

// callbackFields caches, per message type, its `callback_url` string field
// (or nil): any object whose message has one gets its events delivered there.
var callbackFields sync.Map // protoreflect.FullName → protoreflect.FieldDescriptor

func callbackURL(obj proto.Message) string {
	if obj == nil {
		return ""
	}
	m := obj.ProtoReflect()
	d := m.Descriptor()
	v, ok := callbackFields.Load(d.FullName())
	if !ok {
		fd := d.Fields().ByName("callback_url")
		if fd != nil && (fd.Kind() != protoreflect.StringKind || fd.Cardinality() == protoreflect.Repeated) {
			fd = nil
		}
		v, _ = callbackFields.LoadOrStore(d.FullName(), fd)
	}
	fd, _ := v.(protoreflect.FieldDescriptor)
	if fd == nil {
		return ""
	}
	return m.Get(fd).String()
}

// eventObjectTypes maps the object kind an event type starts with (the part
// before the first dot) to the protobuf message its data holds. A kind
// without a row falls back to paymentd.v1.<Kind in CamelCase>, so
// `invoice.paid` finds paymentd.v1.Invoice without a row; add one when the
// message is named otherwise.
var eventObjectTypes = map[string]protoreflect.FullName{
	"payment": "paymentd.v1.Payment",
	"refund":  "paymentd.v1.Refund",
}

func eventMessageName(typ string) protoreflect.FullName {
	kind, _, _ := strings.Cut(typ, ".")
	if name, ok := eventObjectTypes[kind]; ok {
		return name
	}
	var b strings.Builder
	b.WriteString("paymentd.v1.")
	upper := true
	for _, r := range kind {
		if r == '_' {
			upper = true
			continue
		}
		if upper {
			r = unicode.ToUpper(r)
			upper = false
		}
		b.WriteRune(r)
	}
	return protoreflect.FullName(b.String())
}

// decodeEventData returns the object an event carries.
func decodeEventData(e *store.Event) (proto.Message, error) {
	name := eventMessageName(e.Type)
	mt, err := protoregistry.GlobalTypes.FindMessageByName(name)
	if err != nil {
		return nil, fmt.Errorf("event %s of type %s: no message %s: %w", e.ID, e.Type, name, err)
	}
	m := mt.New().Interface()
	if err := proto.Unmarshal(e.Data, m); err != nil {
		return nil, fmt.Errorf("event %s: %w", e.ID, err)
	}
	return m, nil
}

// eventAny wraps an event's stored data, already the object's protobuf
// encoding, as an Any without decoding it; nil if no message of this
// binary is known for the event's type (JSON could not render it).
func eventAny(e *store.Event) *anypb.Any {
	name := eventMessageName(e.Type)
	if _, err := protoregistry.GlobalTypes.FindMessageByName(name); err != nil {
		return nil
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(name), Value: e.Data}
}

// eventJSON renders an event's object as the REST API shows it.
var eventJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// webhookBody is the JSON POSTed for an event.
func webhookBody(e *store.Event) ([]byte, error) {
	obj, err := decodeEventData(e)
	if err != nil {
		return nil, err
	}
	data, err := eventJSON.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		ID        string          `json:"id"`
		Event     string          `json:"event"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{e.ID, e.Type, e.Created.UTC().Format("2006-01-02T15:04:05.000Z07:00"), data})
}
