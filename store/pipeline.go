package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// On PostgreSQL every statement is a round trip to the server, and the
// round trips, not the statements, are most of what a write costs both
// processes (a payment's creation is a savepoint and three inserts before
// its first read). So the inserts whose outcome no caller looks at beyond
// "it failed" are not sent at once: execLater queues them, and the next
// statement that needs an answer (any read, any exec whose rows affected
// matter, a transaction control statement, the end of the change) first
// sends the queue as one pipelined batch over pgx. Order is kept, and a
// queued statement that fails fails its own change, as if it had run at
// once. SQLite runs them at once: its statements are function calls.

// deferredExec is one statement waiting in the queue.
type deferredExec struct {
	query string // already bound to PostgreSQL's placeholders
	args  []any
	// notOne, when set, is the statement's error unless it changed
	// exactly one row (execLaterOne).
	notOne error
}

// execLater runs query now on SQLite; on PostgreSQL it queues it for the
// next flush. Only for statements whose result nobody reads.
func (tx *Tx) execLater(query string, args ...any) error {
	return tx.execLaterOne(nil, query, args...)
}

// execLaterOne is execLater for a statement that must change exactly one
// row: unless it does, it fails with notOne (e.g. an INSERT … ON CONFLICT DO
// NOTHING that met a taken key), on PostgreSQL when the queue is sent. A nil
// notOne checks nothing.
func (tx *Tx) execLaterOne(notOne error, query string, args ...any) error {
	if !tx.d.postgres {
		res, err := tx.exec(query, args...)
		if err != nil || notOne == nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return notOne
		}
		return nil
	}
	tx.execs++
	tx.pending = append(tx.pending, deferredExec{query: tx.d.bind(query), args: args, notOne: notOne})
	return nil
}

// queueControl queues a transaction control statement (PostgreSQL).
func (tx *Tx) queueControl(query string) {
	tx.pending = append(tx.pending, deferredExec{query: query})
}

// flush sends the queued statements in one pipelined round trip and
// returns the first error among them; the queue is empty afterwards.
func (tx *Tx) flush() error {
	if len(tx.pending) == 0 {
		return nil
	}
	return tx.pipeline("", nil, nil)
}

// each runs a read inside the write and calls row for every result row
// with its Scan. On PostgreSQL the read rides in the same pipelined round
// trip as the queued statements before it.
func (tx *Tx) each(query string, args []any, row func(scan func(...any) error) error) error {
	if tx.d.postgres {
		return tx.pipeline(tx.d.bind(query), args, row)
	}
	st, err := tx.stmt(query)
	if err != nil {
		return err
	}
	rows, err := st.QueryContext(context.Background(), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	return eachRow(rows, row)
}

// eachRow calls row for every row of rows, database/sql's or pgx's alike.
func eachRow(rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}, row func(scan func(...any) error) error) error {
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// pipeline sends the queue, then query (if any) in the same round trip,
// calling row for each of its rows; the queue is empty afterwards. The
// first error wins: a queued statement's, or the query's.
func (tx *Tx) pipeline(query string, args []any, row func(scan func(...any) error) error) error {
	b := &pgx.Batch{}
	for _, p := range tx.pending {
		b.Queue(p.query, p.args...)
	}
	queued := tx.pending
	defer func() {
		clear(queued)
		tx.pending = queued[:0]
	}()
	if query != "" {
		b.Queue(query, args...)
	}
	err := tx.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: the PostgreSQL connection is a %T, not pgx's", dc)
		}
		br := c.Conn().SendBatch(context.Background(), b)
		var first error
		for _, p := range queued {
			tag, err := br.Exec()
			if err == nil && p.notOne != nil && tag.RowsAffected() != 1 {
				err = p.notOne
			}
			if err != nil && first == nil {
				first = err
			}
		}
		if query != "" && first == nil {
			first = readRows(br, row)
		}
		return errors.Join(first, br.Close())
	})
	if err != nil {
		return fmt.Errorf("store: write: %w", err)
	}
	return nil
}

func readRows(br pgx.BatchResults, row func(scan func(...any) error) error) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	return eachRow(rows, row)
}
