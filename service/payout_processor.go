package service

import (
	"context"
	"time"

	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/store"
)

// processorBatch bounds how many payouts one processor write moves.
const processorBatch = 100

// advanceSandboxPayouts applies every sandbox payout transition due at now
// and reports how many it applied. Each payout is reloaded inside the write,
// so one cancelled meanwhile is left alone.
func (s *Service) advanceSandboxPayouts(ctx context.Context, now time.Time) (int, error) {
	rejecter, _ := s.cfg.TestProvider.(providers.RecipientRejecter)
	moved := 0
	for {
		due, err := s.store.DuePayouts(ctx, sandboxName, now.Add(-s.cfg.SandboxPayoutProcessingDelay),
			now.Add(-s.cfg.SandboxPayoutCompletionDelay), processorBatch)
		if err != nil || len(due) == 0 {
			return moved, err
		}
		n := 0
		err = s.store.Write(ctx, func(tx *store.Tx) error {
			n = 0
			for _, p := range due {
				cur, err := tx.GetPayout(p.AccountID, p.Livemode, p.ID)
				if err != nil {
					return err
				}
				if cur.Status != p.Status {
					continue // cancelled (or moved by another processor) since it was read
				}
				t := paymentd.PayoutProcess
				if paymentd.PayoutStatus(cur.Status) == paymentd.PayoutProcessing {
					t = paymentd.PayoutComplete
					if reason, rejected := rejectsRecipient(rejecter, cur.RecipientAccount); rejected {
						t = paymentd.PayoutReject
						cur.FailureCode, cur.FailureMessage = "recipient_account_rejected", reason
					}
				}
				if _, err := applyPayout(tx, cur, t); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return moved, err
		}
		moved += n
		if len(due) < processorBatch {
			return moved, nil
		}
	}
}

// rejectsRecipient asks the test provider whether it rejects a payout to
// account (providers.RecipientRejecter); one without the capability
// rejects none.
func rejectsRecipient(r providers.RecipientRejecter, account string) (string, bool) {
	if r == nil {
		return "", false
	}
	return r.RejectsRecipient(account)
}
