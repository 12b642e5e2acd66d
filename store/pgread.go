package store

import (
	"context"
	"database/sql"
	"database/sql/driver"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// After a PostgreSQL restart or failover every pooled connection is dead,
// but a client learns it only when its next query reads the server's
// goodbye (FATAL 57P01) or EOF. pgx's database/sql driver reports that as
// the query's error, so each pooled read connection would fail one read.
// The read pool's connections turn such an error into driver.ErrBadConn
// when it closed their connection: database/sql then discards the
// connection and runs the read again on another (a read, so running it
// twice is harmless). Writes never go through this pool: the writer loops
// reconnect on their own and never repeat a statement whose outcome they
// do not know.

// openReadDB opens the pool of read-only connections on cfg.
func openReadDB(cfg *pgx.ConnConfig) *sql.DB {
	return sql.OpenDB(readConnector{stdlib.GetConnector(*cfg)})
}

type readConnector struct{ driver.Connector }

func (c readConnector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return readConn{dc.(*stdlib.Conn)}, nil
}

// readConn is pgx's connection whose queries report a closed connection
// as driver.ErrBadConn.
type readConn struct{ *stdlib.Conn }

// badConn is driver.ErrBadConn when err closed c's connection and did not
// come from the caller's own context, else err.
func badConn(ctx context.Context, c *stdlib.Conn, err error) error {
	if err != nil && ctx.Err() == nil && c.Conn().IsClosed() {
		return driver.ErrBadConn
	}
	return err
}

func (c readConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := c.Conn.QueryContext(ctx, query, args)
	return rows, badConn(ctx, c.Conn, err)
}

func (c readConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.Conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, badConn(ctx, c.Conn, err)
	}
	return readStmt{st.(*stdlib.Stmt), c.Conn}, nil
}

func (c readConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

type readStmt struct {
	*stdlib.Stmt
	conn *stdlib.Conn
}

func (s readStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := s.Stmt.QueryContext(ctx, args)
	return rows, badConn(ctx, s.conn, err)
}
