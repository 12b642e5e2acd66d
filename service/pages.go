package service

import (
	"context"
	"errors"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/service/paypage"
	"github.com/paymentd/paymentd/store"
)

// pageBackend is what the hosted payment page (package paypage) asks of the
// service: it reads invoices and pays or cancels them through the same
// writes and transitions as the API.
type pageBackend struct{ s *Service }

var _ paypage.Backend = pageBackend{}

// Invoice reads the invoice a payment page is for, expiring it first if it
// is due; nil when there is no such invoice served here. Only the test
// provider's invoices have paymentd pages: the others are served by their
// provider.
func (b pageBackend) Invoice(ctx context.Context, id string) (*store.Invoice, error) {
	if !validID(id, PrefixInvoice) {
		return nil, nil
	}
	inv, err := b.s.store.GetInvoiceByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !b.s.servedHere(inv)) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	invs := []*store.Invoice{inv}
	if err := b.s.freshen(ctx, invs); err != nil {
		return nil, err
	}
	return invs[0], nil
}

// UnsettledAttempt is the open invoice's card payment that was sent to the
// provider and is not reflected in the invoice: it has no definite answer
// yet, or its answer came late (the reconciler settled it) and has not been
// applied to the invoice.
func (b pageBackend) UnsettledAttempt(ctx context.Context, inv *store.Invoice) (*store.Payment, error) {
	if inv.Network != "" || paymentd.InvoiceStatus(inv.Status) != paymentd.InvoiceOpen || len(inv.ID) <= len(PrefixInvoice) {
		return nil, nil
	}
	p, err := b.s.store.UnsettledInvoicePayment(ctx, inv.AccountID, inv.Livemode, inv.ID, invoiceAttemptFloor(inv))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return p, err
}

// Merchant returns the account's name and checked brand (checkedBrand).
func (b pageBackend) Merchant(ctx context.Context, accountID string) (string, store.Brand, error) {
	a, err := b.s.store.Account(ctx, accountID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return "", store.Brand{}, err
	}
	name, brand := checkedBrand(a)
	return name, brand, nil
}

// TestMethods lists the test provider's test cards.
func (b pageBackend) TestMethods() []string { return testMethods(b.s.cfg.TestProvider) }

// Pay pays inv with a payment of the test provider, made as every payment
// is (createPayment); the payment is recorded with the invoice's change in
// the write that records the provider's answer, after reading the invoice
// again there: one that was paid meanwhile, expired or canceled gets no
// payment and no money.
func (b pageBackend) Pay(ctx context.Context, inv *store.Invoice, method string) (paypage.Payment, error) {
	s := b.s
	p := &store.Payment{
		ID: NewID(PrefixPayment), AccountID: inv.AccountID, Livemode: inv.Livemode, Amount: inv.Amount,
		Currency: inv.Currency, CaptureMethod: "automatic", PaymentMethod: method, Provider: providerName(s.cfg.TestProvider),
		Description: inv.Description, CustomerName: inv.CustomerName, CustomerEmail: inv.CustomerEmail, CustomerID: inv.CustomerID,
		Metadata: map[string]string{"invoice_id": inv.ID, "transaction_reference": inv.TransactionReference},
	}
	after := inv
	payInvoice := func(tx *store.Tx, t paymentd.Transition[paymentd.PaymentStatus], writePayment func() error) error {
		cur, err := tx.GetInvoice(inv.AccountID, inv.Livemode, inv.ID)
		if err != nil {
			return err
		}
		if err := expireIfDue(tx, cur); err != nil {
			return err
		}
		after = cur
		captured := t.Destination == paymentd.PaymentSucceeded
		if captured && paymentd.InvoiceStatus(cur.Status) != paymentd.InvoiceOpen {
			return nil // paid meanwhile, expired or canceled: no payment, no money
		}
		if err := writePayment(); err != nil || !captured {
			return err
		}
		cur.PaymentID, cur.AmountPaid = p.ID, cur.Amount
		_, err = writeInvoice(tx, cur, paymentd.InvoicePay, nil)
		return err
	}
	out, err := s.createPayment(ctx, ownerOf(inv), p, []providers.Payments{s.cfg.TestProvider}, nil,
		func(*pb.Payment) proto.Message { return nil }, payInvoice)
	return paypage.Payment{Recorded: out.recorded, Status: out.t.Destination, FailureCode: p.FailureCode, Invoice: after}, err
}

// Cancel cancels inv, as CancelInvoice does (waitForPageAttempt,
// cancelInvoiceTx).
func (b pageBackend) Cancel(ctx context.Context, inv *store.Invoice) error {
	release, err := b.s.waitForPageAttempt(ctx, inv)
	if err != nil {
		return err
	}
	defer release()
	return b.s.store.Write(ctx, func(tx *store.Tx) error {
		_, err := cancelInvoiceTx(tx, inv)
		return err
	})
}

// Lock waits for the invoice page's turn to pay (lockInvoicePage, workers.go).
func (b pageBackend) Lock(ctx context.Context, inv *store.Invoice) (func(), error) {
	return b.s.lockInvoicePage(ctx, inv)
}

// keyedLocks serializes work per key (an invoice id) within this process.
type keyedLocks struct {
	mu   sync.Mutex
	busy map[string]chan struct{}
}

// lock waits until no one else holds key (or ctx ends), takes it and
// returns the function that releases it.
func (l *keyedLocks) lock(ctx context.Context, key string) (func(), error) {
	for {
		l.mu.Lock()
		if l.busy == nil {
			l.busy = map[string]chan struct{}{}
		}
		ch, held := l.busy[key]
		if !held {
			ch = make(chan struct{})
			l.busy[key] = ch
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				delete(l.busy, key)
				l.mu.Unlock()
				close(ch)
			}, nil
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
