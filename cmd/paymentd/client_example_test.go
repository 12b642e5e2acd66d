package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	paymentdv1 "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// Example_goClient is the README's Go client: it takes a payment over gRPC
// with the key in $KEY. It has no Output comment, so go test compiles it
// (keeping the README's snippet honest) without running it.
func Example_goClient() {
	conn, err := grpc.NewClient("localhost:9090", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := paymentdv1.NewPaymentsServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+os.Getenv("KEY"), "idempotency-key", "order-3001")
	resp, err := client.CreatePayment(ctx, &paymentdv1.CreatePaymentRequest{Amount: 2000, Currency: "USD", PaymentMethod: "pm_card_visa"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.Payment.Id, resp.Payment.Status)
}
