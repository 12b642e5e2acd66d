package service

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store"
)

// Payout method types.
const (
	MethodMobileBanking = "mobile_banking"
	MethodBankTransfer  = "bank_transfer"
	MethodCrypto        = "crypto"
)

var methodTypes = []string{MethodMobileBanking, MethodBankTransfer, MethodCrypto}

// cryptoNetworks are the networks whose addresses paymentd can validate.
var cryptoNetworks = []string{"tron", "ethereum", "bsc", "polygon"}

// SandboxPayoutMethods are the test-mode payout methods of an account that
// has configured none: a BDT mobile wallet with aspayds' example limits
// (100–50 000 taka), a USD bank transfer and USDT on tron. Amounts are in
// minor units (BDT and USD have 2 decimals, USDT 6).
var SandboxPayoutMethods = []store.PayoutMethod{
	{ID: "bkash", Name: "bKash", Type: MethodMobileBanking, Currency: "BDT",
		MinAmount: 10_000, MaxAmount: 5_000_000, FeeFixed: 0, FeeBasisPoints: 150,
		AccountFormat: "mobile number: 10–15 digits, optionally after +, e.g. 01712345678"},
	{ID: "us_bank", Name: "US bank transfer", Type: MethodBankTransfer, Currency: "USD",
		MinAmount: 1_000, MaxAmount: 1_000_000, FeeFixed: 25, FeeBasisPoints: 100,
		AccountFormat: "bank account number or IBAN: 6–34 letters and digits, e.g. 000123456789"},
	{ID: "usdt_tron", Name: "USDT on Tron (TRC-20)", Type: MethodCrypto, Currency: "USDT", Network: "tron",
		MinAmount: 10_000_000, MaxAmount: 10_000_000_000, FeeFixed: 1_000_000, FeeBasisPoints: 0,
		AccountFormat: "Tron address: 34 characters starting with T, e.g. TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"},
}

// EffectivePayoutMethods returns the methods an account offers in a mode:
// its configured ones or, if it has none, the sandbox defaults in test mode
// (live mode has no defaults: live methods come from the live provider's
// configuration).
func EffectivePayoutMethods(ctx context.Context, st *store.Store, accountID string, livemode bool) ([]*store.PayoutMethod, error) {
	ms, err := st.PayoutMethods(ctx, accountID, livemode)
	if err != nil || len(ms) > 0 || livemode {
		return ms, err
	}
	out := make([]*store.PayoutMethod, len(SandboxPayoutMethods))
	for i := range SandboxPayoutMethods {
		m := SandboxPayoutMethods[i]
		m.AccountID, m.Livemode = accountID, livemode
		out[i] = &m
	}
	return out, nil
}

var methodIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)

// ValidatePayoutMethods checks a whole configuration before it is stored.
func ValidatePayoutMethods(ms []*store.PayoutMethod) error {
	seen := map[string]bool{}
	for i, m := range ms {
		where := fmt.Sprintf("payout_methods[%d]", i)
		if !methodIDPattern.MatchString(m.ID) {
			return fmt.Errorf("%s: id %q must be 1–40 lower-case letters, digits, _ or -, starting with a letter or digit", where, m.ID)
		}
		where += " (" + m.ID + ")"
		if seen[m.ID] {
			return fmt.Errorf("%s: the id is used twice", where)
		}
		seen[m.ID] = true
		if strings.TrimSpace(m.Name) == "" || len(m.Name) > 100 {
			return fmt.Errorf("%s: name must be 1–100 characters", where)
		}
		if !slices.Contains(methodTypes, m.Type) {
			return fmt.Errorf("%s: type %q must be one of %s", where, m.Type, strings.Join(methodTypes, ", "))
		}
		c, ok := paymentd.LookupCurrency(m.Currency)
		if !ok || c.Code != m.Currency {
			return fmt.Errorf("%s: currency %q is not a supported upper-case currency or asset code such as BDT, USD or USDT", where, m.Currency)
		}
		switch {
		case m.Type == MethodCrypto && !slices.Contains(cryptoNetworks, m.Network):
			return fmt.Errorf("%s: a crypto method needs a network, one of %s; got %q", where, strings.Join(cryptoNetworks, ", "), m.Network)
		case m.Type != MethodCrypto && m.Network != "":
			return fmt.Errorf("%s: only crypto methods have a network", where)
		}
		if m.MinAmount <= 0 || m.MaxAmount < m.MinAmount || m.MaxAmount > paymentd.MaxAmount {
			return fmt.Errorf("%s: need 0 < min_amount ≤ max_amount ≤ %d (minor units); got %d and %d", where, paymentd.MaxAmount, m.MinAmount, m.MaxAmount)
		}
		if m.FeeFixed < 0 || m.FeeFixed > paymentd.MaxAmount {
			return fmt.Errorf("%s: fee.fixed_amount must be between 0 and %d; got %d", where, paymentd.MaxAmount, m.FeeFixed)
		}
		if m.FeeBasisPoints < 0 || m.FeeBasisPoints > 10_000 {
			return fmt.Errorf("%s: fee.basis_points must be between 0 and 10000 (100 %%); got %d", where, m.FeeBasisPoints)
		}
		if len(m.AccountFormat) > 200 {
			return fmt.Errorf("%s: account_format must be at most 200 characters", where)
		}
	}
	return nil
}

// ParsePayoutMethods reads a configuration in the JSON form that
// GET /v1/payout-methods returns ({"payout_methods":[…]}) and validates it.
func ParsePayoutMethods(data []byte) ([]*store.PayoutMethod, error) {
	var list pb.ListPayoutMethodsResponse
	if err := protojson.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf(`not a {"payout_methods":[…]} document: %w`, err)
	}
	out := make([]*store.PayoutMethod, len(list.PayoutMethods))
	for i, m := range list.PayoutMethods {
		out[i] = &store.PayoutMethod{ID: m.Id, Name: m.Name, Type: m.Type, Currency: m.Currency, Network: m.Network,
			MinAmount: m.MinAmount, MaxAmount: m.MaxAmount, FeeFixed: m.GetFee().GetFixedAmount(),
			FeeBasisPoints: int64(m.GetFee().GetBasisPoints()), AccountFormat: m.AccountFormat}
		if p := m.GetFee().GetPercent(); p != "" && p != basisPointsPercent(out[i].FeeBasisPoints) {
			return nil, fmt.Errorf("payout_methods[%d] (%s): fee.percent %q disagrees with basis_points %d (%s %%); percent is derived, omit it",
				i, m.Id, p, out[i].FeeBasisPoints, basisPointsPercent(out[i].FeeBasisPoints))
		}
	}
	return out, ValidatePayoutMethods(out)
}

// FormatPayoutMethods writes methods in the JSON form ParsePayoutMethods reads.
func FormatPayoutMethods(ms []*store.PayoutMethod) ([]byte, error) {
	list := &pb.ListPayoutMethodsResponse{PayoutMethods: make([]*pb.PayoutMethod, len(ms))}
	for i, m := range ms {
		list.PayoutMethods[i] = payoutMethodProto(m)
	}
	return protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true, EmitUnpopulated: true}.Marshal(list)
}

// basisPointsPercent writes basis points as a percentage, e.g. 150 → "1.50".
func basisPointsPercent(bps int64) string {
	return fmt.Sprintf("%d.%02d", bps/100, bps%100)
}

func payoutMethodProto(m *store.PayoutMethod) *pb.PayoutMethod {
	return &pb.PayoutMethod{
		Id: m.ID, Name: m.Name, Type: m.Type, Currency: m.Currency, MinAmount: m.MinAmount, MaxAmount: m.MaxAmount,
		Fee:           &pb.PayoutFee{FixedAmount: m.FeeFixed, BasisPoints: int32(m.FeeBasisPoints), Percent: basisPointsPercent(m.FeeBasisPoints)},
		AccountFormat: m.AccountFormat, Network: m.Network,
	}
}

// payoutFee is the method's fee on amount: FeeFixed plus FeeBasisPoints
// ten-thousandths of the amount, rounded up to a whole minor unit, in
// checked integer arithmetic (false on overflow).
func payoutFee(m *store.PayoutMethod, amount int64) (int64, bool) {
	if amount < 0 || m.FeeBasisPoints < 0 || m.FeeFixed < 0 {
		return 0, false
	}
	prod, ok := mulChecked(amount, m.FeeBasisPoints)
	if !ok {
		return 0, false
	}
	part := prod / 10_000
	if prod%10_000 != 0 {
		part++ // round up: a proportional fee never rounds away
	}
	return paymentd.AddChecked(m.FeeFixed, part)
}

// mulChecked multiplies two non-negative amounts and reports false on overflow.
func mulChecked(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	p := a * b
	if p/b != a || p < 0 {
		return 0, false
	}
	return p, true
}

var (
	mobileNumber = regexp.MustCompile(`^\+?[0-9]{10,15}$`)
	bankAccount  = regexp.MustCompile(`^[A-Za-z0-9]{6,34}$`)
	evmAddress   = regexp.MustCompile(`^0x[0-9a-fA-F]{40}$`)
)

// checkRecipientAccount validates recipient_account for the method's type:
// a mobile number, a bank account number or IBAN, or an address on the
// method's network (Tron addresses with their base58check checksum, so that
// a mistyped address is refused rather than paid).
func checkRecipientAccount(m *store.PayoutMethod, account string) error {
	const param = "recipient_account"
	if account == "" {
		return Invalid(param, "parameter_missing", "recipient_account is required: for payout method %s, a %s.", m.ID, accountHint(m))
	}
	if m.Type != MethodCrypto && looksLikeCardNumber(account) {
		return Invalid(param, "card_number_refused",
			"recipient_account looks like a card number; paymentd never accepts card numbers. Payouts go to a %s.", accountHint(m))
	}
	ok := false
	switch m.Type {
	case MethodMobileBanking:
		ok = mobileNumber.MatchString(account)
	case MethodBankTransfer:
		ok = bankAccount.MatchString(account)
	case MethodCrypto:
		switch m.Network {
		case "tron":
			ok = validTronAddress(account)
		case "ethereum", "bsc", "polygon":
			ok = evmAddress.MatchString(account)
		}
	}
	if !ok {
		return Invalid(param, "recipient_account_invalid", "recipient_account %q is not valid for payout method %s (%s); send a %s.",
			truncate(account, 64), m.ID, m.Type, accountHint(m))
	}
	return nil
}

// looksLikeCardNumber reports a card number in a recipient account, read
// the way containsPAN reads any field (separators and Unicode digits
// included). containsPAN only takes numbers with a card network's prefix,
// so long bank account numbers are refused only when they also pass Luhn
// and start like a card; mobile numbers in international form (+880…,
// +234…) never match.
func looksLikeCardNumber(account string) bool {
	return containsPAN(account)
}

func accountHint(m *store.PayoutMethod) string {
	if m.AccountFormat != "" {
		return m.AccountFormat
	}
	switch m.Type {
	case MethodMobileBanking:
		return "mobile number of 10–15 digits"
	case MethodBankTransfer:
		return "bank account number or IBAN of 6–34 letters and digits"
	}
	return m.Network + " address"
}

// validTronAddress checks a Tron address: base58check of 0x41 + 20 bytes.
func validTronAddress(s string) bool {
	if len(s) != 34 || s[0] != 'T' {
		return false
	}
	b := base58Decode(s)
	if len(b) != 25 || b[0] != 0x41 {
		return false
	}
	return string(base58Checksum(b[:21])) == string(b[21:])
}

// ListPayoutMethods returns the account's payout methods in this mode.
func (s *PayoutsServer) ListPayoutMethods(ctx context.Context, _ *pb.ListPayoutMethodsRequest) (*pb.ListPayoutMethodsResponse, error) {
	pr := mustPrincipal(ctx)
	ms, err := EffectivePayoutMethods(ctx, s.store, pr.AccountID, pr.Livemode)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListPayoutMethodsResponse{PayoutMethods: make([]*pb.PayoutMethod, len(ms))}
	for i, m := range ms {
		resp.PayoutMethods[i] = payoutMethodProto(m)
	}
	return resp, nil
}

// payoutMethod finds one of the account's methods by id.
func (s *Service) payoutMethod(ctx context.Context, pr *Principal, id string) (*store.PayoutMethod, error) {
	if id == "" {
		return nil, Invalid("payout_method_id", "parameter_missing", "payout_method_id is required: an id from GET /v1/payout-methods.")
	}
	ms, err := EffectivePayoutMethods(ctx, s.store, pr.AccountID, pr.Livemode)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		if m.ID == id {
			return m, nil
		}
		ids[i] = m.ID
	}
	if len(ids) == 0 {
		return nil, Invalid("payout_method_id", "payout_method_invalid",
			"No payout methods are configured for this account in %s mode; configure them with `paymentd payout-methods set`.", pr.Mode())
	}
	return nil, Invalid("payout_method_id", "payout_method_invalid",
		"payout_method_id %q is not one of this account's payout methods (%s); see GET /v1/payout-methods.", truncate(id, 64), strings.Join(ids, ", "))
}
