package main

import (
	"flag"
	"time"
)

// payoutFlags are serve's flags for sandbox payouts and ledger checkpoints.
type payoutFlags struct {
	processingDelay, completionDelay time.Duration
	checkpointInterval               time.Duration
	checkpointEntries                int
}

func (f *payoutFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.processingDelay, "sandbox-payout-processing-delay", 2*time.Second,
		"how long a sandbox payout stays pending before it is processing")
	fs.DurationVar(&f.completionDelay, "sandbox-payout-completion-delay", 5*time.Second,
		"how long a sandbox payout is processing before it completes (or is rejected)")
	fs.DurationVar(&f.checkpointInterval, "ledger-checkpoint-interval", time.Minute,
		"how often accounts with many new ledger entries get a balance checkpoint")
	fs.IntVar(&f.checkpointEntries, "ledger-checkpoint-entries", 1,
		"new ledger entries after which an account's balances are checkpointed")
}
