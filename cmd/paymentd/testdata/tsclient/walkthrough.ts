// The README's walkthrough as a TypeScript program, through a client
// generated from paymentd's /openapi.json (openapi-typescript types,
// openapi-fetch calls). TestTypeScriptClient generates the types, compiles
// this file with tsc --strict (so a document that no longer describes these
// calls fails to compile) and runs it against a live server.
import createClient from "openapi-fetch";
import type { components, paths } from "./paymentd.js";

// Node's process, declared here so that the check needs no @types/node.
declare const process: { env: Record<string, string | undefined>; exit(code: number): never };

type Payment = components["schemas"]["v1Payment"];
type ErrorResponse = components["schemas"]["v1ErrorResponse"];

const baseUrl = process.env.PAYMENTD_URL ?? "";
const key = process.env.PAYMENTD_KEY ?? "";
const api = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${key}` } });
let calls = 0;

function check(ok: boolean, what: string): asserts ok {
  calls++;
  if (!ok) {
    throw new Error(what);
  }
}

// expectError checks an error answer: its status and the error body's code.
function expectError(what: string, res: { response: Response; error?: ErrorResponse }, status: number, code: string): void {
  const body = res.error?.error;
  check(res.response.status === status && body?.code === code && (body.request_id ?? "") !== "",
    `${what}: ${res.response.status} ${JSON.stringify(res.error)}; want ${status} ${code} with a request_id`);
}

async function main(): Promise<void> {
  const status = await api.GET("/v1/status");
  check(status.data?.service === "paymentd", `status: ${JSON.stringify(status.data)}`);

  const created = await api.POST("/v1/payments", {
    params: { header: { "Idempotency-Key": "ts-order-1" } },
    body: { amount: "5000", currency: "USD", payment_method: "pm_card_visa", capture_method: "manual", description: "TypeScript" },
  });
  check(created.data !== undefined, `create: ${created.response.status} ${JSON.stringify(created.error)}`);
  const pay: Payment = created.data;
  check(pay.status === "requires_capture" && pay.amount === "5000", `created ${JSON.stringify(pay)}`);
  const id = pay.id ?? "";

  const again = await api.GET("/v1/payments/{id}", { params: { path: { id } } });
  check(again.data?.id === id, `get: ${JSON.stringify(again)}`);

  const captured = await api.POST("/v1/payments/{id}/capture", {
    params: { path: { id }, header: { "Idempotency-Key": "ts-capture-1" } },
    body: { amount: "4000" },
  });
  check(captured.data?.status === "succeeded" && captured.data.amount_captured === "4000", `capture: ${JSON.stringify(captured.data ?? captured.error)}`);

  const refund = await api.POST("/v1/refunds", {
    params: { header: { "Idempotency-Key": "ts-refund-1" } },
    body: { payment_id: id, amount: "1500" },
  });
  check(refund.data?.status === "succeeded", `refund: ${JSON.stringify(refund.data ?? refund.error)}`);

  const list = await api.GET("/v1/payments", { params: { query: { page_size: 2, status: "succeeded" } } });
  check((list.data?.payments ?? []).some((p) => p.id === id), `list: ${JSON.stringify(list.data)}`);

  const invoice = await api.POST("/v1/invoices", {
    params: { header: { "Idempotency-Key": "ts-invoice-1" } },
    body: { amount: "2500", currency: "USD", transaction_reference: "ts-order-1", callback_url: "https://shop.example/orders/1/return" },
  });
  check(invoice.data?.status === "open" && (invoice.data.payment_url ?? "").includes("/pay/"), `invoice: ${JSON.stringify(invoice.data ?? invoice.error)}`);
  const byRef = await api.GET("/v1/invoices/{id}", { params: { path: { id: "ts-order-1" } } });
  check(byRef.data?.id === invoice.data.id, `invoice by reference: ${JSON.stringify(byRef.data ?? byRef.error)}`);

  const payout = await api.POST("/v1/payouts", {
    params: { header: { "Idempotency-Key": "ts-payout-1" } },
    body: { payout_method_id: "us_bank", amount: "1000", recipient_name: "Jane Doe", recipient_account: "000123456789", transaction_reference: "ts-wd-1" },
  });
  check(payout.data?.status === "pending" && payout.data.fee === "35", `payout: ${JSON.stringify(payout.data ?? payout.error)}`);

  expectError("missing payment", await api.GET("/v1/payments/{id}", { params: { path: { id: "pay_missing" } } }), 404, "resource_missing");
  expectError("declined card", await api.POST("/v1/payments", {
    params: { header: { "Idempotency-Key": "ts-declined-1" } },
    body: { amount: "2000", currency: "USD", payment_method: "pm_card_declined" },
  }), 402, "card_declined");
  expectError("idempotency mismatch", await api.POST("/v1/payments", {
    params: { header: { "Idempotency-Key": "ts-order-1" } },
    body: { amount: "9999", currency: "USD", payment_method: "pm_card_visa" },
  }), 422, "idempotency_key_reused");
  const anonymous = createClient<paths>({ baseUrl });
  const refused = await anonymous.GET("/v1/payments");
  check(refused.response.status === 401 && refused.error?.error?.type === "authentication_error", `no key: ${JSON.stringify(refused.error)}`);

  console.log(`typescript walkthrough: ${calls} checks passed`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
