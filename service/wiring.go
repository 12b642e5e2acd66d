package service

import (
	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/sandbox"
)

// The sandbox is paymentd's built-in test provider and the default of
// Config.TestProvider; this file is the one place service/ names its
// package. The rest asks Config.TestProvider for capabilities
// (providers.AlwaysAnswers: one write or two; providers.TestMethods: the
// cards of the payment page) and knows the sandbox's connections, payouts
// and webhooks by sandboxName.

// sandboxName is the sandbox's provider name: that of paymentd.yaml
// connections which stand for the service's own TestProvider, and of the
// test-mode payouts that paymentd moves along itself (payout_processor.go).
const sandboxName = sandbox.Name

// defaultTestProvider serves test-mode keys when Config.TestProvider is nil.
func defaultTestProvider() providers.Payments { return sandbox.New() }

// testMethods lists the test payment methods prov offers (none unless it
// implements providers.TestMethods), for the payment page to choose from.
func testMethods(prov providers.Payments) []string {
	if tm, ok := prov.(providers.TestMethods); ok {
		return tm.TestMethods()
	}
	return nil
}
