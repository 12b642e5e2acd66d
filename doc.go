// Package paymentd is the domain of the payment service, in the middle of
// everything else as in benbjohnson/wtf: the statuses of payments, refunds,
// invoices and payouts; their lifecycles as tables of transitions; the
// status sets the store selects by; the event types; the ledger books and
// the moves a transition causes; money; and the kinds of error a caller can
// see. It imports no gRPC, SQL, HTTP or protobuf, so that the rules can be
// read and tested on their own, and every other package (service, store,
// providers, cmd) speaks this one vocabulary instead of copying it.
package paymentd
